//! The production [`Picker`]: the `rank` module over the run's candidates.
//! A [`RankPicker`] ranks the papers of one window; `WindowPickers` keeps
//! one per distinct window of a run.

use super::{DigestPick, Picker};
use crate::app::App;
use crate::domain::{Candidate, Paper, PaperId, Preferences, Span, Window};
use crate::rank::{CandidateIndex, Pick, Profile, RankParams, ReaderFeedback};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashSet;
use std::sync::Arc;

/// Candidates and their index, built once per run and shared by every
/// subscriber's ranking (each distinct topic is scored once per run).
pub struct RankPicker {
    candidates: Vec<Candidate>,
    /// The candidates' papers, shared by every pick instead of copied
    /// into each (ten picks for each of 100,000 subscribers).
    papers: Vec<Arc<Paper>>,
    index: CandidateIndex,
}

impl std::fmt::Debug for RankPicker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RankPicker")
            .field("candidates", &self.candidates.len())
            .finish()
    }
}

impl RankPicker {
    /// Papers listed within `digest.candidate_days` of `now`.
    pub async fn for_run(app: &App, now: DateTime<Utc>) -> anyhow::Result<RankPicker> {
        let since = now.date_naive() - Duration::days(app.config.digest.candidate_days as i64);
        let candidates = app.store.candidates(since).await?;
        Ok(RankPicker::new(candidates, &app.synonyms, now))
    }

    /// Papers listed in `window`, with trending over the window's span.
    pub async fn for_window(
        app: &App,
        window: &Window,
        now: DateTime<Utc>,
    ) -> anyhow::Result<RankPicker> {
        let candidates = app.store.candidates_in(window).await?;
        Ok(RankPicker::over(
            candidates,
            &app.synonyms,
            now,
            window.span(),
        ))
    }

    pub fn new(
        candidates: Vec<Candidate>,
        synonyms: &crate::rank::Synonyms,
        now: DateTime<Utc>,
    ) -> RankPicker {
        RankPicker::over(candidates, synonyms, now, Span::Day)
    }

    /// [`RankPicker::new`] with trending measured over `span`.
    pub fn over(
        candidates: Vec<Candidate>,
        synonyms: &crate::rank::Synonyms,
        now: DateTime<Utc>,
        span: Span,
    ) -> RankPicker {
        let params = RankParams {
            span,
            ..RankParams::default()
        };
        let index = CandidateIndex::build_with(&candidates, synonyms, now, params);
        let papers = candidates
            .iter()
            .map(|c| Arc::new(c.paper.clone()))
            .collect();
        RankPicker {
            candidates,
            papers,
            index,
        }
    }

    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    /// The index over the candidates (previews rank on it directly).
    pub fn index(&self) -> &CandidateIndex {
        &self.index
    }

    /// The ranking for a profile with the reader's feedback (the live
    /// preview on the settings page).
    pub fn rank_with_feedback(
        &self,
        profile: &Profile,
        sent: &HashSet<PaperId>,
        k: usize,
        feedback: &ReaderFeedback,
    ) -> Vec<Pick> {
        self.index.rank_with_feedback(profile, sent, k, feedback)
    }
}

/// A `RankPicker` ranks its own candidates, whatever the window asked
/// for: it is one window's picker (`WindowPickers` routes to it).
impl Picker for RankPicker {
    fn pick(
        &self,
        window: &Window,
        prefs: &Preferences,
        sent: &HashSet<String>,
    ) -> Vec<DigestPick> {
        let none = ReaderFeedback::none(DateTime::<Utc>::UNIX_EPOCH);
        self.pick_with_feedback(window, prefs, sent, &none)
    }

    fn pick_with_feedback(
        &self,
        _window: &Window,
        prefs: &Preferences,
        sent: &HashSet<String>,
        feedback: &ReaderFeedback,
    ) -> Vec<DigestPick> {
        let profile = Profile::from_preferences(prefs);
        let sent: HashSet<PaperId> = sent
            .iter()
            .map(|s| PaperId::from_stored(s.clone()))
            .collect();
        self.index
            .rank_with_feedback(&profile, &sent, prefs.digest_size as usize, feedback)
            .into_iter()
            .map(|p| DigestPick {
                paper: self.papers[p.index].clone(),
                score: p.score,
                topic: p.reason.topics.first().map(|t| t.topic.clone()),
                reason: p.reason.summary(),
            })
            .collect()
    }
}
