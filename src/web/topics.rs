//! The topics as paperboy understood them, shown back beside the field
//! (on the subscribe and settings pages, and in both live previews' JSON):
//! each topic parsed by `domain::parse_topics`, with how many papers it
//! matched over the last [`COUNT_DAYS`] listing days, so a topic that
//! finds nothing says so instead of silently never matching.

use super::preview_cache::COUNT_DAYS;
use super::WebState;
use crate::rank::Profile;
use serde::Serialize;

/// One topic as read, and what it found.
#[derive(Debug, Clone, Serialize)]
pub(super) struct TopicCount {
    pub topic: String,
    /// Papers matched over the last [`COUNT_DAYS`] days (excluded words
    /// and categories applied); `None` when there is nothing stored to
    /// count from yet.
    pub count: Option<usize>,
    /// "12 papers in the last 7 days", or for none
    /// "nothing in the last 7 days; try a broader wording".
    pub note: String,
    /// The topic found nothing.
    pub empty: bool,
}

/// The note beside a topic that matched `count` papers.
pub(super) fn count_note(count: usize) -> String {
    match count {
        0 => format!("nothing in the last {COUNT_DAYS} days; try a broader wording"),
        1 => format!("1 paper in the last {COUNT_DAYS} days"),
        n => format!("{n} papers in the last {COUNT_DAYS} days"),
    }
}

/// `profile`'s topics with their counts. Counting is best effort: when
/// the papers cannot be read, or none is stored from the last days, the
/// topics are listed without counts.
pub(super) async fn topic_counts(web: &WebState, profile: &Profile) -> Vec<TopicCount> {
    if profile.topics.is_empty() {
        return Vec::new();
    }
    let counts = match web.previews.week(web).await {
        Ok(week) if !week.candidates().is_empty() => {
            week.add_topics(web, &profile.topics, web.now()).await;
            Some(week.index().topic_counts(profile))
        }
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "topic counts unavailable");
            None
        }
    };
    profile
        .topics
        .iter()
        .enumerate()
        .map(|(i, topic)| {
            let count = counts.as_ref().map(|c| c[i]);
            TopicCount {
                topic: topic.clone(),
                count,
                note: count.map(count_note).unwrap_or_default(),
                empty: count == Some(0),
            }
        })
        .collect()
}
