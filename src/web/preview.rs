//! The public preview (`GET /preview`, live as a visitor types topics) and
//! the home page's trending list, both from the shared candidate cache.
//! The settings page's preview of a reader's next digest is
//! `web::next_digest`.

use super::page::{message, rate_limited, Result};
use super::topics::{topic_counts, TopicCount};
use super::{client_ip, Availability, WebState};
use crate::app::App;
use crate::domain::{limits, parse_topics, split_lines, split_lines_only, Paper};
use crate::rank::{Pick, Profile};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;

/// One preview entry, as JSON for the live preview and as a page row.
#[derive(Debug, Serialize)]
pub(super) struct PreviewItem {
    pub(super) id: String,
    title: String,
    url: Option<String>,
    reason: String,
    score: f64,
    /// *Yes, like this* was chosen for it (pages only).
    pub(super) liked: bool,
    /// *Not this* was chosen for it (pages only).
    pub(super) rejected: bool,
    /// "118 upvotes (+12 in a day)", for the trending list.
    #[serde(skip)]
    popularity: String,
    /// (upvotes, gained in a day), the trending list's sort key.
    #[serde(skip)]
    votes: (i64, i64),
}

impl PreviewItem {
    pub(super) fn new(paper: &Paper, p: &Pick) -> PreviewItem {
        PreviewItem {
            id: paper.id.to_string(),
            title: paper.title.clone(),
            url: paper.abs_url(),
            popularity: match (p.reason.upvotes, p.reason.upvotes_gained) {
                (Some(u), Some(g)) if g > 0 => {
                    format!("{u} upvotes (+{g} {})", p.reason.span.gained_over())
                }
                (Some(u), _) => format!("{u} upvotes"),
                _ => String::new(),
            },
            votes: (
                p.reason.upvotes.unwrap_or(0),
                p.reason.upvotes_gained.unwrap_or(0),
            ),
            reason: p.reason.summary(),
            score: (p.score * 1000.0).round() / 1000.0,
            liked: false,
            rejected: false,
        }
    }
}

/// The preview for `profile`, and whether candidates exist at all (None
/// when the store could not be read: the page still renders).
async fn preview_items(
    web: &WebState,
    profile: &Profile,
    limit: usize,
) -> (Vec<PreviewItem>, Option<Availability>) {
    let (picker, availability) = match web.previews.get(web).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "preview unavailable");
            return (Vec::new(), None);
        }
    };
    let items = picker
        .preview(web, profile, limit)
        .await
        .into_iter()
        .map(|p| PreviewItem::new(&picker.candidates()[p.index].paper, &p))
        .collect();
    (items, Some(availability))
}

/// What the buttons of a preview do.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum SteerMode {
    /// Update the subscribe form's choices.
    Subscribe,
    /// Record feedback from the settings page.
    Settings,
}

/// The live preview section as a page renders it: empty and hidden until
/// script fills it, or ranked by the server (no script needed) when the
/// page already has a profile.
#[derive(Debug, Serialize)]
pub(super) struct PreviewView {
    pub(super) shown: bool,
    pub(super) items: Vec<PreviewItem>,
    pub(super) note: String,
    pub(super) steer: SteerMode,
    /// Subscribe page: where a button posts the form without script.
    pub(super) steer_url: String,
}

/// The subscribe page's preview for the typed `profile`, each paper
/// marked with the visitor's choice on it.
pub(super) async fn subscribe_preview(
    web: &WebState,
    profile: &Profile,
    choices: &[crate::domain::PreviewChoice],
) -> PreviewView {
    let steer_url = format!("{}subscribe/steer", web.links.home_url());
    if profile.topics.is_empty() {
        return PreviewView {
            shown: false,
            items: Vec::new(),
            note: String::new(),
            steer: SteerMode::Subscribe,
            steer_url,
        };
    }
    let (mut items, availability) = preview_items(web, profile, web.config.rank.preview_size).await;
    for i in &mut items {
        let choice = super::steer::choice_on(choices, &i.id);
        i.liked = choice.is_some_and(|a| a.is_positive());
        i.rejected = choice.is_some_and(|a| !a.is_positive());
    }
    PreviewView {
        shown: true,
        note: if items.is_empty() {
            empty_note(web, availability, true)
        } else {
            String::new()
        },
        items,
        steer: SteerMode::Subscribe,
        steer_url,
    }
}

