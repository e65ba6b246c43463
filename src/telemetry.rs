//! Logging set-up and the process-wide counters behind `/metrics`.

use chrono::{DateTime, Utc};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Installs the global tracing subscriber: `RUST_LOG` if set, else the
/// configured filter; text or JSON lines on stderr. Text is coloured only
/// when stderr is a terminal: a file, a pipe or journald gets plain text.
/// Safe to call twice (the second call is a no-op), which tests rely on.
pub fn init(level: &str, format: crate::config::LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if format == crate::config::LogFormat::Json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Monotonic counters since start-up. Gauges that live in the database
/// (subscribers by state, queue lengths) are read at scrape time instead.
#[derive(Debug, Default)]
pub struct Metrics {
    pub subscribe_requests: AtomicU64,
    pub subscribe_rejected: AtomicU64,
    pub confirmations: AtomicU64,
    pub unsubscribes: AtomicU64,
    pub mail_sent: AtomicU64,
    pub mail_failed: AtomicU64,
    pub mail_retried: AtomicU64,
    pub rate_limited: AtomicU64,
    pub fetch_ok: AtomicU64,
    pub fetch_errors: AtomicU64,
    pub bounces: BounceMetrics,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Appends the counters in Prometheus text format.
    pub fn write_counters(&self, out: &mut String) {
        let c = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        };
        c(
            out,
            "paperboy_subscribe_requests_total",
            "Subscribe form submissions accepted for processing.",
            &self.subscribe_requests,
        );
        c(
            out,
            "paperboy_subscribe_rejected_total",
            "Subscribe form submissions rejected as invalid.",
            &self.subscribe_rejected,
        );
        c(
            out,
            "paperboy_confirmations_total",
            "Subscriptions confirmed.",
            &self.confirmations,
        );
        c(
            out,
            "paperboy_unsubscribes_total",
            "Unsubscribe requests that changed state.",
            &self.unsubscribes,
        );
        c(
            out,
            "paperboy_mail_sent_total",
            "Messages accepted by the transport.",
            &self.mail_sent,
        );
        c(
            out,
            "paperboy_mail_failed_total",
            "Messages that failed permanently.",
            &self.mail_failed,
        );
        c(
            out,
            "paperboy_mail_retried_total",
            "Send attempts that will be retried.",
            &self.mail_retried,
        );
        c(
            out,
            "paperboy_http_rate_limited_total",
            "Requests refused with 429.",
            &self.rate_limited,
        );
        c(
            out,
            "paperboy_fetch_ok_total",
            "Source fetches that succeeded.",
            &self.fetch_ok,
        );
        c(
            out,
            "paperboy_fetch_errors_total",
            "Source fetches that failed.",
            &self.fetch_errors,
        );
    }
}

/// Appends one gauge family with labelled values.
pub fn write_gauge(out: &mut String, name: &str, help: &str, label: &str, values: &[(&str, i64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (l, v) in values {
        let _ = writeln!(out, "{name}{{{label}=\"{l}\"}} {v}");
    }
}

/// Counters of asynchronous delivery feedback (bounces and complaints
/// from the bounce mailbox and provider webhooks).
#[derive(Debug, Default)]
pub struct BounceMetrics {
    pub hard_bounces: AtomicU64,
    pub soft_bounces: AtomicU64,
    pub complaints: AtomicU64,
    pub duplicates: AtomicU64,
    pub unmatched: AtomicU64,
    pub forged: AtomicU64,
    /// Bounce-mailbox messages that are not reports paperboy understands,
    /// each counted once (the poller marks what it has read).
    pub unparseable: AtomicU64,
    /// Webhook requests refused (bad secret, bad signature, malformed).
    pub webhooks_rejected: AtomicU64,
    pub mailbox_polls_failed: AtomicU64,
    /// How the bounce-mailbox polls are going, for `/healthz` and `/metrics`.
    pub mailbox: std::sync::Mutex<MailboxHealth>,
}

/// The bounce mailbox as the last polls left it.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MailboxHealth {
    /// The end of the last successful poll.
    pub last_success: Option<DateTime<Utc>>,
    /// When the current run of failed polls began (`None` after a success).
    pub failing_since: Option<DateTime<Utc>>,
    /// Why the last poll failed, while polls fail.
    pub last_error: Option<String>,
    /// Since when each successful poll has left unread mail behind (more
    /// than `bounces.mailbox.max_messages`).
    pub behind_since: Option<DateTime<Utc>>,
    /// Messages the last successful poll left for the next one.
    pub unread_left: u64,
}

/// The states of [`MailboxHealth::state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MailboxState {
    /// No poll has finished yet (`serve` polls once at start-up).
    NotPolledYet,
    Ok,
    /// The last poll left unread mail behind.
    Behind,
    /// The last poll failed (connection, TLS, login, IMAP, timeout).
    Failing,
}

