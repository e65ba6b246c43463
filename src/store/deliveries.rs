//! Digest deliveries, the papers they carried, and digest runs.
//!
//! Every state change is its own short `BEGIN IMMEDIATE` transaction; the
//! digest engine commits a claim before any SMTP traffic and the outcome
//! right after the reply, so no transaction spans the network (R50).

use super::subscribers::Subscriber;
use super::{parse_ts, ts, value_rows, Result, Store};
use crate::domain::SubscriberId;
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::{HashMap, HashSet};

/// A delivery leased to the caller.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub subscriber_id: SubscriberId,
    pub digest_date: NaiveDate,
    pub due_at: DateTime<Utc>,
    /// Attempts including this one.
    pub attempts: i64,
    /// The prepared (sealed) message, when an earlier attempt stored it.
    pub message: Option<Vec<u8>>,
    pub message_id: Option<String>,
    pub papers: Vec<String>,
    /// This claim is the one resend allowed for an unknown outcome.
    pub unknown_resend: bool,
}

/// A message prepared for a claimed delivery.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub id: i64,
    pub message_id: String,
    pub encrypted: Vec<u8>,
    pub papers: Vec<String>,
}

/// A delivery the relay accepted, waiting to be recorded.
#[derive(Debug, Clone)]
pub struct SentDelivery {
    pub id: i64,
    pub subscriber: SubscriberId,
    pub digest_date: NaiveDate,
    pub papers: Vec<String>,
}

/// Counts of one digest run (R60).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunCounts {
    pub planned: u64,
    pub sent: u64,
    pub retried: u64,
    pub failed: u64,
    pub skipped: u64,
    pub unknown: u64,
}

/// id, subscriber_id, digest_date, due_at, attempts, message_id, papers.
type ClaimRow = (
    i64,
    i64,
    String,
    String,
    i64,
    Option<String>,
    Option<String>,
);

fn parse_date(s: &str) -> Result<NaiveDate> {
    s.parse()
        .map_err(|e| super::StoreError::Corrupt(format!("bad digest date {s:?}: {e}")))
}

