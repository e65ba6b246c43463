//! Asynchronous delivery feedback: bounces and spam
//! complaints that arrive after the relay accepted a digest.
//!
//! Reports come in two ways, both normalised to a [`BounceEvent`]:
//! - the bounce mailbox, polled over IMAP ([`mailbox`]), whose messages
//!   are DSNs, ARF complaints or plain bounce texts ([`report`]);
//! - provider webhooks (Amazon SES via SNS, Postmark, SendGrid, Mailgun;
//!   [`providers`], [`sns`]), served by `web::webhooks`.
//!
//! [`record`] acts on a report only when it names a message paperboy sent:
//! a genuine VERP envelope sender ([`verp`]), or the Message-ID paperboy
//! gave the failed recipient's digest. A report that names only an
//! address is counted as unmatched and changes nothing, whatever its
//! source, so nobody can suppress a reader by sending a forged bounce.
//! The store applies the policy: a hard bounce suppresses, soft bounces
//! suppress after `soft_bounce_limit` within `soft_bounce_window_days`
//! (a reason of its own, lifted by the reader's new opt-in), a complaint
//! unsubscribes and suppresses.

pub mod mailbox;
pub mod providers;
pub mod report;
pub mod sns;
pub mod verp;

use crate::clock::Clock;
use crate::config::BouncesConfig;
use crate::deliver::Composer;
use crate::domain::EmailAddress;
pub use crate::domain::{BounceAction, BounceKind, ReportSource, SoftBouncePolicy};
use crate::links::Links;
use crate::store::events::NewBounceEvent;
use crate::store::Store;
use crate::telemetry::{BounceMetrics, Metrics};
use chrono::{DateTime, Utc};
use serde::Serialize;
pub use verp::{Verp, VerpMatch};

/// The parts of the application that reading and recording mail
/// feedback uses, borrowed for one call; `App::bounces` lends them.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// `[bounces]`: VERP, the soft-bounce and complaint policies, the
    /// mailbox.
    pub config: &'a BouncesConfig,
    pub store: &'a Store,
    /// Recognises the Message-IDs paperboy gave its digests.
    pub composer: &'a Composer,
    pub links: &'a Links,
    pub metrics: &'a BounceMetrics,
    pub clock: &'a dyn Clock,
    /// Held by a mailbox poll, so polls never overlap.
    pub poll_turn: &'a tokio::sync::Mutex<()>,
}

/// One bounce or complaint, whatever its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BounceEvent {
    pub kind: BounceKind,
    pub source: ReportSource,
    /// The source's identity of this event; a repeat is ignored.
    pub event_key: String,
    /// The address that bounced or complained, when known.
    pub recipient: Option<String>,
    /// Addresses that may be paperboy's VERP envelope sender.
    pub envelope_hints: Vec<String>,
    /// The original message's Message-ID (`<…>`), when known.
    pub message_id: Option<String>,
    pub status: Option<String>,
    pub detail: String,
}

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "action")]
pub enum Outcome {
    Applied(BounceAction),
    /// The same event was recorded before.
    Duplicate,
    /// It names no message paperboy sent (no genuine VERP token, no
    /// Message-ID paperboy gave the failed recipient), or its subscriber
    /// was deleted since: nothing changes.
    Unmatched,
    /// It names a VERP address whose mac does not verify: ignored.
    Forged,
}

/// The first RFC 3463 status code (`5.1.1`) in a text.
pub fn status_code(text: &str) -> Option<String> {
    crate::deliver::enhanced_status(text)
}

/// The configured VERP addresses, if `bounces.verp_address` is set.
pub fn verp(app: &Context<'_>) -> Option<Verp> {
    let base = &app.config.verp_address;
    if base.is_empty() {
        None
    } else {
        Verp::new(base, app.links.clone())
    }
}

/// The VERP envelope sender for a delivery, when VERP is on.
pub fn envelope_sender(app: &Context<'_>, delivery_id: i64) -> Option<String> {
    verp(app).map(|v| v.address(delivery_id))
}

/// Bounces and complaints recorded in the 24 hours before `now`, by kind,
/// for the digest run summary.
pub async fn recent_counts(
    app: &Context<'_>,
    now: DateTime<Utc>,
) -> anyhow::Result<serde_json::Value> {
    let counts = app
        .store
        .bounce_counts_since(now - chrono::Duration::hours(24))
        .await?;
    let n = |k: BounceKind| counts.iter().find(|(c, _)| *c == k).map_or(0, |(_, n)| *n);
    Ok(serde_json::json!({
        "hard": n(BounceKind::HardBounce),
        "soft": n(BounceKind::SoftBounce),
        "complaints": n(BounceKind::Complaint),
    }))
}

/// Which subscriber (and delivery) an event is about.
enum Target {
    Found(crate::domain::SubscriberId, Option<i64>),
    Unmatched,
    Forged,
}

