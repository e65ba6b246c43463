//! The settings page's live preview: what the reader's next digest would
//! contain, for the frequency chosen on the form (saved or not), from the
//! papers stored now. Same window as the digest engine (from the last day
//! their previous digest covered, `domain::window`), ranked with the
//! reader's feedback, minus the papers already mailed to them or judged
//! by them; the note names the listing days searched.

use super::handlers::{invalid_link, manage_subscriber, rate_limited, PreviewItem};
use super::{client_ip, WebError};
use crate::app::App;
use crate::domain::{Frequency, PaperId, Window};
use crate::rank::{CandidateIndex, Profile, RankParams, ReaderFeedback};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
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

/// `GET /manage/{token}/preview?topics=…&excluded=…&authors=…&frequency=…&weekly_day=…`:
/// JSON `{papers, window, note}`. Fields left out fall back to the saved
/// preferences.
pub(super) async fn preview(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, WebError> {
    if !app.preview_limiter.check(client_ip(&app, peer, &headers)) {
        return rate_limited(&app);
    }
    let Some((_, sub)) = manage_subscriber(&app, &raw).await? else {
        return invalid_link(&app);
    };
    let prefs = &sub.preferences;
    let frequency = form_frequency(&q).unwrap_or(prefs.frequency);
    let mut profile = Profile::from_preferences(prefs);
    let lines = |k: &str, n: usize, split: fn(&str) -> Vec<String>| {
        q.get(k)
            .map(|v| split(v).into_iter().take(n).collect::<Vec<_>>())
    };
    use crate::domain::{limits, split_lines, split_lines_only};
    if let Some(t) = lines("topics", limits::MAX_TOPICS, split_lines_only) {
        profile.topics = t;
    }
    if let Some(e) = lines("excluded", limits::MAX_EXCLUDED, split_lines) {
        profile.excluded = e;
    }
    if let Some(a) = lines("authors", limits::MAX_AUTHORS, split_lines_only) {
        profile.authors = a;
    }

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
    let items = if profile.topics.is_empty() && profile.authors.is_empty() {
        Vec::new()
    } else {
        let feedback = crate::digest::reader_feedback::load(&app, &[sub.id], now)
            .await?
            .remove(&sub.id)
            .unwrap_or_else(|| ReaderFeedback::none(now));
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
        rank_window(&app, &window, &profile, &seen, &feedback, limit).await?
    };
    let searched = window.describe();
    let note = if items.is_empty() {
        format!("Nothing listed {searched} matches yet; your digest waits for papers that do.")
    } else {
        format!("From the papers listed {searched}, leaving out those already sent to you.")
    };
    Ok((
        StatusCode::OK,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        axum::Json(json!({ "papers": items, "window": window, "note": note })),
    )
        .into_response())
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