impl Store {
    /// Inserts one pending delivery per `(subscriber, local date, due
    /// instant)`, ignoring those that exist (R48: planning is idempotent).
    /// Returns how many were new.
    pub async fn plan_deliveries(
        &self,
        items: &[(SubscriberId, NaiveDate, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<u64> {
        if items.is_empty() {
            return Ok(0);
        }
        let now = ts(now);
        let mut tx = self.begin_write().await?;
        let mut n = 0;
        for chunk in items.chunks(1000) {
            let sql = format!(
                "INSERT INTO deliveries (subscriber_id, digest_date, due_at, next_attempt_at, created_at) \
                 VALUES {} ON CONFLICT (subscriber_id, digest_date) DO NOTHING",
                value_rows(chunk.len(), 5)
            );
            let mut q = sqlx::query(&sql);
            for (sub, date, due) in chunk {
                q = q
                    .bind(sub.0)
                    .bind(date.to_string())
                    .bind(ts(*due))
                    .bind(ts(*due))
                    .bind(&now);
            }
            n += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Whether a delivery exists for the subscriber and local date.
    pub async fn delivery_exists(&self, id: SubscriberId, date: NaiveDate) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM deliveries WHERE subscriber_id = ? AND digest_date = ?",
        )
        .bind(id.0)
        .bind(date.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Active subscribers with `id > after`, in id order, `limit` at a time:
    /// planning pages through them so memory stays flat however many
    /// there are.
    pub async fn active_subscribers_page(
        &self,
        after: SubscriberId,
        limit: u32,
    ) -> Result<Vec<Subscriber>> {
        self.subscribers_page(Some("active"), after, limit).await
    }

    /// At start-up and before each run: `sending` rows whose lease expired
    /// were interrupted. Those never handed to the transport (no
    /// `send_started_at`) go back to `pending`, keeping any prepared
    /// message; the others' outcome is unknown (R54). Returns (back to
    /// pending, now unknown).
    pub async fn recover_expired_leases(&self, now: DateTime<Utc>) -> Result<(u64, u64)> {
        let mut tx = self.begin_write().await?;
        // The single resend of an unknown outcome, interrupted before it
        // was handed over: still unknown, the resend still unused.
        let unknown_again = sqlx::query(
            "UPDATE deliveries SET state = 'unknown', lease_until = NULL, resent = 0 \
             WHERE state = 'sending' AND lease_until <= ? AND resent = 1 \
               AND send_started_at IS NULL AND message_id IS NOT NULL",
        )
        .bind(ts(now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let pending = sqlx::query(
            "UPDATE deliveries SET state = 'pending', lease_until = NULL \
             WHERE state = 'sending' AND lease_until <= ? \
               AND (send_started_at IS NULL OR message_id IS NULL)",
        )
        .bind(ts(now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let unknown = sqlx::query(
            "UPDATE deliveries SET state = 'unknown', lease_until = NULL, \
             last_error = 'outcome unknown: interrupted during send' \
             WHERE state = 'sending' AND lease_until <= ? \
               AND send_started_at IS NOT NULL AND message_id IS NOT NULL",
        )
        .bind(ts(now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok((pending, unknown + unknown_again))
    }

    /// Claims up to `limit` due deliveries, leasing them until `lease_until`
    /// (R50). With `resend_unknown`, unknown rows not yet resent are claimed
    /// too, for their single byte-identical resend.
    pub async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        resend_unknown: bool,
    ) -> Result<Vec<ClaimedDelivery>> {
        let mut tx = self.begin_write().await?;
        let due: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, state FROM deliveries \
             WHERE (state IN ('pending', 'retry') AND next_attempt_at <= ?) \
                OR (? AND state = 'unknown' AND resent = 0 AND message_id IS NOT NULL \
                    AND next_attempt_at <= ?) \
             ORDER BY state = 'unknown' DESC, next_attempt_at, id LIMIT ?",
            // Unknown outcomes first: their single resend should not wait
            // behind a whole day's queue.
        )
        .bind(ts(now))
        .bind(resend_unknown)
        .bind(ts(now))
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await?;
        if due.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let unknown: HashSet<i64> = due
            .iter()
            .filter(|(_, state)| state == "unknown")
            .map(|(id, _)| *id)
            .collect();
        // SET expressions see the row before the update: `state` is the
        // old one.
        let rows: Vec<ClaimRow> = sqlx::query_as(
            "UPDATE deliveries SET state = 'sending', lease_until = ?, attempts = attempts + 1, \
             send_started_at = NULL, resent = resent OR state = 'unknown' WHERE id IN (SELECT value FROM json_each(?)) \
             RETURNING id, subscriber_id, digest_date, due_at, attempts, message_id, papers",
        )
        .bind(ts(lease_until))
        .bind(super::json_ids(due.iter().map(|(id, _)| *id)))
        .fetch_all(&mut *tx)
        .await?;
        // Only retries and resends have stored bytes; a first attempt's
        // are stored by `prepare_deliveries` after rendering.
        let prepared: Vec<i64> = rows.iter().filter(|r| r.5.is_some()).map(|r| r.0).collect();
        let mut messages: HashMap<i64, Vec<u8>> = if prepared.is_empty() {
            HashMap::new()
        } else {
            sqlx::query_as(
                "SELECT delivery_id, sealed FROM delivery_messages \
                 WHERE delivery_id IN (SELECT value FROM json_each(?))",
            )
            .bind(super::json_ids(prepared.into_iter()))
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect()
        };
        tx.commit().await?;
        let mut out = rows
            .into_iter()
            .map(|(id, sub, date, due_at, attempts, message_id, papers)| {
                let message = match (&message_id, messages.remove(&id)) {
                    (Some(_), None) => {
                        return Err(super::StoreError::Corrupt(format!(
                            "delivery {id} is prepared but its message bytes are missing"
                        )))
                    }
                    (_, m) => m,
                };
                Ok(ClaimedDelivery {
                    id,
                    subscriber_id: SubscriberId(sub),
                    digest_date: parse_date(&date)?,
                    due_at: parse_ts(&due_at)?,
                    attempts,
                    message,
                    message_id,
                    papers: papers
                        .as_deref()
                        .map(serde_json::from_str)
                        .transpose()
                        .map_err(|e| {
                            super::StoreError::Corrupt(format!("delivery {id} papers: {e}"))
                        })?
                        .unwrap_or_default(),
                    unknown_resend: unknown.contains(&id),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|c| (!c.unknown_resend, c.id));
        Ok(out)
    }

    /// Stores prepared messages for claimed rows, in one transaction,
    /// before any of them is sent.
    pub async fn prepare_deliveries(&self, prepared: &[Prepared]) -> Result<()> {
        if prepared.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for chunk in prepared.chunks(500) {
            let sql = format!(
                "UPDATE deliveries SET message_id = v.column2, papers = v.column3 \
                 FROM (VALUES {}) AS v WHERE deliveries.id = v.column1 AND deliveries.state = 'sending'",
                value_rows(chunk.len(), 3)
            );
            let mut q = sqlx::query(&sql);
            for p in chunk {
                q = q
                    .bind(p.id)
                    .bind(&p.message_id)
                    .bind(serde_json::to_string(&p.papers).unwrap_or_else(|_| "[]".into()));
            }
            q.execute(&mut *tx).await?;
            // Only rows the update above just prepared (still `sending`,
            // so still this caller's claim) get bytes.
            let sql = format!(
                "INSERT INTO delivery_messages (delivery_id, sealed) \
                 SELECT v.column1, v.column2 FROM (VALUES {}) AS v \
                 JOIN deliveries d ON d.id = v.column1 AND d.state = 'sending' \
                 WHERE true ON CONFLICT (delivery_id) DO UPDATE SET sealed = excluded.sealed",
                value_rows(chunk.len(), 2)
            );
            let mut q = sqlx::query(&sql);
            for p in chunk {
                q = q.bind(p.id).bind(&p.encrypted);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records, durably, that the SMTP transactions of these claimed rows
    /// are about to start: from here until each outcome is committed, a
    /// crash leaves that outcome unknown (R54). One transaction for all.
    pub async fn deliveries_send_started(&self, ids: &[i64], now: DateTime<Utc>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE deliveries SET send_started_at = ? \
             WHERE id IN (SELECT value FROM json_each(?)) AND state = 'sending'",
        )
        .bind(ts(now))
        .bind(super::json_ids(ids.iter().copied()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The relay accepted these messages: records them and the papers
    /// they carried, so ranking never repeats them (R49). One transaction
    /// for many replies: until it commits, each row is still `sending`
    /// with its prepared bytes stored, so a crash before the commit leaves
    /// it to lease recovery as `unknown`, never silently unsent.
    pub async fn deliveries_sent(&self, sent: &[SentDelivery], now: DateTime<Utc>) -> Result<()> {
        if sent.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE deliveries SET state = 'sent', sent_at = ?, lease_until = NULL, \
             last_code = 250, last_error = NULL WHERE id IN (SELECT value FROM json_each(?))",
        )
        .bind(ts(now))
        .bind(super::json_ids(sent.iter().map(|s| s.id)))
        .execute(&mut *tx)
        .await?;
        // A sent row is never sent again: its bytes have no further use.
        sqlx::query(
            "DELETE FROM delivery_messages WHERE delivery_id IN (SELECT value FROM json_each(?))",
        )
        .bind(super::json_ids(sent.iter().map(|s| s.id)))
        .execute(&mut *tx)
        .await?;
        let rows: Vec<(i64, &str, String)> = sent
            .iter()
            .flat_map(|s| {
                let date = s.digest_date.to_string();
                s.papers
                    .iter()
                    .map(move |p| (s.subscriber.0, p.as_str(), date.clone()))
            })
            .collect();
        for chunk in rows.chunks(1000) {
            let sql = format!(
                "INSERT INTO sent_papers (subscriber_id, paper_id, digest_date) VALUES {} \
                 ON CONFLICT DO NOTHING",
                value_rows(chunk.len(), 3)
            );
            let mut q = sqlx::query(&sql);
            for (sub, paper, date) in chunk {
                q = q.bind(sub).bind(*paper).bind(date);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Ends an attempt in `retry` (with `next`), `failed`, `skipped` or
    /// `unknown`, recording the reply. `retry` and `unknown` keep the
    /// prepared bytes for the identical resend; the final states drop them.
    pub async fn delivery_outcome(
        &self,
        id: i64,
        state: &str,
        code: Option<u16>,
        enhanced: Option<&str>,
        error: &str,
        next: Option<DateTime<Utc>>,
    ) -> Result<()> {
        debug_assert!(matches!(state, "retry" | "failed" | "skipped" | "unknown"));
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE deliveries SET state = ?, last_code = ?, last_enhanced_status = ?, \
             last_error = ?, lease_until = NULL, next_attempt_at = COALESCE(?, next_attempt_at) \
             WHERE id = ?",
        )
        .bind(state)
        .bind(code.map(i64::from))
        .bind(enhanced)
        .bind(error)
        .bind(next.map(ts))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if matches!(state, "failed" | "skipped") {
            // Final: nothing will send these bytes again.
            sqlx::query("DELETE FROM delivery_messages WHERE delivery_id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Returns a claimed row that was never sent to `pending` (a paused or
    /// interrupted run), or to `unknown` with its resend unused when the
    /// claim was that resend. Its prepared message, if any, is kept.
    pub async fn release_delivery(&self, id: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE deliveries SET state = CASE WHEN resent = 1 THEN 'unknown' ELSE 'pending' END, \
             resent = 0, lease_until = NULL, send_started_at = NULL, attempts = attempts - 1 \
             WHERE id = ? AND state = 'sending'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Canonical ids of every paper already mailed to the subscriber.
    pub async fn sent_paper_ids(&self, id: SubscriberId) -> Result<HashSet<String>> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT paper_id FROM sent_papers WHERE subscriber_id = ?")
                .bind(id.0)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().collect())
    }

    /// [`Store::sent_paper_ids`] of many subscribers in one query; a
    /// subscriber who was never mailed has no entry.
    pub async fn sent_paper_ids_of(
        &self,
        ids: &[SubscriberId],
    ) -> Result<HashMap<SubscriberId, HashSet<String>>> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT subscriber_id, paper_id FROM sent_papers \
             WHERE subscriber_id IN (SELECT value FROM json_each(?))",
        )
        .bind(super::json_ids(ids.iter().map(|i| i.0)))
        .fetch_all(&self.pool)
        .await?;
        let mut out: HashMap<SubscriberId, HashSet<String>> = HashMap::new();
        for (sub, paper) in rows {
            out.entry(SubscriberId(sub)).or_default().insert(paper);
        }
        Ok(out)
    }

    /// Delivery counts by state, for /metrics.
    pub async fn delivery_counts(&self) -> Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT state, count(*) FROM deliveries GROUP BY state ORDER BY state")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// (subscriber email, state) of every delivery, for tests and reports.
    pub async fn deliveries_for(&self, id: SubscriberId) -> Result<Vec<(NaiveDate, String, i64)>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT digest_date, state, attempts FROM deliveries WHERE subscriber_id = ? ORDER BY digest_date",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(d, s, a)| Ok((parse_date(&d)?, s, a)))
            .collect()
    }

    /// When the earliest waiting delivery becomes due.
    pub async fn next_delivery_due(&self) -> Result<Option<DateTime<Utc>>> {
        let t: Option<String> = sqlx::query_scalar(
            "SELECT min(next_attempt_at) FROM deliveries WHERE state IN ('pending', 'retry')",
        )
        .fetch_one(&self.pool)
        .await?;
        t.as_deref().map(parse_ts).transpose()
    }

    pub async fn start_run(&self, now: DateTime<Utc>) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE digest_runs SET state = 'interrupted' WHERE state = 'running'")
            .execute(&mut *tx)
            .await?;
        let id: i64 =
            sqlx::query_scalar("INSERT INTO digest_runs (started_at) VALUES (?) RETURNING id")
                .bind(ts(now))
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn finish_run(
        &self,
        id: i64,
        counts: &RunCounts,
        state: &str,
        note: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE digest_runs SET finished_at = ?, state = ?, planned = ?, sent = ?, retried = ?, \
             failed = ?, skipped = ?, unknown = ?, note = ? WHERE id = ?",
        )
        .bind(ts(now))
        .bind(state)
        .bind(counts.planned as i64)
        .bind(counts.sent as i64)
        .bind(counts.retried as i64)
        .bind(counts.failed as i64)
        .bind(counts.skipped as i64)
        .bind(counts.unknown as i64)
        .bind(note)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
