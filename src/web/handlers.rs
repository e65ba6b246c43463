//! Route handlers.

use super::forms::{field, opt_field, parse_urlencoded, FormError};
use super::{client_ip, html_page, is_cross_site, token_page, Availability, WebError};
use crate::app::App;
use crate::domain::{
    weekday_name, EmailAddress, FieldError, Preferences, PreferencesInput, SubscriberState, Token,
    TokenPurpose,
};
use crate::store::subscribers::{
    ConfirmLimits, ConfirmOutcome, ConsentInput, ConsentMethod, Subscriber, SuppressionReason,
};
use crate::telemetry::{write_gauge, Metrics};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Weekday;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;

type Result<T, E = WebError> = std::result::Result<T, E>;

/// The consent statement shown on the subscribe form. Its SHA-256 goes
/// into every consent record (R43); change the text and new records carry
/// the new hash.
pub const CONSENT_TEXT: &str =
    "By subscribing you agree to receive one digest email at the time you choose. \
We store your address, topics and the time of your consent, nothing else. \
Every email has a one-click unsubscribe, and you can export or delete your data at any time.";

/// The one answer to every well-formed subscribe request (R31).
const SUBSCRIBE_ACK: &str =
    "If that address can receive mail, we have sent it a confirmation link. \
Open it and press the button to start your digest. The link is valid for a limited time.";

fn consent_hash() -> String {
    crate::domain::hash_canonical(CONSENT_TEXT)
}

pub(super) fn base(app: &App, title: &str) -> Value {
    json!({ "title": title, "home_url": app.links.home_url(), "noindex": false })
}

pub(super) fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// A generic page with a heading and paragraphs.
pub(super) fn message(
    app: &App,
    status: StatusCode,
    title: &str,
    paragraphs: &[&str],
    link: Option<(&str, String)>,
    token_route: bool,
) -> Result<Response> {
    let data = merge(
        base(app, title),
        json!({
            "noindex": token_route,
            "heading": title,
            "paragraphs": paragraphs,
            "link_url": link.as_ref().map(|l| l.1.clone()),
            "link_text": link.as_ref().map(|l| l.0),
        }),
    );
    let html = app.renderer.page("message", &data)?;
    Ok(if token_route {
        token_page(status, html)
    } else {
        html_page(status, html)
    })
}

pub(super) fn invalid_link(app: &App) -> Result<Response> {
    message(
        app,
        StatusCode::NOT_FOUND,
        "This link is not valid",
        &[
            "The link may have expired, been used already, or been copied incompletely.",
            "To subscribe again, use the form on our home page; to change settings, use the link in your latest digest.",
        ],
        Some(("Go to the subscribe page", app.links.home_url())),
        true,
    )
}

pub(super) fn rate_limited(app: &App) -> Result<Response> {
    Metrics::inc(&app.metrics.rate_limited);
    let mut r = message(
        app,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many requests",
        &["Please wait a minute and try again."],
        None,
        false,
    )?;
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
    Ok(r)
}

