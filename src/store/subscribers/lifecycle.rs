//! A subscriber's state over time: pausing, unsubscribing, deleting,
//! and purging confirmations never completed.

use super::suppression::SuppressionReason;
use super::{load, Subscriber};
use crate::domain::{hash_canonical, SubscriberId};
use crate::store::{ts, Result, Store, StoreError};
use chrono::{DateTime, Duration, Utc};

impl Store {
    /// Moves `active ⇄ paused`. Returns the subscriber after the change;
    /// a subscriber in another state is returned unchanged.
    pub async fn set_paused(
        &self,
        id: SubscriberId,
        paused: bool,
        now: DateTime<Utc>,
    ) -> Result<Subscriber> {
        let (from, to) = if paused {
            ("active", "paused")
        } else {
            ("paused", "active")
        };
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE subscribers SET state = ?, updated_at = ? WHERE id = ? AND state = ?")
            .bind(to)
            .bind(ts(now))
            .bind(id.0)
            .bind(from)
            .execute(&mut *tx)
            .await?;
        let sub = load(&mut tx, id).await?;
        tx.commit().await?;
        Ok(sub)
    }

    /// Unsubscribes (idempotent): any state becomes `unsubscribed`;
    /// the first time records when. Returns whether the state changed.
    pub async fn unsubscribe(&self, id: SubscriberId, now: DateTime<Utc>) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let changed = sqlx::query(
            "UPDATE subscribers SET state = 'unsubscribed', unsubscribed_at = ?, updated_at = ? \
             WHERE id = ? AND state != 'unsubscribed'",
        )
        .bind(ts(now))
        .bind(ts(now))
        .bind(id.0)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        // Pending transactional mail to someone who left is dropped.
        sqlx::query(
            "UPDATE outbox SET state = 'skipped', last_error = 'unsubscribed' \
             WHERE subscriber_id = ? AND state IN ('pending', 'retry')",
        )
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Deletes everything held about a subscriber and keeps only a
    /// suppression hash of the address.
    pub async fn delete_subscriber(
        &self,
        id: SubscriberId,
        reason: SuppressionReason,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let canonical: Option<String> =
            sqlx::query_scalar("SELECT email_canonical FROM subscribers WHERE id = ?")
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await?;
        let canonical = canonical.ok_or(StoreError::NotFound)?;
        let hash = hash_canonical(&canonical);
        sqlx::query(
            "INSERT INTO suppressions (email_hash, reason, created_at) VALUES (?, ?, ?) \
             ON CONFLICT(email_hash) DO NOTHING",
        )
        .bind(&hash)
        .bind(reason.as_str())
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        // Tokens, consents and outbox rows go with the subscriber (ON DELETE CASCADE).
        sqlx::query("DELETE FROM subscribers WHERE id = ?")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes unconfirmed subscribers older than `max_age` and forgets
    /// confirmation-rate rows older than a day. Returns how
    /// many subscribers were purged.
    pub async fn purge_expired(&self, max_age: Duration, now: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM subscribers WHERE state = 'pending' AND created_at < ?")
            .bind(ts(now - max_age))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM confirm_sends WHERE queued_at < ?")
            .bind(ts(now - Duration::hours(25)))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM tokens WHERE purpose = 'confirm' AND expires_at < ?")
            .bind(ts(now - Duration::days(1)))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n)
    }
}
