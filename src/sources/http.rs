//! The polite HTTP client shared by every source.
//!
//! One `reqwest::Client` (connection pool, User-Agent naming paperboy and
//! the operator's contact, connect and total timeouts, gzip) plus:
//! per-host *gates* that space requests by a minimum interval and allow
//! one request in flight; retries with exponential backoff and jitter on
//! 429, 5xx, timeouts and connection failures, honouring `Retry-After`
//! and Hugging Face's `RateLimit: …;t=N`; conditional GET; a cap on the
//! decoded body size; and a content-type check so an HTML error page with
//! status 200 fails instead of parsing as "zero papers".

use super::SourceError;
use crate::config::SourcesConfig;
use crate::domain::fetch::HttpValidator;
use futures::StreamExt;
use rand::Rng;
use reqwest::header::{self, HeaderMap};
use reqwest::StatusCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

/// Timing knobs that are not operator configuration. Production uses
/// [`ClientTuning::default`]; tests shrink the delays.
#[derive(Debug, Clone)]
pub struct ClientTuning {
    /// First retry waits about this long (then 2×, 4×, … with jitter).
    pub backoff_base: Duration,
    /// Upper bound of one backoff wait.
    pub backoff_cap: Duration,
    /// A `Retry-After` up to this long is waited out; a longer one fails
    /// the fetch with [`SourceError::RateLimited`] at once, because
    /// retrying earlier than asked is rude and waiting longer would stall
    /// the job. The next scheduled run tries again.
    pub retry_after_cap: Duration,
    /// Minimum spacing between requests to one non-arXiv host.
    pub host_min_interval: Duration,
    /// Spacing between arXiv requests (feeds and API share one gate).
    /// `None`: `sources.arxiv.api_min_interval_secs`.
    pub arxiv_min_interval: Option<Duration>,
    /// After arXiv answers 403, no arXiv request is made for this long.
    pub block_period: Duration,
}

impl Default for ClientTuning {
    fn default() -> Self {
        ClientTuning {
            backoff_base: Duration::from_secs(2),
            backoff_cap: Duration::from_secs(60),
            retry_after_cap: Duration::from_secs(120),
            host_min_interval: Duration::from_secs(1),
            arxiv_min_interval: None,
            block_period: Duration::from_secs(12 * 3600),
        }
    }
}

/// Serialises requests to one upstream and spaces them out.
#[derive(Debug)]
pub(crate) struct Gate {
    name: String,
    interval: Duration,
    /// End of the previous request; the lock is held for a whole request
    /// so at most one is in flight (arXiv's "one connection at a time").
    last: tokio::sync::Mutex<Option<Instant>>,
    /// Only arXiv treats 403 as "you are blocked"; elsewhere it is a
    /// plain error.
    block_on_403: bool,
    blocked_until: Mutex<Option<Instant>>,
}

impl Gate {
    fn new(name: &str, interval: Duration, block_on_403: bool) -> Gate {
        Gate {
            name: name.to_string(),
            interval,
            last: tokio::sync::Mutex::new(None),
            block_on_403,
            blocked_until: Mutex::new(None),
        }
    }

    fn blocked_for(&self) -> Option<Duration> {
        let until = (*self.blocked_until.lock().expect("gate mutex poisoned"))?;
        let now = Instant::now();
        (until > now).then(|| until - now)
    }
}

/// What a successful GET produced.
#[derive(Debug)]
pub(crate) enum Fetched {
    /// 304: the stored validators still match.
    NotModified,
    Body {
        bytes: Vec<u8>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

/// Which content types a request accepts (`text/html` never is).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expect {
    pub accept: &'static str,
    pub types: &'static [&'static str],
    pub label: &'static str,
}

pub(crate) const JSON: Expect = Expect {
    accept: "application/json",
    types: &["application/json"],
    label: "JSON",
};
pub(crate) const XML: Expect = Expect {
    accept: "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.8",
    types: &[
        "application/rss+xml",
        "application/atom+xml",
        "application/xml",
        "text/xml",
    ],
    label: "XML",
};

#[derive(Debug)]
pub(crate) struct PoliteClient {
    client: reqwest::Client,
    tuning: ClientTuning,
    max_retries: u32,
    max_body: usize,
    arxiv: Arc<Gate>,
    hosts: Mutex<HashMap<String, Arc<Gate>>>,
}

/// `paperboy/<version> (+<contact>)`.
pub fn user_agent(contact: &str) -> String {
    format!(
        "paperboy/{} (+{})",
        env!("CARGO_PKG_VERSION"),
        contact.trim()
    )
}

