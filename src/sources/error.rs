//! The error type at the sources boundary.

use std::time::Duration;

/// Why fetching or parsing one source failed.
///
/// Every variant's message names the problem in words an operator can act
/// on; the [`Fetcher`](super::Fetcher) prefixes it with the source name.
/// [`SourceError::kind`] gives a short, stable label for metrics.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The upstream answered with a status we do not retry (or retries ran out).
    #[error("HTTP {status} from {url}")]
    Status { status: u16, url: String },
    /// The request timed out (connect or total) after all retries.
    #[error("timed out requesting {url}")]
    Timeout { url: String },
    /// Could not connect or the connection broke, after all retries.
    #[error("network error requesting {url}: {detail}")]
    Network { url: String, detail: String },
    /// The body exceeded the configured `sources.max_body_bytes`.
    #[error("response from {url} is larger than the {limit}-byte limit")]
    TooLarge { url: String, limit: usize },
    /// The upstream sent a content type that cannot be the expected payload
    /// (typically an HTML error page).
    #[error("unexpected content type {content_type:?} from {url} (expected {expected})")]
    ContentType {
        url: String,
        content_type: String,
        expected: &'static str,
    },
    /// The body could not be parsed, or it parsed but has the wrong shape.
    #[error("malformed {format} payload: {detail}")]
    Malformed {
        format: &'static str,
        detail: String,
    },
    /// The upstream answered with a well-formed error document (arXiv error
    /// feed, API error entry, JSON error object).
    #[error("upstream reported an error: {0}")]
    Upstream(String),
    /// 429 with a `Retry-After` longer than we are willing to wait in one run.
    #[error("rate limited by {url}; asked to wait {retry_after:?}")]
    RateLimited { url: String, retry_after: Duration },
    /// arXiv answered 403: the client is considered abusive. We stop asking
    /// that upstream until the block period has passed.
    #[error("blocked by {host} (HTTP 403); not asking again for {for_:?}")]
    Blocked { host: String, for_: Duration },
    /// The request could not be formed (bad base URL in config, etc.).
    #[error("invalid request: {0}")]
    Request(String),
    /// Writing the parsed batch to the store failed.
    #[error("store error: {0}")]
    Store(#[source] crate::domain::fetch::StorageError),
}

impl SourceError {
    /// A short label for metrics and logs (`http_status`, `timeout`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            SourceError::Status { .. } => "http_status",
            SourceError::Timeout { .. } => "timeout",
            SourceError::Network { .. } => "network",
            SourceError::TooLarge { .. } => "too_large",
            SourceError::ContentType { .. } => "content_type",
            SourceError::Malformed { .. } => "malformed",
            SourceError::Upstream(_) => "upstream_error",
            SourceError::RateLimited { .. } => "rate_limited",
            SourceError::Blocked { .. } => "blocked",
            SourceError::Request(_) => "request",
            SourceError::Store(_) => "store",
        }
    }

    pub(crate) fn malformed(format: &'static str, detail: impl Into<String>) -> SourceError {
        SourceError::Malformed {
            format,
            detail: detail.into(),
        }
    }
}
