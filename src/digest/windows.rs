//! One [`RankPicker`] per distinct window of a run.
//!
//! Every digest covers its own window of listing days (`domain::window`),
//! but the windows of one run are few: subscribers with the same frequency
//! and a digest yesterday share one, so readers are grouped by window and
//! each group shares one candidate index (each topic scored once per
//! window, not once per reader). Indexes are built on first use and kept
//! for the run.

use super::{DigestPick, Picker, RankPicker};
use crate::app::App;
use crate::domain::{Preferences, Window};
use crate::store::deliveries::ClaimedDelivery;
use crate::store::subscribers::Subscriber;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

/// The window of a subscriber's digest for the local date `date`, given
/// the last day their previous digest covered (`domain::window` with the
/// configured limits).
pub fn digest_window(
    app: &App,
    prefs: &Preferences,
    last_covered: Option<NaiveDate>,
    date: NaiveDate,
) -> Window {
    crate::domain::window(
        prefs.frequency,
        last_covered,
        date,
        app.config.window_limits(),
    )
}

/// The window a claimed delivery covers: the one recorded when it was
/// planned (a row without one, damaged by hand, gets a first digest's).
pub fn claim_window(app: &App, claim: &ClaimedDelivery, sub: &Subscriber) -> Window {
    claim
        .window
        .unwrap_or_else(|| digest_window(app, &sub.preferences, None, claim.digest_date))
}

/// Loads into `picker` the candidates of each of `windows` it lacks, one
/// query per window.
pub async fn ensure_loaded(
    app: &App,
    picker: &dyn Picker,
    windows: &[Window],
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    for window in picker.missing(windows) {
        let ranked = RankPicker::for_window(app, &window, now).await?;
        ranked.add_active_topics(app, now).await;
        tracing::debug!(
            ?window,
            candidates = ranked.candidates().len(),
            "digest window loaded"
        );
        picker.load(window, ranked);
    }
    Ok(())
}

/// The production picker of a run: a map from window to its `RankPicker`.
#[derive(Default)]
pub struct WindowPickers {
    by_window: RwLock<HashMap<Window, Arc<RankPicker>>>,
}

impl std::fmt::Debug for WindowPickers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowPickers")
            .field("windows", &self.windows())
            .finish()
    }
}

impl WindowPickers {
    /// Empty; the engine loads each window's index on first use
    /// ([`Picker::missing`], [`Picker::load`], built by `ensure_loaded`
    /// with the run's `now`, which fixes trending).
    pub fn new() -> WindowPickers {
        WindowPickers::default()
    }

    /// The windows loaded so far, in order.
    pub fn windows(&self) -> Vec<Window> {
        let mut w: Vec<Window> = self.read().keys().copied().collect();
        w.sort();
        w
    }

    /// The picker of `window`, if loaded.
    pub fn get(&self, window: &Window) -> Option<Arc<RankPicker>> {
        self.read().get(window).cloned()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Window, Arc<RankPicker>>> {
        self.by_window.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl Picker for WindowPickers {
    /// Picks from `window`'s candidates; a window never loaded has none.
    fn pick(
        &self,
        window: &Window,
        prefs: &Preferences,
        sent: &HashSet<String>,
    ) -> Vec<DigestPick> {
        match self.get(window) {
            Some(p) => p.pick(window, prefs, sent),
            None => {
                tracing::warn!(
                    ?window,
                    "digest window picked before its candidates were loaded"
                );
                Vec::new()
            }
        }
    }

    fn pick_with_feedback(
        &self,
        window: &Window,
        prefs: &Preferences,
        sent: &HashSet<String>,
        feedback: &crate::rank::ReaderFeedback,
    ) -> Vec<DigestPick> {
        match self.get(window) {
            Some(p) => p.pick_with_feedback(window, prefs, sent, feedback),
            None => self.pick(window, prefs, sent),
        }
    }

    fn missing(&self, windows: &[Window]) -> Vec<Window> {
        let loaded = self.read();
        let mut missing: Vec<Window> = windows
            .iter()
            .filter(|w| !loaded.contains_key(w))
            .copied()
            .collect();
        missing.sort();
        missing.dedup();
        missing
    }

    fn load(&self, window: Window, picker: RankPicker) {
        self.by_window
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(window)
            .or_insert_with(|| Arc::new(picker));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl WindowPickers {
        /// Loads a window's index from candidates, as `ensure_loaded` does
        /// from the store.
        fn load_candidates(&self, window: Window, candidates: Vec<Candidate>) {
            let span = window.span();
            let now = Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap();
            let synonyms = crate::rank::Synonyms::embedded();
            self.load(window, RankPicker::over(candidates, &synonyms, now, span));
        }
    }
    use crate::domain::{Candidate, Paper, PaperId};
    use chrono::{NaiveDate, NaiveTime, TimeZone};

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    fn listed(id: &str, d: u32) -> Candidate {
        let mut p = Paper::new(
            PaperId::parse_arxiv(id).unwrap().0,
            "Speculative decoding with draft models",
            "Speculative decoding drafts tokens and verifies them.",
        );
        p.listed_on = Some(day(d));
        Candidate {
            paper: p,
            history: Vec::new(),
        }
    }

    fn prefs() -> Preferences {
        Preferences {
            topics: vec!["speculative decoding".into()],
            ..Preferences::new(
                10,
                NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
                chrono_tz::UTC,
            )
        }
    }

    #[test]
    fn each_window_picks_from_its_own_candidates_and_loads_once() {
        let pickers = WindowPickers::new();
        let week = Window {
            since: day(23),
            until: day(30),
        };
        let days = Window {
            since: day(27),
            until: day(30),
        };
        assert_eq!(pickers.missing(&[days, week, days]), vec![week, days]);
        pickers.load_candidates(
            week,
            vec![listed("2611.00001", 24), listed("2611.00002", 29)],
        );
        pickers.load_candidates(days, vec![listed("2611.00002", 29)]);
        assert!(pickers.missing(&[days, week]).is_empty());
        let ids = |w: &Window| -> Vec<String> {
            pickers
                .pick(w, &prefs(), &HashSet::new())
                .iter()
                .map(|p| p.paper.id.to_string())
                .collect()
        };
        assert_eq!(ids(&days), vec!["2611.00002"]);
        let mut weekly = ids(&week);
        weekly.sort();
        assert_eq!(weekly, vec!["2611.00001", "2611.00002"]);
        let other = Window {
            since: day(1),
            until: day(2),
        };
        assert!(
            ids(&other).is_empty(),
            "a window never loaded has no papers"
        );
        assert_eq!(pickers.windows(), vec![week, days]);
    }
}
