//! The suppression list as operators and readers see it: which
//! subscribers are suppressed, why and since when.
//!
//! The list itself is keyed by address hash (`subscribers.rs` checks it
//! before any mail); each row also names the subscriber whose address it
//! is (`subscriber_id`), set when the suppression is recorded and NULL once
//! that subscriber is deleted, so listings never hash every address.

use super::{parse_ts, ts, Result, Store};
use crate::domain::{SubscriberId, SubscriberState, Suppression, SuppressionReason};
use std::collections::HashMap;

/// The `settings` key the suppression migration leaves when existing rows
/// still need their subscriber link.
const TO_LINK: &str = "suppressions_to_link";

/// Subscribers per page of the one-off link pass.
const LINK_PAGE: i64 = 5_000;

/// Puts an address hash on the list for `reason`, naming its subscriber.
/// An existing suppression keeps its reason unless it is one of
/// `replaces` (then it takes this reason and time); either way it gains
/// the subscriber link if it had none.
pub(super) async fn put(
    conn: &mut sqlx::SqliteConnection,
    hash: &str,
    reason: SuppressionReason,
    subscriber: Option<SubscriberId>,
    replaces: &[SuppressionReason],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    let replaced: Vec<&str> = replaces.iter().map(|r| r.as_str()).collect();
    sqlx::query(
        "INSERT INTO suppressions (email_hash, reason, created_at, subscriber_id) \
         VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (email_hash) DO UPDATE SET \
           created_at = CASE WHEN reason IN (SELECT value FROM json_each(?5)) \
                        THEN excluded.created_at ELSE created_at END, \
           reason = CASE WHEN reason IN (SELECT value FROM json_each(?5)) \
                    THEN excluded.reason ELSE reason END, \
           subscriber_id = coalesce(subscriber_id, excluded.subscriber_id)",
    )
    .bind(hash)
    .bind(reason.as_str())
    .bind(ts(now))
    .bind(subscriber.map(|s| s.0))
    .bind(serde_json::to_string(&replaced).unwrap_or_else(|_| "[]".into()))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// subscriber_id, reason, created_at of one linked suppression.
type Row = (i64, String, String);

/// The harder-to-lift of the suppressions in `rows`, per subscriber.
fn strongest(rows: Vec<Row>) -> Result<HashMap<SubscriberId, Suppression>> {
    let mut out: HashMap<SubscriberId, Suppression> = HashMap::new();
    for (id, reason, at) in rows {
        let Some(reason) = SuppressionReason::parse(&reason) else {
            continue;
        };
        let s = Suppression {
            reason,
            since: parse_ts(&at)?,
        };
        out.entry(SubscriberId(id))
            .and_modify(|old| {
                if reason.severity() > old.reason.severity() {
                    *old = s;
                }
            })
            .or_insert(s);
    }
    Ok(out)
}

impl Store {
    /// Every suppressed subscriber, with the reason and since when (the
    /// list is small next to the subscribers: one query over it).
    pub async fn suppressed_subscribers(&self) -> Result<HashMap<SubscriberId, Suppression>> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT subscriber_id, reason, created_at FROM suppressions \
             WHERE subscriber_id IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        strongest(rows)
    }

    /// One subscriber's suppression, if their address is suppressed.
    pub async fn subscriber_suppression(&self, id: SubscriberId) -> Result<Option<Suppression>> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT subscriber_id, reason, created_at FROM suppressions WHERE subscriber_id = ?",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(strongest(rows)?.remove(&id))
    }

    /// Suppressed subscribers by their subscription state, for
    /// `/metrics`: these are not counted in their state there.
    pub async fn suppressed_by_state(&self) -> Result<Vec<(SubscriberState, i64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT s.state, count(DISTINCT s.id) FROM suppressions p \
             JOIN subscribers s ON s.id = p.subscriber_id GROUP BY s.state",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(st, n)| SubscriberState::parse(&st).map(|st| (st, n)))
            .collect())
    }

    /// Suppressed subscribers by reason (the stronger one where a mailbox
    /// has two), for `/metrics`.
    pub async fn suppressed_by_reason(&self) -> Result<Vec<(SuppressionReason, i64)>> {
        let all = self.suppressed_subscribers().await?;
        Ok(SuppressionReason::ALL
            .into_iter()
            .map(|r| (r, all.values().filter(|s| s.reason == r).count() as i64))
            .collect())
    }

    /// Finishes the suppression migration once: links each existing
    /// suppression to the subscriber whose address hashes to it, then
    /// relabels as `soft_bounce_limit` the ones a soft bounce recorded
    /// (same subscriber, same instant, action `suppressed`). Runs at every
    /// open; after the first pass it finds nothing to do. Returns how many
    /// rows were linked.
    pub(crate) async fn link_suppressions(&self) -> Result<u64> {
        if self.setting(TO_LINK).await?.is_none() {
            return Ok(0);
        }
        let mut linked = 0;
        let mut after = 0i64;
        loop {
            let page: Vec<(i64, String, String)> = sqlx::query_as(
                "SELECT id, email, email_canonical FROM subscribers WHERE id > ? \
                 ORDER BY id LIMIT ?",
            )
            .bind(after)
            .bind(LINK_PAGE)
            .fetch_all(&self.pool)
            .await?;
            let Some(last) = page.last() else { break };
            after = last.0;
            let pairs: Vec<serde_json::Value> = page
                .into_iter()
                .flat_map(|(id, email, canonical)| {
                    crate::domain::EmailAddress::from_stored(email, canonical)
                        .suppression_hashes()
                        .into_iter()
                        .map(move |h| serde_json::json!({"h": h, "s": id}))
                })
                .collect();
            linked += self
                .write_one(
                    sqlx::query(
                        "UPDATE suppressions SET subscriber_id = json_extract(j.value, '$.s') \
                         FROM json_each(?) j \
                         WHERE suppressions.email_hash = json_extract(j.value, '$.h') \
                           AND suppressions.subscriber_id IS NULL",
                    )
                    .bind(serde_json::Value::Array(pairs).to_string()),
                )
                .await?
                .rows_affected();
        }
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE suppressions SET reason = 'soft_bounce_limit' \
             WHERE reason = 'hard_bounce' AND subscriber_id IS NOT NULL AND EXISTS ( \
               SELECT 1 FROM bounce_events e WHERE e.subscriber_id = suppressions.subscriber_id \
                 AND e.kind = 'soft_bounce' AND e.action = 'suppressed' \
                 AND e.received_at = suppressions.created_at)",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM settings WHERE key = ?")
            .bind(TO_LINK)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(linked)
    }
}
