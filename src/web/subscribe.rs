//! The home page's subscribe form and its POST (double opt-in).
//! A request that passes validation is answered with a redirect to
//! `/subscribe/sent`, so a reload never posts it again. That page shows
//! the address and what happened to its mail, in words that never depend
//! on whether the address is subscribed (`web::receipt`).

use super::fields::{ErrorLink, Errors, Field};
use super::forms::{field, opt_field};
use super::page::{
    bad_form, confirm_limits, message_with, rate_limited, read_form, render, see_other, Extras,
    Layout, LinkView, Result,
};
use super::preview::{subscribe_preview, trending, PreviewView, Trending};
use super::receipt::{MailAnswer, Receipt};
use super::steer::{choice_fields, form_choices, parse_press, press, refused, ChoiceField, Draft};
use super::topics::{topic_counts, TopicCount};
use super::when::local_label;
use super::zones::{zone_choices, ZoneChoices};
use super::{client_ip, FormError, WebState};
use crate::app::App;
use crate::domain::{
    limits, parse_topics, EmailAddress, FieldError, Preferences, PreferencesInput, PreviewChoice,
};
use crate::rank::Profile;
use crate::store::subscribers::{ConsentInput, ConsentMethod, SubscribeOutcome, SubscribeRequest};
use crate::telemetry::Metrics;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;

/// The consent statement shown on the subscribe form. Its SHA-256 goes
/// into every consent record; change the text and new records carry
/// the new hash.
pub const CONSENT_TEXT: &str =
    "By subscribing you agree to receive one digest email at the time you choose. \
We store your address, topics and the time of your consent, nothing else. \
Every email has a one-click unsubscribe, and you can export or delete your data at any time.";

pub(super) fn consent_hash() -> String {
    crate::domain::hash_canonical(CONSENT_TEXT)
}

/// The subscribe form's fields, in page order (focus goes to the first
/// one in error).
const FIELDS: &[&str] = &["email", "topics", "send_time", "time_zone", "preview"];

#[derive(Serialize)]
struct SubscribeForm {
    email: Field,
    topics: Field,
    send_time: Field,
    time_zone: Field,
    fallback_trending: bool,
    /// Where a refused preview choice is reported.
    preview: Field,
}

#[derive(Serialize)]
struct SubscribeView {
    subscribe_url: String,
    form: SubscribeForm,
    errors: Vec<ErrorLink>,
    /// The typed topics as read, with what each found.
    topics: Vec<TopicCount>,
    zones: ZoneChoices,
    consent_text: &'static str,
    default_time_zone: String,
    trending: Trending,
    preview_url: String,
    /// The live preview, ranked here when the form has topics (so it and
    /// its buttons work without script).
    preview: PreviewView,
    /// The *Yes, like this* / *Not this* choices, as hidden fields.
    choices: Vec<ChoiceField>,
}

/// What the visitor typed, cut to the fields' lengths, shown back.
pub(super) struct Typed {
    pub email: String,
    pub topics: String,
    pub send_time: String,
    pub time_zone: String,
    pub fallback_trending: bool,
}

/// The form's fields as typed, cut to their lengths.
pub(super) fn typed(form: &HashMap<String, Vec<String>>) -> Typed {
    let cut = |k: &str, n: usize| field(form, k).chars().take(n).collect::<String>();
    Typed {
        email: cut("email", 254),
        topics: cut("topics", 2000),
        send_time: cut("send_time", 8),
        time_zone: cut("time_zone", 64),
        fallback_trending: field(form, "fallback_trending") == "on",
    }
}

async fn subscribe_form(
    web: &WebState,
    status: StatusCode,
    typed: Typed,
    choices: &[PreviewChoice],
    errors: &[FieldError],
) -> Result<Response> {
    let e = Errors::new(errors, FIELDS);
    let profile = Profile::topics(
        parse_topics(&typed.topics)
            .into_iter()
            .take(limits::MAX_TOPICS),
    );
    let view = SubscribeView {
        subscribe_url: format!("{}subscribe", web.links.home_url()),
        zones: zone_choices(&typed.time_zone, web.now()),
        topics: topic_counts(web, &profile).await,
        form: SubscribeForm {
            email: e.field("email", typed.email),
            topics: e.field("topics", typed.topics),
            send_time: e.field("send_time", typed.send_time),
            time_zone: e.field("time_zone", typed.time_zone),
            fallback_trending: typed.fallback_trending,
            preview: e.field("preview", String::new()),
        },
        errors: e.summary(),
        consent_text: CONSENT_TEXT,
        default_time_zone: web.config.digest.default_time_zone.name().to_string(),
        trending: trending(web).await,
        preview_url: format!("{}preview", web.links.home_url()),
        preview: subscribe_preview(web, &profile, choices).await,
        choices: choice_fields(choices),
    };
    render(
        web,
        status,
        "subscribe",
        Layout::public(web, "Subscribe"),
        &view,
    )
}

