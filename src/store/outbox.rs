//! The transactional-mail outbox (confirmations, "already subscribed").
//!
//! Rows move `pending → sending (leased) → sent | retry | failed | skipped`.
//! A claim is committed before any SMTP traffic and the outcome right
//! after the reply, so no transaction spans the network.

use super::{parse_ts, ts, Result, Store};
use crate::domain::SubscriberId;
use chrono::{DateTime, Duration, Utc};

/// Kind of transactional mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    Confirm,
    ManageLink,
}

/// A claimed outbox row, leased to the caller until `lease_until`.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub id: i64,
    pub subscriber_id: SubscriberId,
    pub kind: OutboxKind,
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
}

/// Counts by state, for /metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutboxCounts {
    pub queued: i64,
    pub sent: i64,
    pub failed: i64,
}

impl Store {
    /// Claims the oldest due row, if any, leasing it until `now + lease`.
    /// Rows whose lease expired (a crash mid-send) are due again: a
    /// duplicate confirmation mail is harmless, a lost one is not.
    pub async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<OutboxItem>> {
        let mut tx = self.begin_write().await?;
        let row: Option<(i64, i64, String, i64, String)> = sqlx::query_as(
            "UPDATE outbox SET state = 'sending', lease_until = ?, attempts = attempts + 1 \
             WHERE id = (SELECT id FROM outbox \
                         WHERE (state IN ('pending', 'retry') AND next_attempt_at <= ?) \
                            OR (state = 'sending' AND lease_until <= ?) \
                         ORDER BY id LIMIT 1) \
             RETURNING id, subscriber_id, kind, attempts, created_at",
        )
        .bind(ts(now + lease))
        .bind(ts(now))
        .bind(ts(now))
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.map(|(id, sub, kind, attempts, created)| {
            Ok(OutboxItem {
                id,
                subscriber_id: SubscriberId(sub),
                kind: if kind == "confirm" {
                    OutboxKind::Confirm
                } else {
                    OutboxKind::ManageLink
                },
                attempts,
                created_at: parse_ts(&created)?,
            })
        })
        .transpose()
    }

    pub async fn outbox_sent(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        self.outbox_finish(id, "sent", None, Some(now), None).await
    }

    /// A transient failure: try again at `next_attempt`.
    pub async fn outbox_retry(&self, id: i64, error: &str, next: DateTime<Utc>) -> Result<()> {
        self.outbox_finish(id, "retry", Some(error), None, Some(next))
            .await
    }

    pub async fn outbox_failed(&self, id: i64, error: &str) -> Result<()> {
        self.outbox_finish(id, "failed", Some(error), None, None)
            .await
    }

    pub async fn outbox_skipped(&self, id: i64, why: &str) -> Result<()> {
        self.outbox_finish(id, "skipped", Some(why), None, None)
            .await
    }

    async fn outbox_finish(
        &self,
        id: i64,
        state: &str,
        error: Option<&str>,
        sent_at: Option<DateTime<Utc>>,
        next: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE outbox SET state = ?, last_error = ?, sent_at = ?, lease_until = NULL, \
             next_attempt_at = COALESCE(?, next_attempt_at) WHERE id = ?",
        )
        .bind(state)
        .bind(error)
        .bind(sent_at.map(ts))
        .bind(next.map(ts))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Makes every waiting row due now: called at start-up, since a
    /// restart is the natural moment to retry mail that failed while the
    /// relay was unreachable.
    pub async fn outbox_retry_now(&self, now: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("UPDATE outbox SET next_attempt_at = ? WHERE state = 'retry'")
            .bind(ts(now))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    /// When the next row becomes due, so the worker can sleep until then.
    pub async fn outbox_next_due(&self) -> Result<Option<DateTime<Utc>>> {
        let next: Option<String> = sqlx::query_scalar(
            "SELECT min(CASE WHEN state = 'sending' THEN lease_until ELSE next_attempt_at END) \
             FROM outbox WHERE state IN ('pending', 'retry', 'sending')",
        )
        .fetch_one(&self.pool)
        .await?;
        next.as_deref().map(parse_ts).transpose()
    }

    pub async fn outbox_counts(&self) -> Result<OutboxCounts> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, count(*) FROM outbox GROUP BY state")
                .fetch_all(&self.pool)
                .await?;
        let mut c = OutboxCounts::default();
        for (state, n) in rows {
            match state.as_str() {
                "pending" | "retry" | "sending" => c.queued += n,
                "sent" => c.sent += n,
                "failed" => c.failed += n,
                _ => {}
            }
        }
        Ok(c)
    }
}
