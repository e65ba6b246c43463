//! The production [`Picker`]: the `rank` module over the run's candidates.
//! A [`RankPicker`] ranks the papers of one window; `WindowPickers` keeps
//! one per distinct window of a run.

use super::{DigestPick, Picker};
use crate::app::App;
use crate::domain::{Candidate, Paper, PaperId, Preferences, Span, Window};
use crate::rank::{CandidateIndex, Pick, Profile, RankParams, ReaderFeedback};
use chrono::{DateTime, Duration, NaiveDate, Utc};
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
    /// Papers listed within `digest.candidate_days` of `now`, with their
    /// vectors and those of the active subscribers' topics when the
    /// embedding model is loaded (else lexical ranking).
    pub async fn for_run(app: &App, now: DateTime<Utc>) -> anyhow::Result<RankPicker> {
        let since = now.date_naive() - Duration::days(app.config.digest.candidate_days as i64);
        let candidates = app.store.candidates(since).await?;
        let mut picker = RankPicker::new(candidates, &app.synonyms, now);
        picker.attach_vectors(app, since).await;
        picker.add_active_topics(app, now).await;
        Ok(picker)
    }

    /// As [`RankPicker::for_run`], without embedding every subscriber's
    /// topics ahead: previews embed only the topics they show.
    pub async fn for_preview(app: &App, now: DateTime<Utc>) -> anyhow::Result<RankPicker> {
        let since = now.date_naive() - Duration::days(app.config.digest.candidate_days as i64);
        let candidates = app.store.candidates(since).await?;
        let mut picker = RankPicker::new(candidates, &app.synonyms, now);
        picker.attach_vectors(app, since).await;
        Ok(picker)
    }

    /// Attaches the stored paper vectors of the loaded model; false (and
    /// lexical ranking) without a model. Best effort: a paper without a
    /// vector ranks lexically.
    async fn attach_vectors(&mut self, app: &App, since: NaiveDate) -> bool {
        let Some(model) = app.semantic.model() else {
            return false;
        };
        let vectors = match app.store.candidate_embeddings(&model.identity, since).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read paper vectors; ranking lexically");
                return false;
            }
        };
        let s = &app.config.rank.semantic;
        let params =
            crate::rank::HybridParams::tuned(model.family, s.dense_weight, s.min_similarity);
        self.attach_paper_vectors(model.dims, params, |id| vectors.get(id).map(Vec::as_slice));
        true
    }

    /// Fuses meaning into the ranking: `vector_of` gives each paper's
    /// vector (`dims` long; a paper without one ranks lexically). The
    /// relevance bench attaches its vectors here, so it ranks as a run
    /// and a preview do.
    pub fn attach_paper_vectors<'a>(
        &mut self,
        dims: usize,
        params: crate::rank::HybridParams,
        vector_of: impl Fn(&PaperId) -> Option<&'a [f32]>,
    ) {
        self.index.attach_vectors(dims, params, vector_of);
    }

    /// Registers the vectors of `topics` (embedding those never seen), so
    /// ranking them uses meaning, and on the first call those of arXiv's
    /// taxonomy (so a broad topic covers its field's papers), in the same
    /// pass: stored once per model like topic vectors, and embedded while
    /// the model is loaded for the topics. A no-op without a model.
    pub async fn add_topics(&self, app: &App, topics: &[String], now: DateTime<Utc>) {
        if self.index.vector_dims().is_none() {
            return;
        }
        let todo: Vec<(&String, String)> = topics
            .iter()
            .filter(|t| !self.index.has_topic_vector(t))
            .map(|t| (t, self.index.dense_text(t)))
            .collect();
        let taxonomy = match self.index.has_subject_vectors() {
            true => Vec::new(),
            false => crate::domain::taxonomy(),
        };
        if todo.is_empty() && taxonomy.is_empty() {
            return;
        }
        let texts: Vec<String> = todo
            .iter()
            .map(|t| t.1.clone())
            .chain(taxonomy.iter().map(|t| t.1.clone()))
            .collect();
        let vectors = app.semantic.topic_vectors(&app.store, &texts, now).await;
        let entries: Vec<(String, Arc<[f32]>)> = taxonomy
            .iter()
            .filter_map(|(code, text)| Some((code.to_string(), vectors.get(text)?.clone())))
            .collect();
        // All or none: a partial taxonomy would map a field topic to the
        // wrong subjects.
        if !taxonomy.is_empty() && entries.len() == taxonomy.len() {
            self.index.add_subject_vectors(entries);
        }
        for (topic, text) in todo {
            if let Some(v) = vectors.get(&text) {
                self.index.add_topic_vector(topic, v.clone());
            }
        }
    }

    /// Ranks an ad-hoc profile (previews) on this picker's index, with
    /// meaning when a model is loaded.
    pub async fn preview(
        &self,
        app: &App,
        profile: &Profile,
        limit: usize,
    ) -> Vec<crate::rank::Pick> {
        self.add_topics(app, &profile.topics, app.now()).await;
        self.ranked(profile, limit)
    }

    /// What a preview shows for `profile` once its topics' vectors are
    /// registered ([`RankPicker::add_topics`]); without them, lexical.
    pub fn ranked(&self, profile: &Profile, limit: usize) -> Vec<Pick> {
        self.index.rank(profile, &HashSet::new(), limit)
    }

    /// The index behind the ranking (paper vectors: [`CandidateIndex::paper_vector`]).
    pub fn index(&self) -> &CandidateIndex {
        &self.index
    }

    /// Papers listed in `window`, with trending over the window's span,
    /// and their vectors when the embedding model is loaded (topics are
    /// added by [`RankPicker::add_topics`] / [`RankPicker::add_active_topics`]).
    pub async fn for_window(
        app: &App,
        window: &Window,
        now: DateTime<Utc>,
    ) -> anyhow::Result<RankPicker> {
        let candidates = app.store.candidates_in(window).await?;
        let mut picker = RankPicker::over(candidates, &app.synonyms, now, window.span());
        picker.attach_vectors(app, window.since).await;
        Ok(picker)
    }

    /// Registers the vectors of every active subscriber's topics, as a run
    /// needs them. A no-op without a model.
    pub async fn add_active_topics(&self, app: &App, now: DateTime<Utc>) {
        if self.index.vector_dims().is_none() {
            return;
        }
        match app.store.active_topics().await {
            Ok(topics) => self.add_topics(app, &topics, now).await,
            Err(e) => tracing::warn!(error = %e, "cannot list topics; they rank lexically"),
        }
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
                // A followed category stands in for a topic (the subject
                // says "5 papers on Robotics", not "trending papers").
                topic: p
                    .reason
                    .topics
                    .first()
                    .map(|t| t.topic.clone())
                    .or_else(|| {
                        p.reason
                            .categories
                            .first()
                            .map(|c| crate::domain::subject_name(c).unwrap_or_else(|| c.clone()))
                    }),
                reason: p.reason.summary(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Frequency, Paper};
    use chrono::{NaiveTime, TimeZone};

    #[test]
    fn a_followed_category_names_the_digest_like_a_topic() {
        let now = Utc.with_ymd_and_hms(2026, 6, 2, 12, 0, 0).unwrap();
        let candidates: Vec<Candidate> = [("2606.00001", "cs.RO"), ("2606.00002", "hep-th")]
            .iter()
            .map(|(id, cat)| {
                let mut p = Paper::new(PaperId::parse_arxiv(id).unwrap().0, "A title", "Text.");
                p.categories = vec![cat.to_string()];
                p.listed_on = Some(now.date_naive());
                Candidate {
                    paper: p,
                    history: Vec::new(),
                }
            })
            .collect();
        let picker = RankPicker::new(candidates, &crate::rank::Synonyms::embedded(), now);
        let prefs = Preferences {
            topics: Vec::new(),
            excluded: Vec::new(),
            authors: Vec::new(),
            categories: vec!["cs.RO".into()],
            digest_size: 5,
            frequency: Frequency::Daily,
            send_time: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            time_zone: chrono_tz::UTC,
            fallback_trending: false,
        };
        let window = Window {
            since: now.date_naive(),
            until: now.date_naive(),
        };
        let picks = picker.pick(&window, &prefs, &HashSet::new());
        assert_eq!(picks.len(), 1);
        assert_eq!(picks[0].paper.id.as_str(), "2606.00001");
        assert_eq!(picks[0].topic.as_deref(), Some("Robotics"));
        assert!(picks[0].reason.starts_with("In Robotics (cs.RO)"));
    }
}