/// The answer to a state-changing form POST that must not proceed: over
/// the per-IP rate, or sent from another site. `None` lets it through.
pub(super) fn refuse_form_post(
    app: &App,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Option<Result<Response>> {
    if !app.rate_limiter.check(client_ip(app, peer, headers)) {
        return Some(rate_limited(app));
    }
    if is_cross_site(app, headers) {
        return Some(forbidden_cross_site(app));
    }
    None
}

pub(super) fn forbidden_cross_site(app: &App) -> Result<Response> {
    message(
        app,
        StatusCode::FORBIDDEN,
        "Request refused",
        &["This form can only be submitted from paperboy's own pages."],
        Some(("Go to the home page", app.links.home_url())),
        true,
    )
}

pub(super) fn bad_form(app: &App, e: FormError) -> Result<Response> {
    message(
        app,
        StatusCode::BAD_REQUEST,
        "That request could not be read",
        &[&e.to_string()],
        None,
        false,
    )
}

fn is_urlencoded(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
        .unwrap_or(false)
}

/// Parses a browser form body, or explains why not.
pub(super) fn read_form(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<HashMap<String, Vec<String>>, FormError> {
    if !is_urlencoded(headers) {
        return Err(FormError::WrongContentType);
    }
    parse_urlencoded(body)
}

fn default_preferences(app: &App) -> Preferences {
    Preferences {
        topics: Vec::new(),
        excluded: Vec::new(),
        authors: Vec::new(),
        categories: Vec::new(),
        digest_size: app.config.digest.default_size,
        frequency: crate::domain::Frequency::Daily,
        send_time: app
            .config
            .default_send_time()
            .unwrap_or(chrono::NaiveTime::MIN),
        time_zone: app.config.default_time_zone().unwrap_or(chrono_tz::UTC),
        fallback_trending: false,
    }
}

const COMMON_ZONES: &[&str] = &[
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Paris",
    "Europe/Zurich",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Tokyo",
    "Asia/Shanghai",
    "Asia/Singapore",
    "Asia/Kolkata",
    "Asia/Seoul",
    "Australia/Sydney",
    "Africa/Nairobi",
];

async fn subscribe_form(
    app: &App,
    status: StatusCode,
    form: Value,
    errors: &[FieldError],
) -> Result<Response> {
    let data = merge(
        base(app, "Subscribe"),
        json!({
            "subscribe_url": format!("{}subscribe", app.links.home_url()),
            "form": form,
            "errors": errors,
            "zones": COMMON_ZONES,
            "consent_text": CONSENT_TEXT,
            "default_time_zone": app.config.digest.default_time_zone,
            "trending": trending(app).await,
            "preview_url": format!("{}preview", app.links.home_url()),
        }),
    );
    Ok(html_page(status, app.renderer.page("subscribe", &data)?))
}

/// One preview entry, as JSON for the live preview and as a page row.
#[derive(serde::Serialize)]
pub(super) struct PreviewItem {
    id: String,
    title: String,
    url: Option<String>,
    reason: String,
    score: f64,
    /// "118 upvotes (+12 in a day)", for the trending list.
    #[serde(skip)]
    popularity: String,
    /// (upvotes, gained in a day), the trending list's sort key.
    #[serde(skip)]
    votes: (i64, i64),
}

/// The preview for `profile`, and whether candidates exist at all (None
/// when the store could not be read: the page still renders).
async fn preview_items(
    app: &App,
    profile: &crate::rank::Profile,
    limit: usize,
) -> (Vec<PreviewItem>, Option<Availability>) {
    let (picker, availability) = match app.preview_cache.get(app).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "preview unavailable");
            return (Vec::new(), None);
        }
    };
    let items = picker
        .preview(app, profile, limit)
        .await
        .into_iter()
        .map(|p| PreviewItem::new(&picker.candidates()[p.index].paper, &p))
        .collect();
    (items, Some(availability))
}

impl PreviewItem {
    pub(super) fn new(paper: &crate::domain::Paper, p: &crate::rank::Pick) -> PreviewItem {
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
        }
    }
}

/// The sentence shown instead of an empty preview or trending list.
fn empty_note(app: &App, availability: Option<Availability>, query: bool) -> String {
    match availability {
        Some(a) => a.empty_note(app.config.digest.candidate_days, query),
        None => "The preview is unavailable right now; your settings still work.".to_string(),
    }
}

