//! The static files the pages load: one stylesheet, three scripts and
//! the icon, embedded at build time. Served as files (not inline) so the
//! Content-Security-Policy can allow only this origin's scripts and styles.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// Allows only this origin's files and fetches: no inline script or
/// style, no framing, no plugin, and forms post only back to us.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
base-uri 'none'; frame-ancestors 'none'";

/// The pages use no powerful browser feature; deny them all.
pub const PERMISSIONS_POLICY: &str = "camera=(), microphone=(), geolocation=(), \
payment=(), usb=(), browsing-topics=()";

const APP_CSS: &str = include_str!("../../static/app.css");
const PREVIEW_JS: &str = include_str!("../../static/preview.js");
const SUBSCRIBE_JS: &str = include_str!("../../static/subscribe.js");
const WHEN_JS: &str = include_str!("../../static/when.js");
const FAVICON_SVG: &str = include_str!("../../static/favicon.svg");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            // Embedded in the binary: an upgrade changes them, so browsers
            // revalidate daily rather than keep them forever.
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

pub(super) async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

pub(super) async fn preview_js() -> Response {
    asset("text/javascript; charset=utf-8", PREVIEW_JS)
}

pub(super) async fn subscribe_js() -> Response {
    asset("text/javascript; charset=utf-8", SUBSCRIBE_JS)
}

pub(super) async fn when_js() -> Response {
    asset("text/javascript; charset=utf-8", WHEN_JS)
}

/// Also answers `/favicon.ico`, which browsers ask for without a link.
pub(super) async fn favicon() -> Response {
    asset("image/svg+xml", FAVICON_SVG)
}
