//! The unsubscribe link: GET shows a page with one button (and the
//! topics, to edit instead); the POST is RFC 8058 one-click.

use super::page::{
    invalid_link, manage_subscriber, message_with, rate_limited, render, Extras, Layout, LinkView,
    Result,
};
use super::{client_ip, WebState};
use crate::domain::SubscriberState;
use crate::telemetry::Metrics;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use std::net::SocketAddr;

#[derive(Serialize)]
struct UnsubscribeView {
    already: bool,
    email: String,
    action_url: String,
    manage_url: String,
    topics: String,
}

pub(super) async fn unsubscribe_page(
    State(web): State<WebState>,
    Path(raw): Path<String>,
) -> Result<Response> {
    let Some((token, sub)) = manage_subscriber(&web, &raw).await? else {
        return invalid_link(&web);
    };
    let view = UnsubscribeView {
        already: sub.state == SubscriberState::Unsubscribed,
        email: sub.email.as_str().to_string(),
        action_url: web.links.unsubscribe_url(&token),
        manage_url: web.links.manage_url(&token),
        topics: sub.preferences.topics.join("\n"),
    };
    render(
        &web,
        StatusCode::OK,
        "unsubscribe",
        Layout::private(&web, "Unsubscribe"),
        &view,
    )
}

/// RFC 8058 one-click: the token in the path is the only
/// authority. Any body (urlencoded, multipart, empty) is accepted and not
/// parsed; no cookies, no CSRF check, no redirect; idempotent.
pub(super) async fn unsubscribe(
    State(web): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Response> {
    if !web.limits.forms.check(client_ip(&web, peer, &headers)) {
        return rate_limited(&web);
    }
    let Some((token, sub)) = manage_subscriber(&web, &raw).await? else {
        return invalid_link(&web);
    };
    let one_click = body
        .windows(b"List-Unsubscribe=One-Click".len())
        .any(|w| w == b"List-Unsubscribe=One-Click");
    let changed = web.store.unsubscribe(sub.id, web.now()).await?;
    if changed {
        Metrics::inc(&web.metrics.unsubscribes);
    }
    tracing::info!(subscriber = %sub.id, changed, one_click, "unsubscribe");
    let extras = Extras {
        links: vec![
            LinkView {
                text: "Changed your mind? Resume from your settings page".into(),
                url: web.links.manage_url(&token),
            },
            LinkView {
                text: "Subscribe again with other topics or another address".into(),
                url: web.links.home_url(),
            },
        ],
        next_digest: None,
    };
    message_with(
        &web,
        StatusCode::OK,
        "You are unsubscribed",
        &["You will receive no further digests. If this was a mistake, you can resume from your settings page: we will ask you to confirm by email once more."],
        &extras,
        true,
    )
}
