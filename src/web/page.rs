//! What every page shares: the layout's fields, the one-message page, the
//! answers to bad links, refused posts and unreadable forms, and the
//! redirect that ends a successful form post (post/redirect/get, so a
//! reload never sends the form again).

use super::forms::{parse_urlencoded, FormError};
use super::when::NextDigestView;
use super::{client_ip, html_page, is_cross_site, token_page, WebError, WebState};
use crate::app::App;
use crate::domain::{Token, TokenPurpose};
use crate::store::subscribers::{ConfirmLimits, Subscriber};
use crate::telemetry::Metrics;
use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;

pub(super) type Result<T, E = WebError> = std::result::Result<T, E>;

/// The layout's own fields, flattened into every page view.
#[derive(Debug, Serialize)]
pub(super) struct Layout {
    title: String,
    home_url: String,
    /// Token pages: kept out of search engines, caches and Referer.
    noindex: bool,
}

impl Layout {
    /// A page anyone may reach (home, preview, errors without a token).
    pub(super) fn public(app: &App, title: &str) -> Layout {
        Layout {
            title: title.to_string(),
            home_url: app.links.home_url(),
            noindex: false,
        }
    }

    /// A page reached through a token in its address.
    pub(super) fn private(app: &App, title: &str) -> Layout {
        Layout {
            noindex: true,
            ..Layout::public(app, title)
        }
    }
}

#[derive(Serialize)]
struct Page<'a, V: Serialize> {
    #[serde(flatten)]
    layout: &'a Layout,
    #[serde(flatten)]
    view: &'a V,
}

/// Renders `templates/pages/{template}.hbs` with the layout's fields and
/// `view`'s; a private layout also gets the token-page headers.
pub(super) fn render(
    app: &App,
    status: StatusCode,
    template: &str,
    layout: Layout,
    view: &impl Serialize,
) -> Result<Response> {
    let html = app.renderer.page(
        template,
        &Page {
            layout: &layout,
            view,
        },
    )?;
    Ok(if layout.noindex {
        token_page(status, html)
    } else {
        html_page(status, html)
    })
}

/// One link of the generic page.
#[derive(Debug, Serialize)]
pub(super) struct LinkView {
    pub text: String,
    pub url: String,
}

/// The generic page: a heading, paragraphs, links, and when the reader's
/// next digest comes (the confirmed page).
#[derive(Serialize)]
struct MessageView<'a> {
    heading: &'a str,
    paragraphs: &'a [&'a str],
    /// The first link, also in `links` (kept for operator templates
    /// written for a page with one link).
    link_url: Option<&'a str>,
    link_text: Option<&'a str>,
    links: &'a [LinkView],
    next_digest: Option<&'a NextDigestView>,
}

/// What a generic page says beyond its heading and paragraphs.
#[derive(Default)]
pub(super) struct Extras {
    pub links: Vec<LinkView>,
    pub next_digest: Option<NextDigestView>,
}

/// A page with a heading and paragraphs; `token_route` for pages reached
/// through a token.
pub(super) fn message(
    app: &App,
    status: StatusCode,
    title: &str,
    paragraphs: &[&str],
    link: Option<(&str, String)>,
    token_route: bool,
) -> Result<Response> {
    let links = link
        .map(|(text, url)| LinkView {
            text: text.to_string(),
            url,
        })
        .into_iter()
        .collect();
    let extras = Extras {
        links,
        next_digest: None,
    };
    message_with(app, status, title, paragraphs, &extras, token_route)
}

/// [`message`] with several links and the next digest's time.
pub(super) fn message_with(
    app: &App,
    status: StatusCode,
    title: &str,
    paragraphs: &[&str],
    extras: &Extras,
    token_route: bool,
) -> Result<Response> {
    let layout = if token_route {
        Layout::private(app, title)
    } else {
        Layout::public(app, title)
    };
    let first = extras.links.first();
    let view = MessageView {
        heading: title,
        paragraphs,
        link_url: first.map(|l| l.url.as_str()),
        link_text: first.map(|l| l.text.as_str()),
        links: &extras.links,
        next_digest: extras.next_digest.as_ref(),
    };
    render(app, status, "message", layout, &view)
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
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    Ok(r)
}

/// The answer to a state-changing form POST that must not proceed: over
/// the per-IP rate, or sent from another site. `None` lets it through.
pub(super) fn refuse_form_post(
    web: &WebState,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Option<Result<Response>> {
    if !web.limits.forms.check(client_ip(web, peer, headers)) {
        return Some(rate_limited(web));
    }
    if is_cross_site(web, headers) {
        return Some(forbidden_cross_site(web));
    }
    None
}

fn forbidden_cross_site(app: &App) -> Result<Response> {
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

/// 303 See Other to `url`: the end of every successful form post, so the
/// browser shows the result with a GET. The address may carry a token,
/// hence the token-page headers.
pub(super) fn see_other(url: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(url) {
        h.insert(header::LOCATION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// Decodes the path token; malformed tokens never reach the database.
pub(super) fn path_token(raw: &str) -> Option<Token> {
    Token::decode(raw)
}

/// The subscriber a manage (or unsubscribe) link belongs to, if valid.
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

/// The per-address and global confirmation-mail limits from config.
pub(super) fn confirm_limits(app: &App) -> ConfirmLimits {
    let s = &app.config.subscribe;
    ConfirmLimits {
        min_interval: s.per_address_min_interval,
        per_day: s.per_address_per_day,
        global_per_hour: s.global_per_hour,
    }
}