/// The subscriber a report may act on: only one paperboy sent the
/// reported message to. A genuine VERP token names its delivery (and so
/// its subscriber); otherwise the report must name the failed recipient
/// and quote the Message-ID paperboy gave that recipient's digest (its
/// mac verified, the delivery then looked up by key). Anything else
/// (a bare bounce address, a Message-ID paperboy never issued, one issued
/// to someone else, no recipient) is unmatched: a report that only names
/// an address proves nothing about it.
async fn target(app: &Context<'_>, f: &BounceEvent) -> anyhow::Result<Target> {
    if let Some(v) = verp(app) {
        for hint in &f.envelope_hints {
            match v.parse(hint) {
                VerpMatch::NotVerp => {}
                VerpMatch::Forged => return Ok(Target::Forged),
                VerpMatch::Delivery(id) => {
                    if let Some(sub) = app.store.delivery_subscriber(id).await? {
                        return Ok(Target::Found(sub, Some(id)));
                    }
                }
            }
        }
    }
    let recipient = f
        .recipient
        .as_deref()
        .and_then(|r| EmailAddress::parse(r).ok());
    let (Some(mid), Some(recipient)) = (&f.message_id, recipient) else {
        return Ok(Target::Unmatched);
    };
    let Some(sub) = app.store.subscriber_by_email(&recipient).await? else {
        return Ok(Target::Unmatched);
    };
    let Some(date) = app.composer.digest_date_of(app.links, mid, sub.id) else {
        return Ok(Target::Unmatched);
    };
    let issued = app.composer.digest_message_id(app.links, sub.id, date);
    Ok(
        match app
            .store
            .delivery_with_message_id(sub.id, date, &issued)
            .await?
        {
            Some(delivery) => Target::Found(sub.id, Some(delivery)),
            None => Target::Unmatched,
        },
    )
}

/// Matches one event to its subscriber and applies the policy (see the
/// module docs). Logged by subscriber id, never by address.
pub async fn record(app: &Context<'_>, f: &BounceEvent) -> anyhow::Result<Outcome> {
    let m = app.metrics;
    let (sub, delivery) = match target(app, f).await? {
        Target::Found(s, d) => (s, d),
        Target::Unmatched => {
            Metrics::inc(&m.unmatched);
            tracing::info!(
                source = f.source.as_str(),
                kind = f.kind.as_str(),
                "bounce report matches no subscriber; ignored"
            );
            return Ok(Outcome::Unmatched);
        }
        Target::Forged => {
            Metrics::inc(&m.forged);
            tracing::warn!(
                source = f.source.as_str(),
                "bounce report names a VERP address with a bad mac; ignored"
            );
            return Ok(Outcome::Forged);
        }
    };
    let detail = crate::render::sanitize_header_text(&f.detail, 300);
    let policy = SoftBouncePolicy {
        limit: app.config.soft_bounce_limit,
        window_days: app.config.soft_bounce_window_days,
    };
    let recorded = match app
        .store
        .record_bounce_event(
            &NewBounceEvent {
                subscriber: sub,
                delivery,
                kind: f.kind,
                source: f.source,
                event_key: &f.event_key,
                status: f.status.as_deref(),
                detail: &detail,
            },
            policy,
            app.clock.now(),
        )
        .await
    {
        Ok(r) => r,
        // Deleted between matching and recording: nobody to act on.
        Err(crate::store::StoreError::NotFound) => {
            Metrics::inc(&m.unmatched);
            return Ok(Outcome::Unmatched);
        }
        Err(e) => return Err(e.into()),
    };
    let Some(action) = recorded else {
        Metrics::inc(&m.duplicates);
        return Ok(Outcome::Duplicate);
    };
    Metrics::inc(match f.kind {
        BounceKind::HardBounce => &m.hard_bounces,
        BounceKind::SoftBounce => &m.soft_bounces,
        BounceKind::Complaint => &m.complaints,
    });
    tracing::warn!(
        subscriber = %sub,
        delivery,
        source = f.source.as_str(),
        kind = f.kind.as_str(),
        status = f.status.as_deref().unwrap_or(""),
        action = action.as_str(),
        "bounce or complaint recorded"
    );
    Ok(Outcome::Applied(action))
}

/// Why sending is paused, if it is: more than
/// `bounces.complaint_max_percent` of the digests sent in the last
/// `bounces.complaint_window_hours` drew a complaint (once at least
/// `bounces.complaint_min_sent` were sent in that window). The pause
/// lifts by itself once the complaints age out of the window.
pub async fn sending_paused(
    app: &Context<'_>,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<String>> {
    let cfg = app.config;
    let since = now - chrono::Duration::hours(cfg.complaint_window_hours as i64);
    let (complaints, sent) = app.store.complaints_and_sent_since(since).await?;
    Ok(complaint_pause(
        complaints,
        sent,
        cfg.complaint_min_sent,
        cfg.complaint_max_percent,
    ))
}

/// The pure rule behind [`sending_paused`].
pub fn complaint_pause(
    complaints: i64,
    sent: i64,
    min_sent: u64,
    max_percent: f64,
) -> Option<String> {
    if sent <= 0 || (sent as u64) < min_sent {
        return None;
    }
    let rate = complaints as f64 * 100.0 / sent as f64;
    (rate > max_percent).then(|| {
        format!(
            "sending paused: complaint rate {rate:.2}% ({complaints} of {sent} digests) above bounces.complaint_max_percent = {max_percent}%"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_complaint_pause_needs_enough_mail_and_a_rate_above_the_threshold() {
        assert_eq!(
            complaint_pause(5, 100, 1000, 0.3),
            None,
            "too few sent to judge"
        );
        assert_eq!(
            complaint_pause(3, 1000, 1000, 0.3),
            None,
            "exactly 0.3% is allowed"
        );
        let p = complaint_pause(4, 1000, 1000, 0.3).unwrap();
        assert!(p.contains("0.40%") && p.contains("4 of 1000"), "{p}");
        assert_eq!(complaint_pause(0, 0, 0, 0.3), None);
    }
}