/// The sentence shown instead of an empty preview or trending list.
fn empty_note(app: &App, availability: Option<Availability>, query: bool) -> String {
    match availability {
        Some(a) => a.empty_note(app.config.digest.candidate_days, query),
        None => "The preview is unavailable right now; your settings still work.".to_string(),
    }
}

/// One row of the trending list.
#[derive(Debug, Serialize)]
pub(super) struct TrendingPaper {
    title: String,
    url: Option<String>,
    meta: String,
}

/// The home page's trending list, or why it is empty.
#[derive(Debug, Serialize)]
pub(super) struct Trending {
    papers: Vec<TrendingPaper>,
    empty_note: Option<String>,
}

/// Today's trending papers for the subscribe page, most upvoted first:
/// the list shows upvotes, so it is ordered by them (ties by upvotes
/// gained in a day, then title), and the page says so.
pub(super) async fn trending(web: &WebState) -> Trending {
    let mut profile = Profile::topics(Vec::<String>::new());
    profile.fallback_trending = true;
    let (mut items, availability) =
        preview_items(web, &profile, web.config.rank.preview_size).await;
    items.sort_by(|a, b| b.votes.cmp(&a.votes).then_with(|| a.title.cmp(&b.title)));
    Trending {
        empty_note: items
            .is_empty()
            .then(|| empty_note(web, availability, false)),
        papers: items
            .into_iter()
            .map(|i| TrendingPaper {
                title: i.title,
                url: i.url,
                meta: i.popularity,
            })
            .collect(),
    }
}

/// The live preview's JSON answer.
#[derive(Serialize)]
struct PreviewJson<'a> {
    papers: &'a [PreviewItem],
    note: Option<&'a str>,
    /// The topics as read, each with what it found over the last week.
    topics: &'a [TopicCount],
}

/// `GET /preview?topics=…&excluded=…&authors=…&categories=…[&format=json]`:
/// what these preferences would receive from today's papers. Read-only;
/// the subscribe page's live preview calls it as the visitor types.
pub(super) async fn preview(
    State(web): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    if !web.limits.previews.check(client_ip(&web, peer, &headers)) {
        return rate_limited(&web);
    }
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let cap = |v: Vec<String>, n: usize| v.into_iter().take(n).collect::<Vec<_>>();
    let mut profile = Profile::topics(cap(parse_topics(get("topics")), limits::MAX_TOPICS));
    profile.excluded = cap(split_lines(get("excluded")), limits::MAX_EXCLUDED);
    profile.authors = cap(split_lines_only(get("authors")), limits::MAX_AUTHORS);
    profile.categories = cap(split_lines(get("categories")), limits::MAX_CATEGORIES);
    let (items, note) = if profile.topics.is_empty() && profile.authors.is_empty() {
        (
            Vec::new(),
            "Enter a topic or an author to see a preview.".to_string(),
        )
    } else {
        let (items, availability) =
            preview_items(&web, &profile, web.config.rank.preview_size).await;
        let note = if items.is_empty() {
            empty_note(&web, availability, true)
        } else {
            String::new()
        };
        (items, note)
    };
    if get("format") == "json" {
        let topics = topic_counts(&web, &profile).await;
        let body = PreviewJson {
            papers: &items,
            note: (!note.is_empty()).then_some(note.as_str()),
            topics: &topics,
        };
        return Ok((
            StatusCode::OK,
            [(header::CACHE_CONTROL, "no-store")],
            axum::Json(body),
        )
            .into_response());
    }
    let paragraphs: Vec<String> = if items.is_empty() {
        vec![note]
    } else {
        items
            .iter()
            .map(|i| format!("{} — {}", i.title, i.reason))
            .collect()
    };
    let refs: Vec<&str> = paragraphs.iter().map(String::as_str).collect();
    message(
        &web,
        StatusCode::OK,
        "Preview of your digest",
        &refs,
        Some(("Back to the subscribe page", web.links.home_url())),
        false,
    )
}
