//! What the subscribe page may say about the mails it asked for: when the
//! last ones to an address were queued. Read-only; `subscribers` writes the
//! rows (one per mail queued, or per request for a suppressed address, so
//! every address is limited alike).

use super::{parse_ts, ts, Result, Store};
use crate::domain::EmailAddress;
use chrono::{DateTime, Duration, Utc};

impl Store {
    /// When confirmation or settings-link mails to `email` were queued in
    /// the 24 hours before `now` (the per-address limits' horizon), oldest
    /// first.
    pub async fn recent_mails_to(
        &self,
        email: &EmailAddress,
        now: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT queued_at FROM confirm_sends WHERE email_hash = ? AND queued_at > ? \
             ORDER BY queued_at",
        )
        .bind(email.hash())
        .bind(ts(now - Duration::hours(24)))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|s| parse_ts(s)).collect()
    }
}
