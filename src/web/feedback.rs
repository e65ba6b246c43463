//! The feedback links of the digests (*More like this*, *Not for me*,
//! *Save*), the reading list and feedback on the settings page, and the
//! address of the settings page's live preview (served by
//! `web::next_digest`, which applies the reader's feedback and window).
//!
//! A feedback link's token is an HMAC (see [`crate::links`]): nothing
//! about it is stored, and it stops working when the manage link is
//! rotated or the subscriber deleted. Mail scanners open links, so GET
//! only shows a page with one button; the POST records, idempotently,
//! under the same rate limit and cross-site rules as the other forms, and
//! redirects back to the page. No cookies are set.

use super::done::Done;
use super::forms::field;
use super::page::{
    bad_form, invalid_link, read_form, refuse_form_post, render, see_other, Layout, Result,
};
use super::WebState;
use crate::app::App;
use crate::domain::{FeedbackAction, FeedbackEntry, Paper, PaperId, PreferencesInput, Token};
use crate::links::FeedbackClaim;
use crate::rank::suggest_authors;
use crate::store::feedback::Recorded;
use crate::store::subscribers::Subscriber;
use crate::store::StoreError;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;

/// Authors suggested on the settings page must recur in this many liked
/// or saved papers.
const SUGGEST_MIN_PAPERS: usize = 2;
const SUGGEST_LIMIT: usize = 5;

/// The subscriber a feedback token was signed for, if it is valid now.
async fn verified(app: &App, raw: &str) -> Result<Option<(FeedbackClaim, Subscriber)>> {
    let Some(claim) = FeedbackClaim::parse(raw) else {
        return Ok(None);
    };
    let sub = match app.store.subscriber(claim.subscriber).await {
        Ok(s) => s,
        Err(StoreError::NotFound) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if !app.links.verify_feedback(&claim, sub.token_generation) {
        return Ok(None);
    }
    Ok(Some((claim, sub)))
}

/// What the page says and which button it shows.
enum PageState {
    /// GET: nothing recorded yet for this action.
    Offer { replaces: Option<FeedbackAction> },
    /// This action is recorded (just now, or earlier): offer undo.
    Recorded { now: bool },
    /// Just undone: offer to record again.
    Undone,
}

fn heading(action: FeedbackAction) -> &'static str {
    match action {
        FeedbackAction::More => "More papers like this?",
        FeedbackAction::NotForMe => "Fewer papers like this?",
        FeedbackAction::Save => "Save this paper?",
    }
}

fn page(
    app: &App,
    raw: &str,
    claim: &FeedbackClaim,
    sub: &Subscriber,
    paper: &Paper,
    state: PageState,
) -> Result<Response> {
    let a = claim.action;
    let (heading, paragraphs, button, form_do, secondary): (&str, Vec<String>, &str, &str, bool) =
        match state {
            PageState::Offer { replaces } => {
                let mut p = vec![match a {
                    FeedbackAction::More => "Your next digests will rank papers similar to this one higher.".to_string(),
                    FeedbackAction::NotForMe => "Your next digests will rank papers similar to this one lower.".to_string(),
                    FeedbackAction::Save => "It goes on your reading list on the settings page, and papers like it rank higher.".to_string(),
                }];
                if let Some(r) = replaces {
                    p.push(format!("This replaces your earlier “{}”.", r.label()));
                }
                (heading(a), p, a.label(), "record", false)
            }
            PageState::Recorded { now } => (
                if now {
                    "Thank you, noted"
                } else {
                    "Already noted"
                },
                vec![format!(
                    "You chose “{}” for this paper. Changed your mind? Undo it.",
                    a.label()
                )],
                "Undo",
                "undo",
                true,
            ),
            PageState::Undone => (
                "Undone",
                vec!["We removed your feedback on this paper.".to_string()],
                a.label(),
                "record",
                true,
            ),
        };
    let manage = app.links.manage_token(sub.id, sub.token_generation);
    let view = FeedbackPage {
        heading,
        paper_title: &paper.title,
        paper_url: paper.abs_url(),
        paragraphs,
        action_url: app.links.feedback_url(raw),
        form_do,
        button,
        secondary,
        manage_url: app.links.manage_url(&manage),
    };
    render(
        app,
        StatusCode::OK,
        "feedback",
        Layout::private(app, heading),
        &view,
    )
}

#[derive(Serialize)]
struct FeedbackPage<'a> {
    heading: &'a str,
    paper_title: &'a str,
    paper_url: Option<String>,
    paragraphs: Vec<String>,
    action_url: String,
    form_do: &'a str,
    button: &'a str,
    secondary: bool,
    manage_url: String,
}

async fn paper_of(app: &App, id: &PaperId) -> Result<Option<Paper>> {
    Ok(app.store.paper(id).await?)
}

/// `GET /feedback/{token}[?done=recorded|undone]`: the one-button page.
/// Records nothing; `done` (where the POST redirects) words the page for
/// what was just done, while what is stored decides which button shows.
pub(super) async fn feedback_page(
    State(web): State<WebState>,
    Path(raw): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    let Some((claim, sub)) = verified(&web, &raw).await? else {
        return invalid_link(&web);
    };
    let Some(paper) = paper_of(&web, &claim.paper).await? else {
        return invalid_link(&web);
    };
    let done = q.get("done").map(String::as_str);
    let state = match web.store.feedback_on(sub.id, &claim.paper).await? {
        Some(e) if e.action == claim.action => PageState::Recorded {
            now: done == Some("recorded"),
        },
        None if done == Some("undone") => PageState::Undone,
        other => PageState::Offer {
            replaces: other.map(|e| e.action),
        },
    };
    page(&web, &raw, &claim, &sub, &paper, state)
}

