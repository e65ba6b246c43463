//! The subscriber-facing web pages and the RFC 8058 one-click endpoint.
//!
//! Handlers parse input, call the store and render; they hold no business
//! rules of their own beyond choosing which page to show. One module per
//! page flow (subscribe, confirm and its recovery, manage, unsubscribe,
//! preview and the next-digest preview, feedback), each rendering typed
//! page views through `page`. What only the web layer uses (rate limiters,
//! the preview cache) lives in [`WebState`], built by [`router`], so the
//! application context knows nothing of the web.

mod assets;
mod confirm;
mod done;
mod feedback;
mod fields;
mod forms;
mod manage;
mod next_digest;
mod ops;
mod page;
mod preview;
mod preview_cache;
mod receipt;
mod recovery;
mod steer;
mod subscribe;
mod suppressed;
mod topics;
mod unsubscribe;
mod webhooks;
mod when;
mod zones;

pub use forms::{parse_urlencoded, FormError};
pub use preview_cache::{Availability, PreviewCache};
pub use subscribe::CONSENT_TEXT;

use crate::app::App;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::Deref;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

/// Largest request body accepted by any route. Forms are small; anything
/// bigger is refused with 413 before a handler runs.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Errors a handler can end with. Details are logged once; the visitor
/// sees a generic page.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("internal error: {0}")]
    Internal(#[from] anyhow::Error),
}

impl From<crate::store::StoreError> for WebError {
    fn from(e: crate::store::StoreError) -> Self {
        WebError::Internal(e.into())
    }
}

impl From<crate::render::RenderError> for WebError {
    fn from(e: crate::render::RenderError) -> Self {
        WebError::Internal(e.into())
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self, "request failed");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "Something went wrong on our side. Please try again in a minute.",
        )
            .into_response()
    }
}

/// The handlers' state: the application context plus what only the web
/// layer owns. Cheap to clone; dereferences to [`App`].
#[derive(Clone, Debug)]
pub struct WebState {
    app: App,
    limits: Arc<Limits>,
    /// Candidates and index behind the live preview and the trending list,
    /// rebuilt when papers are stored rather than per keystroke.
    previews: Arc<PreviewCache>,
}

/// Per-IP request budgets.
#[derive(Debug)]
struct Limits {
    /// Form posts: subscribe, confirm, manage, feedback, one-click.
    forms: RateLimiter,
    /// The live preview: typing sends many requests, so it has its own,
    /// larger budget.
    previews: RateLimiter,
}

impl WebState {
    pub fn new(app: App) -> WebState {
        let limits = Limits {
            forms: RateLimiter::new(app.config.subscribe.per_ip_per_minute),
            previews: RateLimiter::new(120),
        };
        WebState {
            app,
            limits: Arc::new(limits),
            previews: Arc::new(PreviewCache::default()),
        }
    }
}

/// Handlers that need only the application (webhooks) extract it alone.
impl axum::extract::FromRef<WebState> for App {
    fn from_ref(web: &WebState) -> App {
        web.app.clone()
    }
}

impl Deref for WebState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.app
    }
}

/// Builds the router with every route and the shared layers, and the web
/// layer's own state.
pub fn router(app: App) -> Router {
    let timeout = app.config.server.request_timeout;
    Router::new()
        .route("/", get(subscribe::home))
        .route("/subscribe", post(subscribe::subscribe))
        .route("/subscribe/sent", get(subscribe::sent))
        .route("/subscribe/steer", post(subscribe::steer))
        .route(
            "/confirm/{token}",
            get(confirm::confirm_page).post(confirm::confirm),
        )
        .route(
            "/confirm/{token}/settings-link",
            post(recovery::settings_link),
        )
        .route(
            "/manage/{token}",
            get(manage::manage_page).post(manage::manage),
        )
        .route("/manage/{token}/delete", get(manage::delete_page))
        .route("/deleted", get(manage::deleted_page))
        .route("/settings-link/sent", get(recovery::settings_link_sent))
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe::unsubscribe_page).post(unsubscribe::unsubscribe),
        )
        .route("/preview", get(preview::preview))
        // Feedback links, and the settings page's preview of the reader's
        // next digest (their window, with their feedback).
        .route(
            "/feedback/{token}",
            get(feedback::feedback_page).post(feedback::feedback),
        )
        .route("/manage/{token}/preview", get(next_digest::preview))
        // Stylesheet, scripts and icon (CSP: no inline code).
        .route("/static/app.css", get(assets::app_css))
        .route("/static/preview.js", get(assets::preview_js))
        .route("/static/subscribe.js", get(assets::subscribe_js))
        .route("/static/when.js", get(assets::when_js))
        .route("/favicon.svg", get(assets::favicon))
        .route("/favicon.ico", get(assets::favicon))
        // Provider bounce and complaint webhooks, with a larger
        // body limit of their own.
        .route(
            "/webhooks/{provider}",
            post(webhooks::webhook).layer(DefaultBodyLimit::max(webhooks::MAX_WEBHOOK_BYTES)),
        )
        .route(
            "/webhooks/{provider}/{secret}",
            post(webhooks::webhook).layer(DefaultBodyLimit::max(webhooks::MAX_WEBHOOK_BYTES)),
        )
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .fallback(ops::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(assets::CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static(assets::PERMISSIONS_POLICY),
        ))
        .with_state(WebState::new(app))
}

/// Serves until `shutdown` resolves, then stops accepting connections and
/// lets in-flight requests finish.
pub async fn serve(
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(app).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Headers for every page reached through a token: the token must
/// not leak through Referer, caches or search engines.
pub(crate) fn token_page(status: StatusCode, html: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
            (header::HeaderName::from_static("x-robots-tag"), "noindex"),
        ],
        html,
    )
        .into_response()
}

pub(crate) fn html_page(status: StatusCode, html: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

/// A fixed-window request counter per client IP. Memory is bounded:
/// windows older than a minute are dropped whenever the map grows.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request; false when the IP is over its limit.
    pub fn check(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut map = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let entry = map.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(60) {
            *entry = (now, 0);
        }
        entry.1 += 1;
        entry.1 <= self.per_minute
    }
}

/// The client's IP for rate limiting: the TCP peer, or the last
/// `X-Forwarded-For` hop when the peer is the configured trusted proxy.
/// A forged header from anyone else changes nothing.
pub(crate) fn client_ip(app: &App, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    if app.config.server.trusted_proxy == Some(peer.ip()) {
        if let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse().ok())
        {
            return ip;
        }
    }
    peer.ip()
}

/// Cross-site request check for state-changing browser forms:
/// refuse `Sec-Fetch-Site: cross-site`; without Fetch Metadata, compare
/// the Origin (or Referer) host with ours. Requests with none of these
/// headers come from non-browser clients and pass; the capability token
/// in the path is the authority.
pub(crate) fn is_cross_site(app: &App, headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site.eq_ignore_ascii_case("cross-site");
    }
    let origin = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    let Some(origin) = origin else {
        return false;
    };
    if origin == "null" {
        return true;
    }
    let Ok(url) = url::Url::parse(origin) else {
        return true;
    };
    let origin_host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => return true,
    };
    let request_host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    !(origin_host.eq_ignore_ascii_case(&app.links.host_with_port())
        || origin_host.eq_ignore_ascii_case(request_host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limiter_counts_per_ip() {
        let l = RateLimiter::new(3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(l.check(a) && l.check(a) && l.check(a));
        assert!(!l.check(a));
        assert!(l.check(b));
    }
}