impl MailboxHealth {
    pub fn record_success(&mut self, now: DateTime<Utc>, unread_left: u64) {
        self.last_success = Some(now);
        self.failing_since = None;
        self.last_error = None;
        self.unread_left = unread_left;
        if unread_left == 0 {
            self.behind_since = None;
        } else {
            self.behind_since.get_or_insert(now);
        }
    }

    pub fn record_failure(&mut self, now: DateTime<Utc>, error: String) {
        self.failing_since.get_or_insert(now);
        self.last_error = Some(error);
    }

    pub fn state(&self) -> MailboxState {
        if self.failing_since.is_some() {
            MailboxState::Failing
        } else if self.behind_since.is_some() {
            MailboxState::Behind
        } else if self.last_success.is_none() {
            MailboxState::NotPolledYet
        } else {
            MailboxState::Ok
        }
    }

    /// Whether `/healthz` reports `degraded` for it, and since when.
    pub fn degraded_since(&self) -> Option<DateTime<Utc>> {
        self.failing_since.or(self.behind_since)
    }
}

impl BounceMetrics {
    /// A copy of the mailbox health.
    pub fn mailbox_health(&self) -> MailboxHealth {
        self.mailbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Applies `f` to the mailbox health.
    pub fn update_mailbox(&self, f: impl FnOnce(&mut MailboxHealth)) {
        f(&mut self
            .mailbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    /// Appends the bounce-mailbox gauges in Prometheus text format.
    pub fn write_mailbox(&self, out: &mut String) {
        let h = self.mailbox_health();
        let last = h.last_success.map_or(0, |t| t.timestamp());
        let g = |out: &mut String, name: &str, help: &str, v: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        g(
            out,
            "paperboy_bounce_mailbox_last_success_timestamp_seconds",
            "When the last successful bounce-mailbox poll ended (Unix time; 0: none yet).",
            last,
        );
        g(
            out,
            "paperboy_bounce_mailbox_failing",
            "1 while bounce-mailbox polls fail.",
            h.failing_since.is_some() as i64,
        );
        g(
            out,
            "paperboy_bounce_mailbox_unread_left",
            "Messages the last bounce-mailbox poll left for the next one.",
            h.unread_left as i64,
        );
    }

    /// Appends the feedback counters in Prometheus text format.
    pub fn write(&self, out: &mut String) {
        let v = |c: &AtomicU64| c.load(Ordering::Relaxed) as i64;
        let mut family = |name: &str, help: &str, label: &str, values: &[(&str, i64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (l, n) in values {
                let _ = writeln!(out, "{name}{{{label}=\"{l}\"}} {n}");
            }
        };
        family(
            "paperboy_bounces_total",
            "Asynchronous bounces recorded, by type.",
            "type",
            &[
                ("hard", v(&self.hard_bounces)),
                ("soft", v(&self.soft_bounces)),
            ],
        );
        family(
            "paperboy_complaints_total",
            "Spam complaints recorded.",
            "source",
            &[("all", v(&self.complaints))],
        );
        family(
            "paperboy_bounce_reports_ignored_total",
            "Bounce and complaint reports not acted on, by reason.",
            "reason",
            &[
                ("duplicate", v(&self.duplicates)),
                ("unmatched", v(&self.unmatched)),
                ("forged", v(&self.forged)),
                ("unparseable", v(&self.unparseable)),
                ("webhook_rejected", v(&self.webhooks_rejected)),
                ("mailbox_poll_failed", v(&self.mailbox_polls_failed)),
            ],
        );
    }
}