/// `POST /feedback/{token}` with `do=record` or `do=undo`; redirects to
/// the page (post/redirect/get), so a reload never posts again.
pub(super) async fn feedback(
    State(web): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Response> {
    if let Some(refused) = refuse_form_post(&web, peer, &headers) {
        return refused;
    }
    let Some((claim, sub)) = verified(&web, &raw).await? else {
        return invalid_link(&web);
    };
    let form = match read_form(&headers, &body) {
        Ok(f) => f,
        Err(e) => return bad_form(&web, e),
    };
    if paper_of(&web, &claim.paper).await?.is_none() {
        return invalid_link(&web);
    }
    let done = match field(&form, "do") {
        "record" => {
            let r = web
                .store
                .record_feedback(sub.id, &claim.paper, claim.action, web.now())
                .await?;
            tracing::info!(subscriber = %sub.id, paper = %claim.paper, action = claim.action.as_str(), changed = r == Recorded::Changed, "feedback");
            "recorded"
        }
        "undo" => {
            let removed = web.store.remove_feedback(sub.id, &claim.paper).await?;
            tracing::info!(subscriber = %sub.id, paper = %claim.paper, removed, "feedback undone");
            "undone"
        }
        _ => return bad_form(&web, super::FormError::Malformed),
    };
    Ok(see_other(&format!(
        "{}?done={done}",
        web.links.feedback_url(&raw)
    )))
}

pub(super) fn manage_preview_url(app: &App, token: &Token) -> String {
    format!("{}/preview", app.links.manage_url(token))
}

/// A paper on the settings page's reading list or feedback lists.
#[derive(Debug, Serialize)]
pub(super) struct PaperRow {
    id: String,
    title: String,
    url: Option<String>,
    at: String,
}

fn paper_row(p: &Paper, e: &FeedbackEntry) -> PaperRow {
    PaperRow {
        id: p.id.as_str().to_string(),
        title: p.title.clone(),
        url: p.abs_url(),
        at: e.at.format("%-d %B %Y").to_string(),
    }
}

#[derive(Debug, Serialize)]
pub(super) struct SuggestedAuthor {
    name: String,
    papers: usize,
}

/// The settings page's reading list (saved), liked and not-for-me
/// papers, and the authors suggested from them.
#[derive(Debug, Serialize)]
pub(super) struct FeedbackSettings {
    any: bool,
    saved: Vec<PaperRow>,
    liked: Vec<PaperRow>,
    not_for_me: Vec<PaperRow>,
    suggested_authors: Vec<SuggestedAuthor>,
}

pub(super) async fn settings(app: &App, sub: &Subscriber) -> Result<FeedbackSettings> {
    let mut all = app.store.feedback_with_papers(&[sub.id]).await?;
    let list = all.remove(&sub.id).unwrap_or_default();
    let rows = |a: FeedbackAction| -> Vec<PaperRow> {
        list.iter()
            .filter(|(e, _)| e.action == a)
            .map(|(e, p)| paper_row(p, e))
            .collect()
    };
    let liked: Vec<&Paper> = list
        .iter()
        .filter(|(e, _)| e.action.is_positive())
        .map(|(_, p)| p.as_ref())
        .collect();
    let suggested_authors = suggest_authors(
        &liked,
        &sub.preferences.authors,
        SUGGEST_MIN_PAPERS,
        SUGGEST_LIMIT,
    )
    .into_iter()
    .map(|(name, papers)| SuggestedAuthor { name, papers })
    .collect();
    Ok(FeedbackSettings {
        any: !list.is_empty(),
        saved: rows(FeedbackAction::Save),
        liked: rows(FeedbackAction::More),
        not_for_me: rows(FeedbackAction::NotForMe),
        suggested_authors,
    })
}

/// The settings page's "Remove" beside a paper; `None` for a malformed id.
pub(super) async fn forget(app: &App, sub: &Subscriber, raw: &str) -> Result<Option<Done>> {
    // Only this subscriber's rows can match, so any id is harmless.
    if raw.is_empty() || raw.len() > 128 {
        return Ok(None);
    }
    let id = PaperId::from_stored(raw.to_string());
    app.store.remove_feedback(sub.id, &id).await?;
    Ok(Some(Done::Removed))
}

/// The settings page's "Follow" beside a suggested author; `None` when
/// `name` is not one of the suggestions.
pub(super) async fn follow(app: &App, sub: &Subscriber, name: &str) -> Result<Option<Done>> {
    let offered = settings(app, sub).await?;
    if !offered.suggested_authors.iter().any(|s| s.name == name) {
        return Ok(None);
    }
    let mut input = PreferencesInput::from_preferences(&sub.preferences);
    if !input.authors.is_empty() {
        input.authors.push('\n');
    }
    input.authors.push_str(name);
    Ok(Some(match input.validate(&sub.preferences) {
        Ok(prefs) => {
            app.store
                .update_preferences(sub.id, &prefs, app.now())
                .await?;
            Done::Followed
        }
        Err(_) => Done::AuthorsFull,
    }))
}
