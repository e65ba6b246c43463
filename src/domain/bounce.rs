//! The kinds of mail feedback (bounces and spam complaints) and what
//! recording one does: shared by `bounces`, which reads the reports, and
//! `store`, which keeps them and applies the policy.

use serde::Serialize;

/// What the report says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BounceKind {
    /// 5.x.x or `Action: failed`: the address is dead.
    HardBounce,
    /// 4.x.x or `Action: delayed`: mailbox full, greylisting, a relay
    /// that gave up for now.
    SoftBounce,
    /// The reader marked the digest as spam.
    Complaint,
}

impl BounceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BounceKind::HardBounce => "hard_bounce",
            BounceKind::SoftBounce => "soft_bounce",
            BounceKind::Complaint => "complaint",
        }
    }

    pub fn parse(s: &str) -> Option<BounceKind> {
        Some(match s {
            "hard_bounce" => BounceKind::HardBounce,
            "soft_bounce" => BounceKind::SoftBounce,
            "complaint" => BounceKind::Complaint,
            _ => return None,
        })
    }
}

/// Where a report came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportSource {
    Mailbox,
    Ses,
    Postmark,
    Sendgrid,
    Mailgun,
}

impl ReportSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportSource::Mailbox => "mailbox",
            ReportSource::Ses => "ses",
            ReportSource::Postmark => "postmark",
            ReportSource::Sendgrid => "sendgrid",
            ReportSource::Mailgun => "mailgun",
        }
    }
}

/// What recording an event did to the subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BounceAction {
    /// The address is on the suppression list now (or already was).
    Suppressed,
    /// Unsubscribed and suppressed (a complaint).
    Unsubscribed,
    /// A soft bounce below the limit: only counted.
    Counted,
}

impl BounceAction {
    pub fn as_str(self) -> &'static str {
        match self {
            BounceAction::Suppressed => "suppressed",
            BounceAction::Unsubscribed => "unsubscribed",
            BounceAction::Counted => "counted",
        }
    }
}

/// `bounces.soft_bounce_limit` soft bounces within
/// `bounces.soft_bounce_window_days` suppress the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftBouncePolicy {
    pub limit: u32,
    pub window_days: u32,
}
