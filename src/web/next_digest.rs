//! The settings page's live preview: what the reader's next digest would
//! contain, for the frequency chosen on the form (saved or not), from the
//! papers stored now. Same window as the digest engine (from the last day
//! their previous digest covered, `domain::window`), ranked with the
//! reader's feedback, minus the papers already mailed to them or judged
//! by them; the note names the listing days searched.

use super::page::{invalid_link, manage_subscriber, rate_limited};
use super::preview::PreviewItem;
use super::topics::{topic_counts, TopicCount};
use super::{client_ip, WebError, WebState};
use crate::app::App;
use crate::domain::{Frequency, PaperId, Preferences, Window};
use crate::rank::{CandidateIndex, Profile, RankParams, ReaderFeedback};
use crate::store::subscribers::Subscriber;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

/// The frequency the form shows: `frequency` (daily, weekdays, weekly)
/// with `weekly_day`; `None` when absent or not one of those.
fn form_frequency(q: &HashMap<String, String>) -> Option<Frequency> {
    match q.get("frequency").map(String::as_str)? {
        "weekly" => {
            let day = q.get("weekly_day").map_or("monday", String::as_str);
            Frequency::decode(&format!("weekly:{}", day.to_ascii_lowercase()))
        }
        other => Frequency::decode(other),
    }
}

/// The profile being edited on the settings page: each of topics,
/// excluded words, followed authors and categories from the query when
/// the page sent it (capped like the saved preferences), the saved value
/// otherwise.
fn edited_profile(saved: &Preferences, q: &HashMap<String, String>) -> Profile {
    use crate::domain::{limits, parse_topics, split_lines, split_lines_only};
    let lines = |k: &str, n: usize, split: fn(&str) -> Vec<String>| {
        q.get(k)
            .map(|v| split(v).into_iter().take(n).collect::<Vec<_>>())
    };
    let mut profile = Profile::from_preferences(saved);
    if let Some(t) = lines("topics", limits::MAX_TOPICS, parse_topics) {
        profile.topics = t;
    }
    if let Some(e) = lines("excluded", limits::MAX_EXCLUDED, split_lines) {
        profile.excluded = e;
    }
    if let Some(a) = lines("authors", limits::MAX_AUTHORS, split_lines_only) {
        profile.authors = a;
    }
    if let Some(c) = lines("categories", limits::MAX_CATEGORIES, split_lines) {
        profile.categories = c;
    }
    profile
}

/// `GET /manage/{token}/preview?topics=…&excluded=…&authors=…&categories=…&frequency=…`:
/// JSON `{papers, window, note}`. The settings page sends the whole
/// profile being edited; fields left out fall back to the saved
/// preferences. `frequency` is `weekly:friday` from the page, or `weekly`
/// with `weekly_day`.
pub(super) async fn preview(
    State(web): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, WebError> {
    if !web.limits.previews.check(client_ip(&web, peer, &headers)) {
        return rate_limited(&web);
    }
    let Some((_, sub)) = manage_subscriber(&web, &raw).await? else {
        return invalid_link(&web);
    };
    let frequency = form_frequency(&q).unwrap_or(sub.preferences.frequency);
    let profile = edited_profile(&sub.preferences, &q);
    let next = next_digest_items(&web, &sub, frequency, &profile).await?;
    let topics = topic_counts(&web, &profile).await;
    Ok((
        StatusCode::OK,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        axum::Json(NextDigestJson {
            papers: &next.items,
            window: &next.window,
            note: next.note,
            topics: &topics,
        }),
    )
        .into_response())
}

/// What the reader's next digest would start with.
pub(super) struct NextItems {
    pub(super) items: Vec<PreviewItem>,
    window: Window,
    /// Names the listing days searched.
    pub(super) note: String,
}

/// The next digest of `sub` for `profile` at `frequency`, from the
/// papers stored now (see the module documentation).
pub(super) async fn next_digest_items(
    app: &App,
    sub: &Subscriber,
    frequency: Frequency,
    profile: &Profile,
) -> Result<NextItems, WebError> {
    let prefs = &sub.preferences;
    let now = app.now();
    let covered = app.store.last_covered_of(&[sub.id]).await?;
    let today = now.with_timezone(&prefs.time_zone).date_naive();
    let day = crate::domain::next_digest_day(frequency, today);
    let window = crate::domain::window(
        frequency,
        covered.get(&sub.id).copied(),
        day,
        app.config.window_limits(),
    );
    let items =
        if profile.topics.is_empty() && profile.authors.is_empty() && profile.categories.is_empty()
        {
            Vec::new()
        } else {
            let feedback = crate::digest::reader_feedback::load_one(app, sub.id, now).await?;
            // Papers already sent, or judged by the reader, are not news.
            let mut seen: HashSet<PaperId> = app
                .store
                .sent_paper_ids(sub.id)
                .await?
                .into_iter()
                .map(PaperId::from_stored)
                .collect();
            seen.extend(feedback.items.iter().map(|i| i.paper.id.clone()));
            let limit = app.config.rank.preview_size;
            rank_window(app, &window, profile, &seen, &feedback, limit).await?
        };
    let searched = window.describe();
    let note = if items.is_empty() {
        format!("Nothing listed {searched} matches yet; your digest waits for papers that do.")
    } else {
        format!("From the papers listed {searched}, leaving out those already sent to you.")
    };
    Ok(NextItems {
        items,
        window,
        note,
    })
}

/// The settings preview's JSON answer.
#[derive(serde::Serialize)]
struct NextDigestJson<'a> {
    papers: &'a [PreviewItem],
    /// The listing days searched.
    window: &'a Window,
    note: String,
    /// The topics as read, each with what it found over the last week.
    topics: &'a [TopicCount],
}

