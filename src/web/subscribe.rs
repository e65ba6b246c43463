//! The home page's subscribe form and its POST (double opt-in, R28–R34).
//! A request that passes validation is answered with a redirect to
//! `/subscribe/sent`, the same whatever happened to the address (R31), so
//! a reload never posts it again.

use super::fields::{zone_choices, Choice, ErrorLink, Errors, Field};
use super::forms::{field, opt_field};
use super::page::{
    bad_form, confirm_limits, message, rate_limited, read_form, render, see_other, Layout, Result,
};
use super::preview::{trending, Trending};
use super::{client_ip, WebState};
use crate::app::App;
use crate::domain::{EmailAddress, FieldError, Preferences, PreferencesInput};
use crate::store::subscribers::{ConsentInput, ConsentMethod};
use crate::telemetry::Metrics;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;
use std::net::SocketAddr;

/// The consent statement shown on the subscribe form. Its SHA-256 goes
/// into every consent record (R43); change the text and new records carry
/// the new hash.
pub const CONSENT_TEXT: &str =
    "By subscribing you agree to receive one digest email at the time you choose. \
We store your address, topics and the time of your consent, nothing else. \
Every email has a one-click unsubscribe, and you can export or delete your data at any time.";

/// The one answer to every well-formed subscribe request (R31).
pub(super) const SUBSCRIBE_ACK: &str =
    "If that address can receive mail, we have sent it a confirmation link. \
Open it and press the button to start your digest. The link is valid for a limited time.";

pub(super) fn consent_hash() -> String {
    crate::domain::hash_canonical(CONSENT_TEXT)
}

/// The subscribe form's fields, in page order (focus goes to the first
/// one in error).
const FIELDS: &[&str] = &["email", "topics", "send_time", "time_zone"];

#[derive(Serialize)]
struct SubscribeForm {
    email: Field,
    topics: Field,
    send_time: Field,
    time_zone: Field,
}

#[derive(Serialize)]
struct SubscribeView {
    subscribe_url: String,
    form: SubscribeForm,
    errors: Vec<ErrorLink>,
    zones: Vec<Choice>,
    consent_text: &'static str,
    default_time_zone: String,
    trending: Trending,
    preview_url: String,
}

/// What the visitor typed, cut to the fields' lengths, shown back.
struct Typed {
    email: String,
    topics: String,
    send_time: String,
    time_zone: String,
}

async fn subscribe_form(
    web: &WebState,
    status: StatusCode,
    typed: Typed,
    errors: &[FieldError],
) -> Result<Response> {
    let e = Errors::new(errors, FIELDS);
    let view = SubscribeView {
        subscribe_url: format!("{}subscribe", web.links.home_url()),
        zones: zone_choices(&typed.time_zone),
        form: SubscribeForm {
            email: e.field("email", typed.email),
            topics: e.field("topics", typed.topics),
            send_time: e.field("send_time", typed.send_time),
            time_zone: e.field("time_zone", typed.time_zone),
        },
        errors: e.summary(),
        consent_text: CONSENT_TEXT,
        default_time_zone: web.config.digest.default_time_zone.name().to_string(),
        trending: trending(web).await,
        preview_url: format!("{}preview", web.links.home_url()),
    };
    render(
        web,
        status,
        "subscribe",
        Layout::public(web, "Subscribe"),
        &view,
    )
}

pub(super) async fn home(State(web): State<WebState>) -> Result<Response> {
    let typed = Typed {
        email: String::new(),
        topics: String::new(),
        send_time: web
            .config
            .digest
            .default_send_time
            .format("%H:%M")
            .to_string(),
        time_zone: web.config.digest.default_time_zone.name().to_string(),
    };
    subscribe_form(&web, StatusCode::OK, typed, &[]).await
}

fn default_preferences(app: &App) -> Preferences {
    Preferences {
        topics: Vec::new(),
        excluded: Vec::new(),
        authors: Vec::new(),
        categories: Vec::new(),
        digest_size: app.config.digest.default_size,
        frequency: crate::domain::Frequency::Daily,
        send_time: app.config.digest.default_send_time,
        time_zone: app.config.digest.default_time_zone,
        fallback_trending: false,
    }
}

/// `POST /subscribe`: validates, then records the request and queues the
/// confirmation mail (or, for a known address, what R31 prescribes).
pub(super) async fn subscribe(
    State(web): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    if !web.limits.forms.check(client_ip(&web, peer, &headers)) {
        return rate_limited(&web);
    }
    let form = match read_form(&headers, &body) {
        Ok(f) => f,
        Err(e) => {
            Metrics::inc(&web.metrics.subscribe_rejected);
            return bad_form(&web, e);
        }
    };
    let cut = |k: &str, n: usize| field(&form, k).chars().take(n).collect::<String>();
    let typed = Typed {
        email: cut("email", 254),
        topics: cut("topics", 2000),
        send_time: cut("send_time", 8),
        time_zone: cut("time_zone", 64),
    };
    let mut errors = Vec::new();
    let email = match EmailAddress::parse(field(&form, "email")) {
        Ok(e) => Some(e),
        Err(e) => {
            errors.push(FieldError {
                field: "email",
                message: e.to_string(),
            });
            None
        }
    };
    let input = PreferencesInput {
        topics: field(&form, "topics").to_string(),
        send_time: opt_field(&form, "send_time"),
        time_zone: opt_field(&form, "time_zone"),
        ..Default::default()
    };
    if field(&form, "topics").len() > 4000 {
        errors.push(FieldError {
            field: "topics",
            message: "The topics field is too long.".into(),
        });
    }
    let prefs = match input.validate(&default_preferences(&web)) {
        Ok(p) => Some(p),
        Err(mut e) => {
            errors.append(&mut e);
            None
        }
    };
    let (Some(email), Some(prefs), true) = (email, prefs, errors.is_empty()) else {
        Metrics::inc(&web.metrics.subscribe_rejected);
        return subscribe_form(&web, StatusCode::UNPROCESSABLE_ENTITY, typed, &errors).await;
    };

    // A filled honeypot gets the same answer and nothing else (R33).
    if !field(&form, "website").is_empty() {
        tracing::info!("subscribe: honeypot filled; ignored");
        return Ok(sent_redirect(&web));
    }
    Metrics::inc(&web.metrics.subscribe_requests);
    let consent = ConsentInput {
        method: ConsentMethod::WebForm,
        source: format!("{}subscribe", web.links.home_url()),
        consent_text_hash: consent_hash(),
        ip: web
            .config
            .subscribe
            .record_ip
            .then(|| client_ip(&web, peer, &headers).to_string()),
    };
    let limits = confirm_limits(&web);
    let links = web.links.clone();
    let hash_fn = move |id, generation| links.manage_token_hash(id, generation);
    let (outcome, id) = web
        .store
        .request_subscription(&email, &prefs, &consent, &limits, &hash_fn, web.now())
        .await?;
    tracing::info!(subscriber = ?id.map(|i| i.0), outcome = ?outcome, "subscribe request");
    web.outbox_wake.notify_one();
    Ok(sent_redirect(&web))
}

fn sent_redirect(app: &App) -> Response {
    see_other(&format!("{}subscribe/sent", app.links.home_url()))
}

/// `GET /subscribe/sent`: where a subscribe request lands.
pub(super) async fn sent(State(web): State<WebState>) -> Result<Response> {
    message(
        &web,
        StatusCode::OK,
        "Check your inbox",
        &[SUBSCRIBE_ACK],
        None,
        false,
    )
}