/// `GET /[?d=…]`: the subscribe page; `d` is a sealed draft (the form
/// as typed when a preview button was pressed without script).
pub(super) async fn home(
    State(web): State<WebState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    if let Some(d) = q.get("d").and_then(|d| Draft::open(&web, d, web.now())) {
        let typed = Typed {
            email: d.email,
            topics: d.topics,
            send_time: d.send_time,
            time_zone: d.time_zone,
            fallback_trending: d.fallback_trending,
        };
        return subscribe_form(&web, StatusCode::OK, typed, &d.choices, &[]).await;
    }
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
        fallback_trending: false,
    };
    subscribe_form(&web, StatusCode::OK, typed, &[], &[]).await
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

/// A form that did not validate: what to show again, and why.
struct Rejected {
    typed: Typed,
    choices: Vec<PreviewChoice>,
    errors: Vec<FieldError>,
}

/// A subscribe form that validated.
struct Request {
    email: EmailAddress,
    prefs: Preferences,
    choices: Vec<PreviewChoice>,
}

/// A subscribe form read: the address, preferences and preview choices,
/// or what to show again with the errors.
fn read_request(
    web: &WebState,
    form: &HashMap<String, Vec<String>>,
) -> std::result::Result<Request, Box<Rejected>> {
    let typed = typed(form);
    let fallback_trending = typed.fallback_trending;
    let mut errors = Vec::new();
    let choices = form_choices(form)
        .map_err(|e| {
            errors.push(FieldError {
                field: "preview",
                message: e.to_string(),
            })
        })
        .unwrap_or_default();
    let email = EmailAddress::parse(field(form, "email"))
        .map_err(|e| {
            errors.push(FieldError {
                field: "email",
                message: e.to_string(),
            })
        })
        .ok();
    if field(form, "topics").len() > 4000 {
        errors.push(FieldError {
            field: "topics",
            message: "The topics field is too long.".into(),
        });
    }
    let input = PreferencesInput {
        topics: field(form, "topics").to_string(),
        send_time: opt_field(form, "send_time"),
        time_zone: opt_field(form, "time_zone"),
        fallback_trending,
        ..Default::default()
    };
    let prefs = input
        .validate(&default_preferences(web))
        .map_err(|mut e| errors.append(&mut e))
        .ok();
    match (email, prefs) {
        (Some(email), Some(prefs)) if errors.is_empty() => Ok(Request {
            email,
            prefs,
            choices,
        }),
        _ => Err(Box::new(Rejected {
            typed,
            choices,
            errors,
        })),
    }
}

/// `POST /subscribe`: validates, then records the request and queues the
/// confirmation mail (or, for a known address, the mail its state calls for, while the visitor sees the same answer as for a new one), and
/// redirects to the page that says what happened to the mail.
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
    let Request {
        email,
        prefs,
        choices,
    } = match read_request(&web, &form) {
        Ok(request) => request,
        Err(rejected) => {
            let Rejected {
                typed,
                choices,
                errors,
            } = *rejected;
            Metrics::inc(&web.metrics.subscribe_rejected);
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return subscribe_form(&web, status, typed, &choices, &errors).await;
        }
    };
    // A filled honeypot gets the same answer and nothing else.
    if !field(&form, "website").is_empty() {
        tracing::info!("subscribe: honeypot filled; ignored");
        return sent_redirect(&web, &email, &prefs, MailAnswer::Sent);
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
    let request = SubscribeRequest {
        email: &email,
        prefs: &prefs,
        consent: &consent,
        choices: &choices,
    };
    request_and_answer(&web, request).await
}

/// `POST /subscribe/steer` (no-script path): the subscribe form with the
/// button pressed (`steer=more:<paper>`, `steer=not_for_me:<paper>`, or
/// `steer=preview` to show the preview), answered with a redirect to the
/// subscribe page showing the form, the preview and the choices.
pub(super) async fn steer(
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
        Err(e) => return bad_form(&web, e),
    };
    let mut choices = match form_choices(&form) {
        Ok(c) => c,
        Err(e) => return refused(&web, &e),
    };
    let pressed = field(&form, "steer");
    if pressed != "preview" {
        match parse_press(pressed) {
            Ok(Some(p)) => {
                if let Err(e) = press(&mut choices, p) {
                    return refused(&web, &e);
                }
            }
            Ok(None) => return bad_form(&web, FormError::Malformed),
            Err(e) => return refused(&web, &e),
        }
    }
    let typed = typed(&form);
    let draft = Draft {
        email: typed.email,
        topics: typed.topics,
        send_time: typed.send_time,
        time_zone: typed.time_zone,
        fallback_trending: typed.fallback_trending,
        choices,
        issued: web.now(),
    };
    let sealed = draft.seal(&web)?;
    Ok(see_other(&format!(
        "{}?d={sealed}#preview",
        web.links.home_url()
    )))
}

