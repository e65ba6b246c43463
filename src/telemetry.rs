//! Logging set-up and the process-wide counters behind `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Installs the global tracing subscriber: `RUST_LOG` if set, else the
/// configured filter; text or JSON lines on stderr. Safe to call twice
/// (the second call is a no-op), which tests rely on.
pub fn init(level: &str, format: crate::config::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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
    /// Bounce-mailbox messages that are not reports paperboy understands
    /// (left in the mailbox), counted once per poll that saw them.
    pub unparseable: AtomicU64,
    /// Webhook requests refused (bad secret, bad signature, malformed).
    pub webhooks_rejected: AtomicU64,
    pub mailbox_polls_failed: AtomicU64,
}

impl BounceMetrics {
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