impl PoliteClient {
    pub(crate) fn new(
        cfg: &SourcesConfig,
        tuning: ClientTuning,
    ) -> Result<PoliteClient, SourceError> {
        let client = reqwest::Client::builder()
            .user_agent(user_agent(&cfg.contact))
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::limited(5))
            .gzip(true)
            .build()
            .map_err(|e| SourceError::Request(format!("cannot build HTTP client: {e}")))?;
        let arxiv_interval = tuning
            .arxiv_min_interval
            .unwrap_or(cfg.arxiv.api_min_interval);
        Ok(PoliteClient {
            client,
            max_retries: cfg.max_retries,
            max_body: cfg.max_body_bytes,
            arxiv: Arc::new(Gate::new("arXiv", arxiv_interval, true)),
            hosts: Mutex::new(HashMap::new()),
            tuning,
        })
    }

    /// The gate shared by every arXiv host (feeds, export API).
    pub(crate) fn arxiv_gate(&self) -> Arc<Gate> {
        self.arxiv.clone()
    }

    /// The gate for one non-arXiv host (`host:port`).
    pub(crate) fn host_gate(&self, url: &Url) -> Arc<Gate> {
        let key = format!(
            "{}:{}",
            url.host_str().unwrap_or(""),
            url.port_or_known_default().unwrap_or(0)
        );
        let mut hosts = self.hosts.lock().expect("host gates poisoned");
        hosts
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Gate::new(&key, self.tuning.host_min_interval, false)))
            .clone()
    }

    /// GETs `url` through `gate`, retrying transient failures.
    ///
    /// Sends `If-None-Match`/`If-Modified-Since` from `validators`. Returns
    /// the body (≤ `max_body_bytes` after decompression) only for a 2xx
    /// whose content type is acceptable; 304 gives [`Fetched::NotModified`].
    pub(crate) async fn get(
        &self,
        gate: &Gate,
        url: &Url,
        expect: Expect,
        validators: Option<&HttpValidator>,
    ) -> Result<Fetched, SourceError> {
        let url_s = url.to_string();
        let mut attempt = 0u32;
        loop {
            if let Some(left) = gate.blocked_for() {
                return Err(SourceError::Blocked {
                    host: gate.name.clone(),
                    for_: left,
                });
            }
            let outcome = {
                let mut last = gate.last.lock().await;
                if let Some(t) = *last {
                    tokio::time::sleep_until(t + gate.interval).await;
                }
                let r = self.once(gate, url, &url_s, expect, validators).await;
                *last = Some(Instant::now());
                r
            };
            let retry_wait = match outcome {
                Attempt::Done(r) => return r,
                Attempt::Retry { err, retry_after } => {
                    if attempt >= self.max_retries {
                        return Err(err);
                    }
                    match retry_after {
                        Some(wait) if wait > self.tuning.retry_after_cap => {
                            return Err(match err {
                                SourceError::Status { status: 429, .. } => {
                                    SourceError::RateLimited {
                                        url: url_s,
                                        retry_after: wait,
                                    }
                                }
                                other => other,
                            })
                        }
                        Some(wait) => wait,
                        None => self.backoff(attempt),
                    }
                }
            };
            tracing::info!(url = %url_s, attempt = attempt + 1, wait_ms = retry_wait.as_millis() as u64, "retrying after a transient failure");
            tokio::time::sleep(retry_wait).await;
            attempt += 1;
        }
    }

    /// Exponential backoff with "equal jitter": half fixed, half random, so
    /// concurrent clients spread out but each still waits a minimum.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .tuning
            .backoff_base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.tuning.backoff_cap);
        let half = exp / 2;
        let jitter = rand::thread_rng().gen_range(0..=half.as_millis() as u64);
        half + Duration::from_millis(jitter)
    }

    async fn once(
        &self,
        gate: &Gate,
        url: &Url,
        url_s: &str,
        expect: Expect,
        validators: Option<&HttpValidator>,
    ) -> Attempt {
        let resp = match self.request(url, expect, validators).send().await {
            Ok(r) => r,
            Err(e) => return transport_error(e, url_s),
        };
        if let Some(end) = self.status_end(gate, resp.status(), resp.headers(), url_s) {
            return end;
        }
        if let Err(e) = self.check_headers(&resp, expect, url_s) {
            return Attempt::Done(Err(e));
        }
        let etag = header_string(resp.headers(), header::ETAG);
        let last_modified = header_string(resp.headers(), header::LAST_MODIFIED);
        match self.read_body(resp, url_s).await {
            Ok(bytes) => Attempt::Done(Ok(Fetched::Body {
                bytes,
                etag,
                last_modified,
            })),
            Err(end) => end,
        }
    }

    /// A conditional GET when there are validators.
    fn request(
        &self,
        url: &Url,
        expect: Expect,
        validators: Option<&HttpValidator>,
    ) -> reqwest::RequestBuilder {
        let mut req = self
            .client
            .get(url.clone())
            .header(header::ACCEPT, expect.accept);
        if let Some(v) = validators {
            if let Some(etag) = &v.etag {
                req = req.header(header::IF_NONE_MATCH, etag);
            }
            if let Some(lm) = &v.last_modified {
                req = req.header(header::IF_MODIFIED_SINCE, lm);
            }
        }
        req
    }

    /// How the attempt ends by its status alone: 304, a status worth a
    /// retry (429, 5xx), a block (403 from an upstream that blocks), or
    /// another failure; `None` for a success, whose body is read next.
    fn status_end(
        &self,
        gate: &Gate,
        status: StatusCode,
        headers: &HeaderMap,
        url_s: &str,
    ) -> Option<Attempt> {
        if status == StatusCode::NOT_MODIFIED {
            return Some(Attempt::Done(Ok(Fetched::NotModified)));
        }
        let failed = SourceError::Status {
            status: status.as_u16(),
            url: url_s.to_string(),
        };
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Some(Attempt::Retry {
                retry_after: retry_after(headers),
                err: failed,
            });
        }
        if status == StatusCode::FORBIDDEN && gate.block_on_403 {
            let for_ = self.tuning.block_period;
            *gate.blocked_until.lock().expect("gate mutex poisoned") = Some(Instant::now() + for_);
            tracing::error!(upstream = %gate.name, "HTTP 403: treating as a block and pausing requests");
            return Some(Attempt::Done(Err(SourceError::Blocked {
                host: gate.name.clone(),
                for_,
            })));
        }
        (!status.is_success()).then_some(Attempt::Done(Err(failed)))
    }

    /// The declared content type must be one `expect` allows, and the
    /// declared length within the limit.
    fn check_headers(
        &self,
        resp: &reqwest::Response,
        expect: Expect,
        url_s: &str,
    ) -> Result<(), SourceError> {
        if let Some(ct) = resp.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
            let mime = ct.split(';').next().unwrap_or("").trim();
            if !expect.types.contains(&mime) {
                return Err(SourceError::ContentType {
                    url: url_s.to_string(),
                    content_type: ct.clone(),
                    expected: expect.label,
                });
            }
        }
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_body as u64)
        {
            return Err(SourceError::TooLarge {
                url: url_s.to_string(),
                limit: self.max_body,
            });
        }
        Ok(())
    }

    /// The body, streamed and counted as decoded bytes: Content-Length may
    /// be absent or describe the compressed body.
    async fn read_body(&self, resp: reqwest::Response, url_s: &str) -> Result<Vec<u8>, Attempt> {
        let mut bytes = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => {
                    if bytes.len() + c.len() > self.max_body {
                        return Err(Attempt::Done(Err(SourceError::TooLarge {
                            url: url_s.to_string(),
                            limit: self.max_body,
                        })));
                    }
                    bytes.extend_from_slice(&c);
                }
                Err(e) => return Err(transport_error(e, url_s)),
            }
        }
        Ok(bytes)
    }
}