/// Ranks the papers of `window` for `profile` with a throw-away index over
/// the window's span (like the public preview: typed topics never grow a
/// shared cache).
async fn rank_window(
    app: &App,
    window: &Window,
    profile: &Profile,
    seen: &HashSet<PaperId>,
    feedback: &ReaderFeedback,
    limit: usize,
) -> Result<Vec<PreviewItem>, WebError> {
    let candidates = app.store.candidates_in(window).await?;
    let params = RankParams {
        span: window.span(),
        ..RankParams::default()
    };
    let index = CandidateIndex::build_with(&candidates, &app.synonyms, app.now(), params);
    Ok(index
        .rank_with_feedback(profile, seen, limit, feedback)
        .iter()
        .map(|p| PreviewItem::new(&candidates[p.index].paper, p))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved() -> Preferences {
        Preferences {
            topics: vec!["saved topic".into()],
            excluded: vec!["survey".into()],
            authors: vec!["Ada Lovelace".into()],
            categories: vec!["cs.LG".into()],
            ..Preferences::new(5, chrono::NaiveTime::MIN, chrono_tz::UTC)
        }
    }

    #[test]
    fn the_settings_preview_uses_every_edited_field_of_the_profile() {
        let q: HashMap<String, String> = [
            ("topics", "diffusion models\nRAG"),
            ("excluded", "benchmark, dataset"),
            ("authors", "Grace Hopper"),
            ("categories", "cs.CV, cs.CL"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = edited_profile(&saved(), &q);
        assert_eq!(p.topics, vec!["diffusion models", "RAG"]);
        assert_eq!(p.excluded, vec!["benchmark", "dataset"]);
        assert_eq!(p.authors, vec!["Grace Hopper"]);
        assert_eq!(p.categories, vec!["cs.CV", "cs.CL"]);
    }

    #[test]
    fn fields_the_page_did_not_send_keep_their_saved_values() {
        let q = HashMap::from([("topics".to_string(), "x".to_string())]);
        let p = edited_profile(&saved(), &q);
        assert_eq!(p.topics, vec!["x"]);
        assert_eq!(p.excluded, vec!["survey"]);
        assert_eq!(p.authors, vec!["Ada Lovelace"]);
        assert_eq!(p.categories, vec!["cs.LG"]);
    }

    #[test]
    fn the_weekly_day_travels_inside_the_frequency() {
        let q = HashMap::from([("frequency".to_string(), "weekly:friday".to_string())]);
        assert_eq!(
            form_frequency(&q),
            Some(Frequency::Weekly(chrono::Weekday::Fri))
        );
    }
}