/// Today's trending papers for the subscribe page, most upvoted first:
/// the list shows upvotes, so it is ordered by them (ties by upvotes
/// gained in a day, then title), and the page says so.
async fn trending(app: &App) -> Value {
    let mut profile = crate::rank::Profile::topics(Vec::<String>::new());
    profile.fallback_trending = true;
    let (mut items, availability) =
        preview_items(app, &profile, app.config.rank.preview_size).await;
    items.sort_by(|a, b| b.votes.cmp(&a.votes).then_with(|| a.title.cmp(&b.title)));
    json!({
        "papers": items
            .iter()
            .map(|i| json!({ "title": i.title, "url": i.url, "meta": i.popularity }))
            .collect::<Vec<_>>(),
        "empty_note": items.is_empty().then(|| empty_note(app, availability, false)),
    })
}

/// `GET /preview?topics=…&excluded=…&authors=…[&format=json]`: what these
/// preferences would receive from today's papers. Read-only; the live
/// preview on the subscribe and settings pages calls it as the visitor
/// types.
pub(super) async fn preview(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    if !app.preview_limiter.check(client_ip(&app, peer, &headers)) {
        return rate_limited(&app);
    }
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let cap = |v: Vec<String>, n: usize| v.into_iter().take(n).collect::<Vec<_>>();
    let topics = cap(
        crate::domain::split_lines_only(get("topics")),
        crate::domain::limits::MAX_TOPICS,
    );
    let mut profile = crate::rank::Profile::topics(topics.clone());
    profile.excluded = cap(
        crate::domain::split_lines(get("excluded")),
        crate::domain::limits::MAX_EXCLUDED,
    );
    profile.authors = cap(
        crate::domain::split_lines_only(get("authors")),
        crate::domain::limits::MAX_AUTHORS,
    );
    let (items, note) = if topics.is_empty() && profile.authors.is_empty() {
        (
            Vec::new(),
            "Enter a topic or an author to see a preview.".to_string(),
        )
    } else {
        let (items, availability) =
            preview_items(&app, &profile, app.config.rank.preview_size).await;
        let note = if items.is_empty() {
            empty_note(&app, availability, true)
        } else {
            String::new()
        };
        (items, note)
    };
    if get("format") == "json" {
        let note = (!note.is_empty()).then_some(note);
        return Ok((
            StatusCode::OK,
            [(header::CACHE_CONTROL, "no-store")],
            axum::Json(json!({ "papers": items, "note": note })),
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
        &app,
        StatusCode::OK,
        "Preview of your digest",
        &refs,
        Some(("Back to the subscribe page", app.links.home_url())),
        false,
    )
}

pub(super) async fn home(State(app): State<App>) -> Result<Response> {
    let form = json!({
        "email": "", "topics": "",
        "send_time": app.config.digest.default_send_time,
        "time_zone": app.config.digest.default_time_zone,
    });
    subscribe_form(&app, StatusCode::OK, form, &[]).await
}

pub(super) async fn subscribe(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    if !app.rate_limiter.check(client_ip(&app, peer, &headers)) {
        return rate_limited(&app);
    }
    let form = match read_form(&headers, &body) {
        Ok(f) => f,
        Err(e) => {
            Metrics::inc(&app.metrics.subscribe_rejected);
            return bad_form(&app, e);
        }
    };
    let echo = json!({
        "email": field(&form, "email").chars().take(254).collect::<String>(),
        "topics": field(&form, "topics").chars().take(2000).collect::<String>(),
        "send_time": field(&form, "send_time").chars().take(8).collect::<String>(),
        "time_zone": field(&form, "time_zone").chars().take(64).collect::<String>(),
    });
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
    let prefs = match input.validate(&default_preferences(&app)) {
        Ok(p) => Some(p),
        Err(mut e) => {
            errors.append(&mut e);
            None
        }
    };
    let (Some(email), Some(prefs), true) = (email, prefs, errors.is_empty()) else {
        Metrics::inc(&app.metrics.subscribe_rejected);
        return subscribe_form(&app, StatusCode::UNPROCESSABLE_ENTITY, echo, &errors).await;
    };

    // A filled honeypot gets the same answer and nothing else (R33).
    if !field(&form, "website").is_empty() {
        tracing::info!("subscribe: honeypot filled; ignored");
        return subscribe_ack(&app);
    }
    Metrics::inc(&app.metrics.subscribe_requests);
    let consent = ConsentInput {
        method: ConsentMethod::WebForm,
        source: format!("{}subscribe", app.links.home_url()),
        consent_text_hash: consent_hash(),
        ip: app
            .config
            .subscribe
            .record_ip
            .then(|| client_ip(&app, peer, &headers).to_string()),
    };
    let limits = confirm_limits(&app);
    let links = app.links.clone();
    let hash_fn = move |id, generation| links.manage_token_hash(id, generation);
    let (outcome, id) = app
        .store
        .request_subscription(&email, &prefs, &consent, &limits, &hash_fn, app.now())
        .await?;
    tracing::info!(subscriber = ?id.map(|i| i.0), outcome = ?outcome, "subscribe request");
    app.outbox_wake.notify_one();
    subscribe_ack(&app)
}

/// The per-address and global confirmation-mail limits from config (R32).
pub(super) fn confirm_limits(app: &App) -> ConfirmLimits {
    let s = &app.config.subscribe;
    ConfirmLimits {
        min_interval: chrono::Duration::minutes(s.per_address_min_interval_minutes as i64),
        per_day: s.per_address_per_day,
        global_per_hour: s.global_per_hour,
    }
}

fn subscribe_ack(app: &App) -> Result<Response> {
    message(
        app,
        StatusCode::OK,
        "Check your inbox",
        &[SUBSCRIBE_ACK],
        None,
        false,
    )
}

/// Decodes the path token; malformed tokens never reach the database.
pub(super) fn path_token(raw: &str) -> Option<Token> {
    Token::decode(raw)
}

pub(super) async fn manage_subscriber(app: &App, raw: &str) -> Result<Option<(Token, Subscriber)>> {
    let Some(token) = path_token(raw) else {
        return Ok(None);
    };
    let sub = app
        .store
        .subscriber_for_token(&token.hash(), TokenPurpose::Manage, app.now())
        .await?;
    Ok(sub.map(|s| (token, s)))
}

pub(super) async fn confirm_page(
    State(app): State<App>,
    Path(raw): Path<String>,
) -> Result<Response> {
    let Some(token) = path_token(&raw) else {
        return invalid_link(&app);
    };
    // Looking the token up changes nothing: GET never confirms (R29).
    let valid = app
        .store
        .subscriber_for_token(&token.hash(), TokenPurpose::Confirm, app.now())
        .await?
        .is_some();
    if !valid {
        return super::recovery::used_or_invalid(&app, &token).await;
    }
    let data = merge(
        base(&app, "Confirm your subscription"),
        json!({ "noindex": true, "action_url": app.links.confirm_url(&token) }),
    );
    Ok(token_page(
        StatusCode::OK,
        app.renderer.page("confirm", &data)?,
    ))
}

pub(super) async fn confirm(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Result<Response> {
    if let Some(refused) = refuse_form_post(&app, peer, &headers) {
        return refused;
    }
    let Some(token) = path_token(&raw) else {
        return invalid_link(&app);
    };
    match app.store.confirm(&token.hash(), app.now()).await? {
        // A second press (reload, double click) finds the link used.
        ConfirmOutcome::Invalid => super::recovery::used_or_invalid(&app, &token).await,
        ConfirmOutcome::Confirmed(sub) => {
            Metrics::inc(&app.metrics.confirmations);
            tracing::info!(subscriber = %sub.id, "subscription confirmed");
            let manage = app.links.manage_token(sub.id, sub.token_generation);
            message(
                &app,
                StatusCode::OK,
                "You are subscribed",
                &[
                    "Your first digest arrives at your chosen time. Every digest has links to change your topics or unsubscribe.",
                    "Bookmark your settings page below to fine-tune topics, excluded words, followed authors and frequency.",
                ],
                Some(("Open my settings", app.links.manage_url(&manage))),
                true,
            )
        }
    }
}

fn weekday_names() -> Vec<&'static str> {
    [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ]
    .into_iter()
    .map(weekday_name)
    .collect()
}

fn form_json(input: &PreferencesInput) -> Value {
    json!({
        "topics": input.topics,
        "excluded": input.excluded,
        "authors": input.authors,
        "categories": input.categories.replace('\n', ", "),
        "digest_size": input.digest_size.clone().unwrap_or_default(),
        "frequency": input.frequency.clone().unwrap_or_default(),
        "weekly_day": input.weekly_day.clone().unwrap_or_else(|| "monday".into()),
        "send_time": input.send_time.clone().unwrap_or_default(),
        "time_zone": input.time_zone.clone().unwrap_or_default(),
        "fallback_trending": input.fallback_trending,
    })
}

pub(super) async fn manage_view(
    app: &App,
    status: StatusCode,
    token: &Token,
    sub: &Subscriber,
    input: &PreferencesInput,
    errors: &[FieldError],
    notice: Option<&str>,
) -> Result<Response> {
    let data = merge(
        base(app, "Your settings"),
        json!({
            "noindex": true,
            "email": sub.email.as_str(),
            "state": sub.state.as_str(),
            "paused": sub.state == SubscriberState::Paused,
            "unsubscribed": sub.state == SubscriberState::Unsubscribed,
            "action_url": app.links.manage_url(token),
            "unsubscribe_url": app.links.unsubscribe_url(token),
            "form": form_json(input),
            "weekdays": weekday_names(),
            "errors": errors,
            "notice": notice,
            // The settings page's live preview includes the reader's feedback.
            "preview_url": super::feedback::manage_preview_url(app, token),
            "feedback": super::feedback::settings_json(app, sub).await?,
        }),
    );
    Ok(token_page(status, app.renderer.page("manage", &data)?))
}

pub(super) async fn manage_page(
    State(app): State<App>,
    Path(raw): Path<String>,
) -> Result<Response> {
    let Some((token, sub)) = manage_subscriber(&app, &raw).await? else {
        return invalid_link(&app);
    };
    let input = PreferencesInput::from_preferences(&sub.preferences);
    manage_view(&app, StatusCode::OK, &token, &sub, &input, &[], None).await
}

pub(super) async fn manage(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Response> {
    if let Some(refused) = refuse_form_post(&app, peer, &headers) {
        return refused;
    }
    let Some((token, sub)) = manage_subscriber(&app, &raw).await? else {
        return invalid_link(&app);
    };
    let form = match read_form(&headers, &body) {
        Ok(f) => f,
        Err(e) => return bad_form(&app, e),
    };
    let now = app.now();
    match field(&form, "action") {
        "save" | "topics" => {
            let current = PreferencesInput::from_preferences(&sub.preferences);
            let input = if field(&form, "action") == "topics" {
                PreferencesInput {
                    topics: field(&form, "topics").to_string(),
                    ..current
                }
            } else {
                PreferencesInput {
                    topics: field(&form, "topics").to_string(),
                    excluded: field(&form, "excluded").to_string(),
                    authors: field(&form, "authors").to_string(),
                    categories: field(&form, "categories").to_string(),
                    digest_size: opt_field(&form, "digest_size"),
                    frequency: opt_field(&form, "frequency"),
                    weekly_day: opt_field(&form, "weekly_day"),
                    send_time: opt_field(&form, "send_time"),
                    time_zone: opt_field(&form, "time_zone"),
                    fallback_trending: field(&form, "fallback_trending") == "on",
                }
            };
            match input.validate(&sub.preferences) {
                Ok(prefs) => {
                    let sub = app.store.update_preferences(sub.id, &prefs, now).await?;
                    tracing::info!(subscriber = %sub.id, "preferences saved");
                    let input = PreferencesInput::from_preferences(&sub.preferences);
                    manage_view(
                        &app,
                        StatusCode::OK,
                        &token,
                        &sub,
                        &input,
                        &[],
                        Some("Your settings are saved."),
                    )
                    .await
                }
                Err(errors) => {
                    manage_view(
                        &app,
                        StatusCode::UNPROCESSABLE_ENTITY,
                        &token,
                        &sub,
                        &input,
                        &errors,
                        None,
                    )
                    .await
                }
            }
        }
        action @ ("pause" | "resume") => {
            let sub = app.store.set_paused(sub.id, action == "pause", now).await?;
            let input = PreferencesInput::from_preferences(&sub.preferences);
            let notice = if sub.state == SubscriberState::Paused {
                "Digests are paused. Resume any time."
            } else {
                "Digests are on."
            };
            manage_view(
                &app,
                StatusCode::OK,
                &token,
                &sub,
                &input,
                &[],
                Some(notice),
            )
            .await
        }
        action @ ("forget_feedback" | "follow_author") => {
            super::feedback::manage_action(&app, &token, &sub, action, &form).await
        }
        "resubscribe" => {
            if sub.state == SubscriberState::Unsubscribed {
                // Back through double opt-in, with the stored preferences.
                let limits = confirm_limits(&app);
                let consent = ConsentInput {
                    method: ConsentMethod::WebForm,
                    source: format!("{}manage (resubscribe)", app.links.home_url()),
                    consent_text_hash: consent_hash(),
                    ip: None,
                };
                let links = app.links.clone();
                let hash_fn = move |id, generation| links.manage_token_hash(id, generation);
                app.store
                    .request_subscription(
                        &sub.email,
                        &sub.preferences,
                        &consent,
                        &limits,
                        &hash_fn,
                        now,
                    )
                    .await?;
                app.outbox_wake.notify_one();
            }
            message(
                &app,
                StatusCode::OK,
                "Check your inbox",
                &[SUBSCRIBE_ACK],
                None,
                true,
            )
        }
        "export" => {
            let export = app.store.export_subscriber(sub.id).await?;
            let body = serde_json::to_vec_pretty(&export).map_err(anyhow::Error::from)?;
            Ok((
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"paperboy-my-data.json\"",
                    ),
                    (header::CACHE_CONTROL, "no-store"),
                    (header::REFERRER_POLICY, "no-referrer"),
                ],
                body,
            )
                .into_response())
        }
        "delete" => {
            let data = merge(
                base(&app, "Delete your data?"),
                json!({
                    "noindex": true,
                    "heading": "Delete your data?",
                    "paragraphs": [
                        "This removes your address, settings, consent records and delivery history. It cannot be undone.",
                        "We keep only a one-way hash of your address so we never mail it again unless you subscribe anew."
                    ],
                    "link_url": Value::Null, "link_text": Value::Null,
                }),
            );
            let mut html = app.renderer.page("message", &data)?;
            // The confirmation button is a second POST, so a stray click
            // (or a link scanner) cannot wipe an account.
            let button = format!(
                "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"action\" value=\"delete_confirmed\"><button type=\"submit\" class=\"danger\">Yes, delete everything</button></form>",
                app.links.manage_url(&token)
            );
            html = html.replacen("</main>", &format!("{button}</main>"), 1);
            Ok(token_page(StatusCode::OK, html))
        }
        "delete_confirmed" => {
            app.store
                .delete_subscriber(sub.id, SuppressionReason::Deleted, now)
                .await?;
            tracing::info!(subscriber = %sub.id, "subscriber deleted their data");
            message(
                &app,
                StatusCode::OK,
                "Your data is deleted",
                &["We removed your address and everything linked to it. You will receive no further mail from us."],
                Some(("Subscribe again", app.links.home_url())),
                true,
            )
        }
        _ => bad_form(&app, FormError::Malformed),
    }
}

pub(super) async fn unsubscribe_page(
    State(app): State<App>,
    Path(raw): Path<String>,
) -> Result<Response> {
    let Some((token, sub)) = manage_subscriber(&app, &raw).await? else {
        return invalid_link(&app);
    };
    let data = merge(
        base(&app, "Unsubscribe"),
        json!({
            "noindex": true,
            "already": sub.state == SubscriberState::Unsubscribed,
            "email": sub.email.as_str(),
            "action_url": app.links.unsubscribe_url(&token),
            "manage_url": app.links.manage_url(&token),
            "topics": sub.preferences.topics.join("\n"),
        }),
    );
    Ok(token_page(
        StatusCode::OK,
        app.renderer.page("unsubscribe", &data)?,
    ))
}

/// RFC 8058 one-click (R14–R21): the token in the path is the only
/// authority. Any body (urlencoded, multipart, empty) is accepted and not
/// parsed; no cookies, no CSRF check, no redirect; idempotent.
pub(super) async fn unsubscribe(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Response> {
    if !app.rate_limiter.check(client_ip(&app, peer, &headers)) {
        return rate_limited(&app);
    }
    let Some((token, sub)) = manage_subscriber(&app, &raw).await? else {
        return invalid_link(&app);
    };
    let one_click = body
        .windows(b"List-Unsubscribe=One-Click".len())
        .any(|w| w == b"List-Unsubscribe=One-Click");
    let changed = app.store.unsubscribe(sub.id, app.now()).await?;
    if changed {
        Metrics::inc(&app.metrics.unsubscribes);
    }
    tracing::info!(subscriber = %sub.id, changed, one_click, "unsubscribe");
    message(
        &app,
        StatusCode::OK,
        "You are unsubscribed",
        &["You will receive no further digests. If this was a mistake, you can subscribe again from your settings page (we will ask you to confirm by email)."],
        Some(("Open my settings", app.links.manage_url(&token))),
        true,
    )
}

pub(super) async fn healthz(State(app): State<App>) -> Response {
    let db = app.store.ping().await;
    let last_fetch = app
        .store
        .last_fetch()
        .await
        .ok()
        .flatten()
        .map(crate::store::ts);
    let last_digest = app.store.setting("last_digest_run").await.ok().flatten();
    let backlog = delivery_backlog(&app).await;
    // Stuck rows (a lease outlived its run) degrade the status but not the
    // HTTP code: the daemon still works, and the next run recovers them.
    let stuck = backlog.is_some_and(|b| b.stuck > 0);
    let body = json!({
        "status": if db && !stuck { "ok" } else { "degraded" },
        "database": db,
        "deliveries": backlog,
        "last_fetch": last_fetch,
        "last_digest_run": last_digest.and_then(|s| serde_json::from_str::<Value>(&s).ok()),
        "sending_paused": crate::bounces::sending_paused(&app, app.now()).await.ok().flatten(),
        "ranking": semantic_health(&app),
    });
    let status = if db {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// Deliveries due, in flight, stuck and unknown now; `None` when the
/// database cannot say.
async fn delivery_backlog(app: &App) -> Option<crate::store::deliveries::DeliveryBacklog> {
    let resend = app.config.unknown_policy().ok()? == crate::config::UnknownPolicy::Resend;
    app.store.delivery_backlog(app.now(), resend).await.ok()
}

/// The embedding model's state for `/healthz`: lexical ranking is a
/// degraded mode worth seeing, not a failure (the status stays 200).
fn semantic_health(app: &App) -> Value {
    let s = app.semantic.status();
    json!({
        "semantic": s.name(),
        "detail": s.describe(),
    })
}

pub(super) async fn metrics(State(app): State<App>) -> Result<Response> {
    let mut out = String::new();
    let by_state = app.store.count_by_state().await?;
    let values: Vec<(&str, i64)> = by_state.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    write_gauge(
        &mut out,
        "paperboy_subscribers",
        "Subscribers by state.",
        "state",
        &values,
    );
    let outbox = app.store.outbox_counts().await?;
    write_gauge(
        &mut out,
        "paperboy_transactional_mail",
        "Transactional mail (confirmations) by state.",
        "state",
        &[
            ("queued", outbox.queued),
            ("sent", outbox.sent),
            ("failed", outbox.failed),
        ],
    );
    let deliveries = app.store.delivery_counts().await?;
    let values: Vec<(&str, i64)> = [
        "pending", "sending", "sent", "retry", "failed", "skipped", "unknown",
    ]
    .iter()
    .map(|st| {
        let n = deliveries
            .iter()
            .find(|(s, _)| s == st)
            .map_or(0, |(_, n)| *n);
        (*st, n)
    })
    .collect();
    write_gauge(
        &mut out,
        "paperboy_digest_deliveries",
        "Digest deliveries by state.",
        "state",
        &values,
    );
    if let Some(b) = delivery_backlog(&app).await {
        write_gauge(
            &mut out,
            "paperboy_digest_backlog",
            "Digest deliveries not done now: due, in flight, stuck (lease expired), unknown outcome.",
            "kind",
            &[
                ("due", b.due as i64),
                ("in_flight", b.in_flight as i64),
                ("stuck", b.stuck as i64),
                ("unknown", b.unknown as i64),
            ],
        );
    }
    if let Some(last) = app.store.setting("last_digest_run").await? {
        if let Ok(v) = serde_json::from_str::<Value>(&last) {
            let c = &v["counts"];
            let field = |k: &str| c[k].as_i64().unwrap_or(0);
            write_gauge(
                &mut out,
                "paperboy_last_digest_run",
                "Counts of the most recent digest run.",
                "outcome",
                &[
                    ("planned", field("planned")),
                    ("sent", field("sent")),
                    ("retried", field("retried")),
                    ("failed", field("failed")),
                    ("skipped", field("skipped")),
                    ("unknown", field("unknown")),
                ],
            );
        }
    }
    app.metrics.write_counters(&mut out);
    app.metrics.bounces.write(&mut out);
    app.semantic.write_metrics(&mut out);
    write_fetch_counters(&mut out, &app.fetcher.counters());
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

fn write_fetch_counters(
    out: &mut String,
    counters: &std::collections::BTreeMap<
        crate::sources::SourceName,
        crate::sources::SourceCounters,
    >,
) {
    use std::fmt::Write;
    let mut family =
        |name: &str, help: &str, get: &dyn Fn(&crate::sources::SourceCounters) -> u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (source, c) in counters {
                let _ = writeln!(out, "{name}{{source=\"{}\"}} {}", source.as_str(), get(c));
            }
        };
    family(
        "paperboy_source_fetches_ok_total",
        "Successful fetches per source.",
        &|c| c.runs_ok,
    );
    family(
        "paperboy_source_fetches_failed_total",
        "Failed fetches per source.",
        &|c| c.runs_failed,
    );
    family(
        "paperboy_source_papers_inserted_total",
        "New papers stored per source.",
        &|c| c.papers_inserted,
    );
    family(
        "paperboy_source_requests_total",
        "HTTP requests per source.",
        &|c| c.requests,
    );
    let _ = writeln!(
        out,
        "# HELP paperboy_source_failures_total Failed fetches by source and kind.\n# TYPE paperboy_source_failures_total counter"
    );
    for (source, c) in counters {
        for (kind, n) in &c.failures_by_kind {
            let _ = writeln!(
                out,
                "paperboy_source_failures_total{{source=\"{}\",kind=\"{kind}\"}} {n}",
                source.as_str()
            );
        }
    }
}

pub(super) async fn not_found(State(app): State<App>) -> Result<Response> {
    message(
        &app,
        StatusCode::NOT_FOUND,
        "Page not found",
        &["There is nothing at this address."],
        Some(("Go to the home page", app.links.home_url())),
        false,
    )
}
