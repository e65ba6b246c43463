//! One classification of a send result, shared by the digest engine and
//! the transactional outbox: what the reply means (sent, retry, fail,
//! suppress, unknown), decided by one pure function over typed values.

use super::{enhanced_status, DeliverError};

/// What a send attempt's result means for the mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The relay accepted it.
    Sent,
    /// A temporary failure: try again after a backoff. `slow_down` when
    /// the relay asked the sender to (421, 4.7.x).
    Retry { slow_down: bool },
    /// Give up. `expired` when the failure was temporary but the mail is
    /// too old (or out of attempts) to try again.
    Failed { expired: bool },
    /// Give up and suppress the address: a hard bounce (5.1.x, or
    /// 550/551/553 without an enhanced status).
    Suppress,
    /// The relay stalled mid-exchange and may have taken the message:
    /// neither retry (a possible duplicate) nor fail (a possible loss);
    /// `digest.unknown_policy` decides.
    Unknown,
}

/// What the caller knows about the attempt beyond its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptContext {
    /// Another attempt is allowed (attempts left, not too old, not the
    /// single resend of an unknown outcome).
    pub may_retry: bool,
    /// When `may_retry` is false because the mail is too old or out of
    /// attempts: a temporary failure is then reported as expired.
    pub expired: bool,
    /// The caller keeps the exact bytes and can resend them identically,
    /// so a stall is `Unknown`; otherwise it is an ordinary retry.
    pub unknown_on_timeout: bool,
}

/// A classified result: the outcome plus the reply details to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub outcome: Outcome,
    pub code: Option<u16>,
    pub enhanced: Option<String>,
    /// The error text to record; empty for `Sent`.
    pub detail: String,
    /// A transport-level failure (network, 4xx, stall) rather than a
    /// verdict on the recipient: counts against the error budget's
    /// consecutive-failure limit.
    pub transport_failure: bool,
}

/// Classifies one send result. Pure: no I/O, no clock.
pub fn classify(result: &Result<(), DeliverError>, ctx: AttemptContext) -> Classified {
    let e = match result {
        Ok(()) => {
            return Classified {
                outcome: Outcome::Sent,
                code: Some(250),
                enhanced: None,
                detail: String::new(),
                transport_failure: false,
            }
        }
        Err(e) => e,
    };
    let (code, enhanced) = match e {
        DeliverError::Transient { code, message } => (Some(*code), enhanced_status(message)),
        DeliverError::Permanent { code, enhanced, .. } => (Some(*code), enhanced.clone()),
        _ => (None, None),
    };
    let retryable = e.is_retryable();
    let outcome = match e {
        DeliverError::Timeout(_) if ctx.unknown_on_timeout => Outcome::Unknown,
        _ if retryable && ctx.may_retry => Outcome::Retry {
            slow_down: e.is_rate_limit(),
        },
        _ if e.is_hard_bounce() => Outcome::Suppress,
        _ => Outcome::Failed {
            expired: retryable && ctx.expired,
        },
    };
    let detail = match (outcome, e) {
        (Outcome::Unknown, DeliverError::Timeout(msg)) => format!("outcome unknown: {msg}"),
        (Outcome::Failed { expired: true }, _) => format!("expired: {e}"),
        _ => e.to_string(),
    };
    Classified {
        outcome,
        code,
        enhanced,
        detail,
        transport_failure: retryable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: AttemptContext = AttemptContext {
        may_retry: true,
        expired: false,
        unknown_on_timeout: true,
    };

    fn transient(code: u16, message: &str) -> Result<(), DeliverError> {
        Err(DeliverError::Transient {
            code,
            message: message.into(),
        })
    }

    fn permanent(code: u16, enhanced: Option<&str>) -> Result<(), DeliverError> {
        Err(DeliverError::Permanent {
            code,
            enhanced: enhanced.map(str::to_string),
            message: "no".into(),
        })
    }

    #[test]
    fn each_kind_of_reply_has_one_outcome() {
        let cases: Vec<(Result<(), DeliverError>, Outcome)> = vec![
            (Ok(()), Outcome::Sent),
            (
                transient(451, "try later"),
                Outcome::Retry { slow_down: false },
            ),
            (
                transient(421, "4.7.28 slow down"),
                Outcome::Retry { slow_down: true },
            ),
            (
                transient(450, "4.7.1 throttled"),
                Outcome::Retry { slow_down: true },
            ),
            (
                Err(DeliverError::Network("refused".into())),
                Outcome::Retry { slow_down: false },
            ),
            (Err(DeliverError::Timeout("DATA".into())), Outcome::Unknown),
            (permanent(550, Some("5.1.1")), Outcome::Suppress),
            (permanent(550, None), Outcome::Suppress),
            (
                permanent(552, Some("5.2.2")),
                Outcome::Failed { expired: false },
            ),
            (permanent(554, None), Outcome::Failed { expired: false }),
            (
                Err(DeliverError::Compose("bad".into())),
                Outcome::Failed { expired: false },
            ),
        ];
        for (result, want) in cases {
            assert_eq!(classify(&result, DIGEST).outcome, want, "{result:?}");
        }
    }

    #[test]
    fn a_temporary_failure_without_attempts_left_fails_as_expired() {
        let ctx = AttemptContext {
            may_retry: false,
            expired: true,
            ..DIGEST
        };
        let c = classify(&transient(451, "4.3.0 busy"), ctx);
        assert_eq!(c.outcome, Outcome::Failed { expired: true });
        assert_eq!((c.code, c.enhanced.as_deref()), (Some(451), Some("4.3.0")));
        assert!(c.detail.starts_with("expired: "), "{}", c.detail);
        assert!(c.transport_failure);
    }

    #[test]
    fn a_stall_is_unknown_only_for_a_caller_that_can_resend_identically() {
        let stall = Err(DeliverError::Timeout("no reply to DATA".into()));
        let outbox = AttemptContext {
            unknown_on_timeout: false,
            ..DIGEST
        };
        assert_eq!(
            classify(&stall, outbox).outcome,
            Outcome::Retry { slow_down: false }
        );
        let c = classify(&stall, DIGEST);
        assert_eq!(c.detail, "outcome unknown: no reply to DATA");
    }

    #[test]
    fn the_single_resend_is_not_retried() {
        let ctx = AttemptContext {
            may_retry: false,
            expired: false,
            ..DIGEST
        };
        assert_eq!(
            classify(&transient(451, "busy"), ctx).outcome,
            Outcome::Failed { expired: false }
        );
    }
}
