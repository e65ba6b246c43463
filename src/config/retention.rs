//! `[retention]`: how long old rows are kept, checked against what the
//! digest still needs (`[digest]` is parsed first).

use super::digest::DigestConfig;
use super::values::within;
use super::{invalid, ConfigError};
use crate::domain::RetentionPolicy;
use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    delivery_days: u32,
    never_repeat_days: u32,
    fetch_log_days: u32,
    upvote_days: u32,
    batch_rows: u32,
}

/// The retention policy; 0 days keeps a kind of row for ever.
pub(super) fn policy(r: &Raw, digest: &DigestConfig) -> Result<RetentionPolicy, ConfigError> {
    let candidates = digest.candidate_days;
    if r.never_repeat_days != 0 && r.never_repeat_days <= candidates {
        return Err(invalid(
            "retention.never_repeat_days",
            format!(
                "must be 0 (for ever) or more than digest.candidate_days ({candidates}): \
                 a paper that can still be a candidate must not be mailed twice"
            ),
        ));
    }
    if r.delivery_days != 0 && r.never_repeat_days > r.delivery_days {
        return Err(invalid(
            "retention.never_repeat_days",
            "must be at most retention.delivery_days (never-repeat rows are pruned \
             through the delivery rows, which must still be there)",
        ));
    }
    if r.upvote_days != 0 && r.upvote_days <= candidates + 1 {
        return Err(invalid(
            "retention.upvote_days",
            format!(
                "must be 0 (for ever) or more than digest.candidate_days + 1 ({}): \
                 trending reads a day of history of every candidate",
                candidates + 1
            ),
        ));
    }
    let batch = within("retention.batch_rows", r.batch_rows, 1, 100_000)?;
    check_window(r.never_repeat_days, digest.max_window_days)?;
    let days = |d: u32| (d > 0).then(|| TimeDelta::days(d.into()));
    Ok(RetentionPolicy {
        deliveries: days(r.delivery_days),
        never_repeat: days(r.never_repeat_days),
        fetch_log: days(r.fetch_log_days),
        upvote_observations: days(r.upvote_days),
        batch,
    })
}

/// A paper still inside some reader's window must keep its never-repeat
/// rows (one day of slack for time zones).
fn check_window(never_repeat_days: u32, max_window_days: u32) -> Result<(), ConfigError> {
    let keep = never_repeat_days;
    if keep != 0 && keep <= max_window_days + 1 {
        return Err(invalid(
            "digest.max_window_days",
            format!(
                "must be less than retention.never_repeat_days − 1 ({}): a paper inside \
                 a digest's window must not be mailed twice",
                keep.saturating_sub(1)
            ),
        ));
    }
    Ok(())
}
