//! The confirmation link: GET shows a button and changes nothing,
//! the POST confirms. A used link finds its way back through
//! `web::recovery`.

use super::page::{
    invalid_link, message_with, path_token, refuse_form_post, render, Extras, Layout, LinkView,
    Result,
};
use super::when::next_digest;
use super::WebState;
use crate::domain::TokenPurpose;
use crate::store::subscribers::ConfirmOutcome;
use crate::telemetry::Metrics;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use std::net::SocketAddr;

#[derive(Serialize)]
struct ConfirmView {
    action_url: String,
}

pub(super) async fn confirm_page(
    State(web): State<WebState>,
    Path(raw): Path<String>,
) -> Result<Response> {
    let Some(token) = path_token(&raw) else {
        return invalid_link(&web);
    };
    // Looking the token up changes nothing: GET never confirms.
    let valid = web
        .store
        .subscriber_for_token(&token.hash(), TokenPurpose::Confirm, web.now())
        .await?
        .is_some();
    if !valid {
        return super::recovery::used_or_invalid(&web, &token).await;
    }
    let view = ConfirmView {
        action_url: web.links.confirm_url(&token),
    };
    render(
        &web,
        StatusCode::OK,
        "confirm",
        Layout::private(&web, "Confirm your subscription"),
        &view,
    )
}

pub(super) async fn confirm(
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
    match web.store.confirm(&token.hash(), web.now()).await? {
        // A second press (reload, double click) finds the link used.
        ConfirmOutcome::Invalid => super::recovery::used_or_invalid(&web, &token).await,
        ConfirmOutcome::Confirmed(sub) => {
            Metrics::inc(&web.metrics.confirmations);
            tracing::info!(subscriber = %sub.id, "subscription confirmed");
            let manage = web.links.manage_token(sub.id, sub.token_generation);
            let extras = Extras {
                links: vec![LinkView {
                    text: "Open my settings".into(),
                    url: web.links.manage_url(&manage),
                }],
                next_digest: next_digest(&web, &sub).await?,
            };
            message_with(
                &web,
                StatusCode::OK,
                "You are subscribed",
                &[
                    "Every digest has links to change your topics or unsubscribe.",
                    "Bookmark your settings page below to fine-tune topics, excluded words, followed authors and frequency.",
                ],
                &extras,
                true,
            )
        }
    }
}