enum Attempt {
    Done(Result<Fetched, SourceError>),
    Retry {
        err: SourceError,
        retry_after: Option<Duration>,
    },
}

fn transport_error(e: reqwest::Error, url: &str) -> Attempt {
    if e.is_timeout() {
        Attempt::Retry {
            err: SourceError::Timeout {
                url: url.to_string(),
            },
            retry_after: None,
        }
    } else if e.is_connect() || e.is_body() || e.is_request() {
        Attempt::Retry {
            err: SourceError::Network {
                url: url.to_string(),
                detail: e.to_string(),
            },
            retry_after: None,
        }
    } else {
        Attempt::Done(Err(SourceError::Network {
            url: url.to_string(),
            detail: e.to_string(),
        }))
    }
}

fn header_string(h: &HeaderMap, name: header::HeaderName) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s.len() <= 512)
}

/// `Retry-After` (seconds or HTTP date), else HF's
/// `RateLimit: "api";r=0;t=<seconds>`.
fn retry_after(h: &HeaderMap) -> Option<Duration> {
    if let Some(v) = h.get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(t) = chrono::DateTime::parse_from_rfc2822(v) {
            // The HTTP client is the one place that may read the wall clock:
            // an HTTP-date is relative to "now" by definition.
            let secs = (t.timestamp() - chrono::Utc::now().timestamp()).max(0) as u64;
            return Some(Duration::from_secs(secs));
        }
    }
    let rl = h.get("ratelimit").and_then(|v| v.to_str().ok())?;
    rl.split(';')
        .filter_map(|p| p.trim().strip_prefix("t="))
        .find_map(|t| t.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_reads_seconds_and_the_hf_ratelimit_header() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let mut h = HeaderMap::new();
        h.insert("ratelimit", HeaderValue::from_static("\"api\";r=0;t=42"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(42)));
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn backoff_grows_and_stays_within_the_cap() {
        let cfg = crate::config::Config::load_with_env(None, std::iter::empty())
            .unwrap()
            .sources;
        let tuning = ClientTuning {
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_millis(1000),
            ..ClientTuning::default()
        };
        let c = PoliteClient::new(&cfg, tuning).unwrap();
        for attempt in 0..10 {
            let d = c.backoff(attempt);
            let full = Duration::from_millis((100u64 << attempt).min(1000));
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn the_user_agent_names_paperboy_and_the_contact() {
        assert_eq!(
            user_agent(" ops@example.org "),
            format!("paperboy/{} (+ops@example.org)", env!("CARGO_PKG_VERSION"))
        );
    }
}