/// Records a subscription request (a new one, or back through double
/// opt-in) and redirects to the page that says what happened to its mail.
pub(super) async fn request_and_answer(
    web: &WebState,
    request: SubscribeRequest<'_>,
) -> Result<Response> {
    let SubscribeRequest { email, prefs, .. } = request;
    let limits = confirm_limits(web);
    let links = web.links.clone();
    let hash_fn = move |id, generation| links.manage_token_hash(id, generation);
    let now = web.now();
    let (outcome, id) = web
        .store
        .request_subscription(request, &limits, &hash_fn, now)
        .await?;
    tracing::info!(subscriber = ?id.map(|i| i.0), outcome = ?outcome, "subscribe request");
    web.outbox_wake.notify_one();
    let queued = !matches!(outcome, SubscribeOutcome::RateLimited);
    let sent = web.store.recent_mails_to(email, now).await?;
    let answer = MailAnswer::of(queued, &sent, &limits, now);
    sent_redirect(web, email, prefs, answer)
}

/// 303 to `/subscribe/sent` with the sealed receipt.
fn sent_redirect(
    app: &App,
    email: &EmailAddress,
    prefs: &Preferences,
    answer: MailAnswer,
) -> Result<Response> {
    let receipt = Receipt {
        to: email.as_str().to_string(),
        zone: prefs.time_zone.name().to_string(),
        answer,
        issued: app.now(),
    };
    let sealed = receipt.seal(&app.links)?;
    Ok(see_other(&format!(
        "{}subscribe/sent?r={sealed}",
        app.links.home_url()
    )))
}

/// `GET /subscribe/sent?r=…`: where a subscribe request lands. Shows the
/// address and what happened to its mail while the receipt is current,
/// the general answer otherwise.
pub(super) async fn sent(
    State(web): State<WebState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    let receipt = q
        .get("r")
        .and_then(|r| Receipt::open(&web.links, r, web.now()));
    let (title, paragraphs) = inbox_words(&web, receipt.as_ref());
    let refs: Vec<&str> = paragraphs.iter().map(String::as_str).collect();
    let extras = Extras {
        links: vec![LinkView {
            text: "Wrong address? Subscribe with another".into(),
            url: web.links.home_url(),
        }],
        next_digest: None,
    };
    let mut r = message_with(&web, StatusCode::OK, title, &refs, &extras, false)?;
    // The page names the address: keep it out of caches and Referer.
    r.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(r)
}

/// The heading and paragraphs of the inbox page: the same words for every
/// address in one state (see `web::receipt`).
fn inbox_words(app: &App, receipt: Option<&Receipt>) -> (&'static str, Vec<String>) {
    let open = "Open the link in it and press the button on the page it opens. \
Nothing after a few minutes? Look in your spam folder."
        .to_string();
    let Some(r) = receipt else {
        return (
            "Check your inbox",
            vec![
                "If that address can receive mail from us, a message with a link is on its way to it."
                    .into(),
                open,
            ],
        );
    };
    let s = &app.config.subscribe;
    let zone = r.zone.parse().unwrap_or(chrono_tz::UTC);
    let at = |t: DateTime<Utc>| clock_label(zone, t, app.now());
    match r.answer {
        MailAnswer::Sent => (
            "Check your inbox",
            vec![
                format!("If {} can receive mail from us, a message with a link is on its way to it.", r.to),
                open,
            ],
        ),
        MailAnswer::Recent { last, next } => (
            "A message is already on its way",
            vec![
                format!(
                    "We sent a message with a link to {} at {}, if that address can receive mail from us. \
To protect mailboxes we send {} to an address, so none was sent now.",
                    r.to,
                    at(last),
                    limits_phrase(s.per_address_min_interval, s.per_address_per_day),
                ),
                format!(
                    "Use the link in that message (look in your spam folder too). You can ask for another from {}.",
                    at(next)
                ),
            ],
        ),
        MailAnswer::Busy => (
            "Please try again later",
            vec![format!(
                "We are sending many confirmation messages right now, so none was sent to {}. Please try again in an hour.",
                r.to
            )],
        ),
    }
}

/// "at most one every 15 minutes and 3 a day", as configured.
fn limits_phrase(interval: chrono::TimeDelta, per_day: u32) -> String {
    match interval.num_minutes() {
        0 => format!("at most {per_day} a day"),
        1 => format!("at most one a minute and {per_day} a day"),
        m => format!("at most one every {m} minutes and {per_day} a day"),
    }
}

/// "14:02 Berlin time", with the day when it is not today there
/// ("Saturday 13 June, 09:12 Berlin time").
fn clock_label(zone: Tz, t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if t.with_timezone(&zone).date_naive() == now.with_timezone(&zone).date_naive() {
        let label = local_label(zone, t, now);
        label
            .split_once(", ")
            .map_or(label.clone(), |(_, time)| time.to_string())
    } else {
        local_label(zone, t, now)
    }
}
