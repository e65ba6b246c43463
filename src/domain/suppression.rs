//! Suppressions: addresses paperboy must not mail, and why. The list is
//! kept by address hash (so it outlives a deleted subscriber); a
//! subscriber whose address is on it is shown as suppressed, with the
//! reason, wherever subscribers are shown.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Why an address is on the suppression list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressionReason {
    /// A permanent failure: the receiving server said the mailbox does not
    /// exist (during SMTP, or in a later bounce report).
    HardBounce,
    /// `bounces.soft_bounce_limit` temporary failures (mailbox full,
    /// server unavailable) within `bounces.soft_bounce_window_days`.
    SoftBounceLimit,
    /// The reader marked a digest as spam.
    Complaint,
    /// The subscriber deleted their data.
    Deleted,
    /// An operator removed the address.
    Manual,
}

impl SuppressionReason {
    pub const ALL: [SuppressionReason; 5] = [
        SuppressionReason::HardBounce,
        SuppressionReason::SoftBounceLimit,
        SuppressionReason::Complaint,
        SuppressionReason::Deleted,
        SuppressionReason::Manual,
    ];

    /// The stored and machine-readable name.
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::HardBounce => "hard_bounce",
            SuppressionReason::SoftBounceLimit => "soft_bounce_limit",
            SuppressionReason::Complaint => "complaint",
            SuppressionReason::Deleted => "deleted",
            SuppressionReason::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<SuppressionReason> {
        SuppressionReason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// A few words for people (operators' listings).
    pub fn label(self) -> &'static str {
        match self {
            SuppressionReason::HardBounce => "hard bounce",
            SuppressionReason::SoftBounceLimit => "soft-bounce limit",
            SuppressionReason::Complaint => "spam complaint",
            SuppressionReason::Deleted => "deleted by its owner",
            SuppressionReason::Manual => "removed by an operator",
        }
    }

    /// Whether the person's own new, confirmed opt-in (the subscribe form
    /// or the settings page, then the mailed confirmation link) lifts it:
    /// everything but a hard bounce. Mailing a dead address again hurts
    /// every other subscriber's deliverability; a full mailbox, a
    /// complaint or a deletion the person takes back is theirs to undo.
    /// Operators never lift a suppression.
    pub fn lifted_by_own_opt_in(self) -> bool {
        !matches!(self, SuppressionReason::HardBounce)
    }

    /// Which of two suppressions of one mailbox (stored under different
    /// hashes) is reported: the one that is harder to lift.
    pub fn severity(self) -> u8 {
        match self {
            SuppressionReason::HardBounce => 4,
            SuppressionReason::Complaint => 3,
            SuppressionReason::SoftBounceLimit => 2,
            SuppressionReason::Manual => 1,
            SuppressionReason::Deleted => 0,
        }
    }
}

impl std::fmt::Display for SuppressionReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A subscriber's suppression: why, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Suppression {
    pub reason: SuppressionReason,
    pub since: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_round_trips_and_only_a_hard_bounce_resists_an_opt_in() {
        for r in SuppressionReason::ALL {
            assert_eq!(SuppressionReason::parse(r.as_str()), Some(r));
            assert_eq!(r.lifted_by_own_opt_in(), r != SuppressionReason::HardBounce);
        }
        assert_eq!(SuppressionReason::parse("removed"), None);
    }
}
