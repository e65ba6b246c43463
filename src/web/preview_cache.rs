//! The candidates behind the live preview and the trending list, shared
//! between requests, and the empty states a visitor is told about.
//!
//! Rebuilding the index per keystroke is too slow, so one copy is kept,
//! with a second over the last [`COUNT_DAYS`] days from which each typed
//! topic's count of papers is read.
//! It is stale as soon as papers are stored — by this daemon's fetch job
//! or by a `paperboy fetch` in another process — which the store's papers
//! version says; an empty copy is never kept for long, so a first run
//! shows papers as soon as the start-up fetch has stored them.

use crate::app::App;
use crate::digest::RankPicker;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a copy with candidates is used while the store is unchanged
/// (the candidate window moves with the clock).
const TTL: Duration = Duration::from_secs(300);
/// How long an empty copy is used: a first fetch may be storing papers.
const EMPTY_TTL: Duration = Duration::from_secs(5);
/// The listing days (today included) over which a topic's papers are
/// counted for the reader.
pub const COUNT_DAYS: u32 = 7;

/// Whether there is anything to preview, and if not, why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    /// No paper is stored at all; `fetched` is whether a fetch was logged.
    NoPapersYet { fetched: bool },
    /// Papers are stored, but none listed within the candidate window.
    NoneRecent { days: u32 },
    /// This many candidates are ranked.
    Candidates(usize),
}

impl Availability {
    /// The visitor-facing sentence when a preview or the trending list is
    /// empty; `query` is whether the visitor asked for topics or authors
    /// (rather than the trending list).
    pub fn empty_note(self, days: u32, query: bool) -> String {
        match self {
            Availability::NoPapersYet { fetched: false } => {
                "No papers fetched yet (fetching now…). Reload in a minute.".to_string()
            }
            Availability::NoPapersYet { fetched: true } => {
                "No papers fetched yet: the last fetch stored none. paperboy tries again at the next scheduled fetch.".to_string()
            }
            Availability::NoneRecent { days } => {
                format!("No papers were listed in the last {days} days; the next fetch brings new ones.")
            }
            Availability::Candidates(_) if query => format!(
                "These topics match nothing in the last {days} days — try a broader word, an abbreviation, or fewer excluded words. Your digest waits for papers that do match."
            ),
            Availability::Candidates(_) => {
                "None of today's papers has enough votes to trend yet.".to_string()
            }
        }
    }
}

struct Entry {
    built: Instant,
    version: i64,
    picker: Arc<RankPicker>,
    /// The papers of the last [`COUNT_DAYS`] listing days.
    week: Arc<RankPicker>,
    availability: Availability,
}

/// The shared copy; see the module docs for when it is rebuilt.
#[derive(Default)]
pub struct PreviewCache {
    entry: tokio::sync::Mutex<Option<Entry>>,
}

impl std::fmt::Debug for PreviewCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreviewCache").finish_non_exhaustive()
    }
}

/// Whether a copy built `age` ago at `built_version` may still be used.
fn is_fresh(built_version: i64, now_version: i64, age: Duration, empty: bool) -> bool {
    built_version == now_version && age < if empty { EMPTY_TTL } else { TTL }
}

impl PreviewCache {
    /// The current ranker and what it holds, rebuilt when stale.
    pub async fn get(&self, app: &App) -> anyhow::Result<(Arc<RankPicker>, Availability)> {
        self.with_entry(app, |e| (e.picker.clone(), e.availability))
            .await
    }

    /// The ranker over the last [`COUNT_DAYS`] listing days, for counting
    /// what each topic finds; rebuilt with the other.
    pub async fn week(&self, app: &App) -> anyhow::Result<Arc<RankPicker>> {
        self.with_entry(app, |e| e.week.clone()).await
    }

    async fn with_entry<T>(&self, app: &App, read: impl Fn(&Entry) -> T) -> anyhow::Result<T> {
        let version = app.store.papers_version().await?;
        let mut entry = self.entry.lock().await;
        if let Some(e) = entry.as_ref() {
            let empty = e.picker.candidates().is_empty() && e.week.candidates().is_empty();
            if is_fresh(e.version, version, e.built.elapsed(), empty) {
                return Ok(read(e));
            }
        }
        let now = app.now();
        let picker = Arc::new(RankPicker::for_preview(app, now).await?);
        let today = now.date_naive();
        let days = chrono::Duration::days(i64::from(COUNT_DAYS) - 1);
        let last_days = crate::domain::Window {
            since: today - days,
            until: today,
        };
        let week = Arc::new(RankPicker::for_window(app, &last_days, now).await?);
        let availability = availability(app, &picker).await?;
        let fresh = Entry {
            built: Instant::now(),
            version,
            picker,
            week,
            availability,
        };
        let out = read(&fresh);
        *entry = Some(fresh);
        Ok(out)
    }
}

async fn availability(app: &App, picker: &RankPicker) -> anyhow::Result<Availability> {
    let n = picker.candidates().len();
    if n > 0 {
        return Ok(Availability::Candidates(n));
    }
    if app.store.papers_stored().await? > 0 {
        return Ok(Availability::NoneRecent {
            days: app.config.digest.candidate_days,
        });
    }
    Ok(Availability::NoPapersYet {
        fetched: app.store.last_fetch().await?.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_stale_once_papers_are_stored() {
        assert!(is_fresh(3, 3, Duration::from_secs(60), false));
        assert!(!is_fresh(3, 4, Duration::from_secs(0), false));
    }

    #[test]
    fn an_empty_copy_is_kept_only_seconds() {
        assert!(is_fresh(0, 0, Duration::from_secs(1), true));
        assert!(!is_fresh(0, 0, Duration::from_secs(6), true));
        assert!(!is_fresh(1, 1, Duration::from_secs(301), false));
    }

    #[test]
    fn empty_states_say_which_case_it_is() {
        let never = Availability::NoPapersYet { fetched: false }.empty_note(3, true);
        assert!(never.contains("No papers fetched yet (fetching now"));
        let none = Availability::Candidates(119).empty_note(3, true);
        assert!(none.contains("match nothing in the last 3 days"), "{none}");
        assert!(Availability::NoneRecent { days: 3 }
            .empty_note(3, false)
            .contains("last 3 days"));
    }
}
