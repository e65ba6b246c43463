//! What the configuration tells the store: how durable a commit is
//! (`database.synchronous`) and how long old rows are kept
//! (`[retention]`). Plain data; the store applies it.

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

/// SQLite's `synchronous` setting in WAL mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// A power loss may roll back the last commits; an application crash
    /// loses nothing.
    #[default]
    Normal,
    /// Every commit survives a power loss.
    Full,
}
