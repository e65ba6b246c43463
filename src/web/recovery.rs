//! Finding the way back after confirming: reopening a used confirmation
//! link says so and offers to mail the settings link, since before the
//! first digest no other mail carries it.
//!
//! The confirmation token in the path is the only authority, as for
//! confirming itself; the answer to a request is the same whether a mail
//! was queued or held back by the per-address and global limits,
//! and the mail only ever goes to the subscribed address.

use super::page::{
    confirm_limits, invalid_link, message, path_token, refuse_form_post, render, see_other, Layout,
    Result,
};
use super::WebState;
use crate::app::App;
use crate::domain::Token;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use std::net::SocketAddr;

#[derive(Serialize)]
struct ConfirmedView {
    action_url: String,
}

/// The page for a confirmation link that no longer confirms: "already
/// subscribed" with the settings-link button when it was used by a
/// subscriber who still is one, the invalid-link page otherwise.
pub(super) async fn used_or_invalid(app: &App, token: &Token) -> Result<Response> {
    if app
        .store
        .used_confirm_link_owner(&token.hash())
        .await?
        .is_none()
    {
        return invalid_link(app);
    }
    let view = ConfirmedView {
        action_url: format!("{}/settings-link", app.links.confirm_url(token)),
    };
    render(
        app,
        StatusCode::OK,
        "confirmed",
        Layout::private(app, "You are already subscribed"),
        &view,
    )
}

/// `POST /confirm/{token}/settings-link`: queue the settings-link mail.
pub(super) async fn settings_link(
    State(web): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Result<Response> {
    if let Some(refused) = refuse_form_post(&web, peer, &headers) {
        return refused;
    }
    let Some(token) = path_token(&raw) else {
        return invalid_link(&web);
    };
    let hash = token.hash();
    if web.store.used_confirm_link_owner(&hash).await?.is_none() {
        return invalid_link(&web);
    }
    let queued = web
        .store
        .request_settings_link(&hash, &confirm_limits(&web), web.now())
        .await?;
    if queued {
        web.outbox_wake.notify_one();
    }
    tracing::info!(
        queued,
        "settings link requested from a used confirmation link"
    );
    Ok(see_other(&format!(
        "{}settings-link/sent",
        web.links.home_url()
    )))
}

/// `GET /settings-link/sent`: the answer to a settings-link request, the
/// same whether or not a mail went out (after the POST, so a reload asks
/// for nothing).
pub(super) async fn settings_link_sent(State(web): State<WebState>) -> Result<Response> {
    message(
        &web,
        StatusCode::OK,
        "Check your inbox",
        &["Your settings link is on its way to your address. We send at most one such mail every few minutes, so if one arrived just now, use that one."],
        None,
        true,
    )
}
