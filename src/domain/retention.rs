//! How long old rows are kept: what `[retention]` configures and the
//! store's pruner applies.

use chrono::Duration;

/// How long things are kept; `None` keeps them for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub deliveries: Option<Duration>,
    pub never_repeat: Option<Duration>,
    pub fetch_log: Option<Duration>,
    pub upvote_observations: Option<Duration>,
    /// Rows looked at per transaction.
    pub batch: u32,
}
