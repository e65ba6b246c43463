//! Digest deliveries, the papers they carried, and digest runs.
//!
//! Every state change is its own short `BEGIN IMMEDIATE` transaction; the
//! digest engine commits a claim before any SMTP traffic and the outcome
//! right after the reply, so no transaction spans the network (R50).

use super::subscribers::Subscriber;
use super::{parse_ts, ts, value_rows, Result, Store};
use crate::domain::{SubscriberId, Window};
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
    /// The listing days the digest covers, recorded at planning (`None`
    /// only for a row damaged by hand).
    pub window: Option<Window>,
}

/// One delivery to plan: a subscriber's digest for a local date, due at
/// an instant, covering a window of listing days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanItem {
    pub subscriber: SubscriberId,
    pub digest_date: NaiveDate,
    pub due_at: DateTime<Utc>,
    pub window: Window,
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

/// How an attempt ends when it does not end `sent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEnd {
    /// Try again at `next`.
    Retry {
        next: DateTime<Utc>,
    },
    Failed,
    /// Not sent on purpose (unsubscribed, suppressed, nothing to send).
    Skipped,
    /// Possibly sent; the single resend (under `resend`) is due at `next`.
    Unknown {
        next: DateTime<Utc>,
    },
}

impl AttemptEnd {
    fn state(self) -> &'static str {
        match self {
            AttemptEnd::Retry { .. } => "retry",
            AttemptEnd::Failed => "failed",
            AttemptEnd::Skipped => "skipped",
            AttemptEnd::Unknown { .. } => "unknown",
        }
    }

    fn next(self) -> Option<DateTime<Utc>> {
        match self {
            AttemptEnd::Retry { next } | AttemptEnd::Unknown { next } => Some(next),
            AttemptEnd::Failed | AttemptEnd::Skipped => None,
        }
    }
}

/// What is left undone in the deliveries table at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryBacklog {
    /// Waiting and due now (pending or retry; unknown with its single
    /// resend unused, under `resend`): a run at this instant sends them.
    pub due: u64,
    /// Leased to a run that is sending them now.
    pub in_flight: u64,
    /// Leased, but the lease ran out: the run holding it died or hangs.
    /// Recovered by the next run or restart; until then `/healthz` says
    /// `degraded`.
    pub stuck: u64,
    /// Outcome unknown (interrupted mid-send): under `skip` they stay so
    /// and need an operator's look; under `resend` until resent.
    pub unknown: u64,
}

/// id, subscriber_id, digest_date, due_at, attempts, message_id, papers,
/// window_since, window_until.
type ClaimRow = (
    i64,
    i64,
    String,
    String,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn parse_date(s: &str) -> Result<NaiveDate> {
    s.parse()
        .map_err(|e| super::StoreError::Corrupt(format!("bad digest date {s:?}: {e}")))
}

fn read_window(since: Option<&str>, until: Option<&str>) -> Result<Option<Window>> {
    Ok(match (since, until) {
        (Some(s), Some(u)) => Some(Window {
            since: parse_date(s)?,
            until: parse_date(u)?,
        }),
        _ => None,
    })
}

/// The inserts of [`Store::plan_deliveries`], inside the caller's
/// transaction.
pub(super) async fn insert_planned(
    conn: &mut sqlx::SqliteConnection,
    items: &[PlanItem],
    now: DateTime<Utc>,
) -> Result<u64> {
    let now = ts(now);
    let mut n = 0;
    for chunk in super::shaped_chunks(items, 1000) {
        let sql = format!(
            "INSERT INTO deliveries (subscriber_id, digest_date, due_at, next_attempt_at, \
             created_at, window_since, window_until) \
             VALUES {} ON CONFLICT (subscriber_id, digest_date) DO NOTHING",
            value_rows(chunk.len(), 7)
        );
        let mut q = sqlx::query(&sql);
        for item in chunk {
            q = q
                .bind(item.subscriber.0)
                .bind(item.digest_date.to_string())
                .bind(ts(item.due_at))
                .bind(ts(item.due_at))
                .bind(&now)
                .bind(item.window.since.to_string())
                .bind(item.window.until.to_string());
        }
        n += q.execute(&mut *conn).await?.rows_affected();
    }
    Ok(n)
}

/// [`Store::last_covered_of`] on the caller's connection (planning asks
/// inside its transaction). One query; each lookup walks the subscriber's
/// deliveries newest first and stops at the first sent one.
pub(super) async fn last_covered_in(
    conn: &mut sqlx::SqliteConnection,
    ids: &[SubscriberId],
) -> Result<HashMap<SubscriberId, NaiveDate>> {
    let rows: Vec<(i64, Option<String>)> = sqlx::query_as(
        "SELECT j.value, (SELECT d.window_until FROM deliveries d \
           WHERE d.subscriber_id = j.value AND d.state = 'sent' \
           ORDER BY d.digest_date DESC LIMIT 1) \
         FROM json_each(?) j",
    )
    .bind(super::json_ids(ids.iter().map(|i| i.0)))
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .filter_map(|(id, until)| until.map(|u| (id, u)))
        .map(|(id, u)| Ok((SubscriberId(id), parse_date(&u)?)))
        .collect()
}

impl Store {
    /// Inserts one pending delivery per item, ignoring those whose
    /// (subscriber, local date) exists (R48: planning is idempotent; an
    /// existing row keeps its window). Returns how many were new.
    pub async fn plan_deliveries(&self, items: &[PlanItem], now: DateTime<Utc>) -> Result<u64> {
        if items.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let n = insert_planned(&mut tx, items, now).await?;
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

    /// Before each run: `sending` rows whose lease expired were
    /// interrupted. Those never handed to the transport (no
    /// `send_started_at`) go back to `pending`, keeping any prepared
    /// message; the others' outcome is unknown (R54). Returns (back to
    /// pending, now unknown).
    pub async fn recover_expired_leases(&self, now: DateTime<Utc>) -> Result<(u64, u64)> {
        self.recover_leases(&ts(now)).await
    }

    /// At start-up of `serve` and `digest`: every lease is recovered at
    /// once, expired or not. Only the process holding the instance lock
    /// writes deliveries, so any lease that exists when it starts belongs
    /// to a process that died; waiting for it to expire only delays (or,
    /// with `digest --now`, loses) those digests. Same outcome per row as
    /// [`Store::recover_expired_leases`].
    pub async fn reclaim_leases_at_startup(&self) -> Result<(u64, u64)> {
        // Later than any lease: timestamps compare as text.
        self.recover_leases("9999-12-31T23:59:59.999Z").await
    }

    async fn recover_leases(&self, cutoff: &str) -> Result<(u64, u64)> {
        let mut tx = self.begin_write().await?;
        // The single resend of an unknown outcome, interrupted before it
        // was handed over: still unknown, the resend still unused.
        let unknown_again = sqlx::query(
            "UPDATE deliveries SET state = 'unknown', lease_until = NULL, resent = 0 \
             WHERE state = 'sending' AND lease_until <= ? AND resent = 1 \
               AND send_started_at IS NULL AND message_id IS NOT NULL",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let pending = sqlx::query(
            "UPDATE deliveries SET state = 'pending', lease_until = NULL \
             WHERE state = 'sending' AND lease_until <= ? \
               AND (send_started_at IS NULL OR message_id IS NULL)",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let unknown = sqlx::query(
            "UPDATE deliveries SET state = 'unknown', lease_until = NULL, \
             last_error = 'outcome unknown: interrupted during send' \
             WHERE state = 'sending' AND lease_until <= ? \
               AND send_started_at IS NOT NULL AND message_id IS NOT NULL",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok((pending, unknown + unknown_again))
    }

    /// Deliveries that keep a run from being complete at `now`, for the
    /// run's end state, `digest`, `/healthz` and `/metrics`.
    pub async fn delivery_backlog(
        &self,
        now: DateTime<Utc>,
        resend_unknown: bool,
    ) -> Result<DeliveryBacklog> {
        let (due, in_flight, stuck, unknown): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT \
               coalesce(sum(state IN ('pending', 'retry') AND next_attempt_at <= ?1 \
                   OR (?2 AND state = 'unknown' AND resent = 0 AND message_id IS NOT NULL \
                       AND next_attempt_at <= ?1)), 0), \
               coalesce(sum(state = 'sending' AND lease_until > ?1), 0), \
               coalesce(sum(state = 'sending' AND (lease_until IS NULL OR lease_until <= ?1)), 0), \
               coalesce(sum(state = 'unknown'), 0) \
             FROM deliveries WHERE state IN ('pending', 'retry', 'sending', 'unknown')",
        )
        .bind(ts(now))
        .bind(resend_unknown)
        .fetch_one(&self.pool)
        .await?;
        Ok(DeliveryBacklog {
            due: due as u64,
            in_flight: in_flight as u64,
            stuck: stuck as u64,
            unknown: unknown as u64,
        })
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
        // One index range per state (deliveries_due is (state,
        // next_attempt_at), rowid order within a key), each already in
        // order and at most `limit` long, merged here. A single query over
        // all three states would have to sort every due row on each claim,
        // which grows with the day's whole queue.
        let mut due: Vec<(i64, String, String)> = Vec::new();
        for state in ["unknown", "retry", "pending"] {
            if state == "unknown" && !resend_unknown {
                continue;
            }
            let rows: Vec<(i64, String, String)> = sqlx::query_as(
                "SELECT id, state, next_attempt_at FROM deliveries \
                     WHERE state = ? AND next_attempt_at <= ? \
                       AND (state <> 'unknown' OR (resent = 0 AND message_id IS NOT NULL)) \
                     ORDER BY next_attempt_at, id LIMIT ?",
            )
            .bind(state)
            .bind(ts(now))
            .bind(limit as i64)
            .fetch_all(&mut *tx)
            .await?;
            due.extend(rows);
        }
        // Unknown outcomes first: their single resend should not wait
        // behind a whole day's queue. Then by due time.
        let unknown_first = due.iter().take_while(|d| d.1 == "unknown").count();
        due[unknown_first..].sort_by(|a, b| (&a.2, a.0).cmp(&(&b.2, b.0)));
        due.truncate(limit as usize);
        if due.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let unknown: HashSet<i64> = due
            .iter()
            .filter(|(_, state, _)| state == "unknown")
            .map(|(id, _, _)| *id)
            .collect();
        // SET expressions see the row before the update: `state` is the
        // old one.
        let rows: Vec<ClaimRow> = sqlx::query_as(
            "UPDATE deliveries SET state = 'sending', lease_until = ?, attempts = attempts + 1, \
             send_started_at = NULL, resent = resent OR state = 'unknown' WHERE id IN (SELECT value FROM json_each(?)) \
             RETURNING id, subscriber_id, digest_date, due_at, attempts, message_id, papers, \
             window_since, window_until",
        )
        .bind(ts(lease_until))
        .bind(super::json_ids(due.iter().map(|(id, _, _)| *id)))
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
            .map(
                |(id, sub, date, due_at, attempts, mut message_id, papers, since, until)| {
                    let message = messages.remove(&id);
                    if message_id.is_some() && message.is_none() {
                        // Only a damaged database gets here. Failing the claim
                        // would fail every run after it; instead the digest is
                        // rendered again (with the same Message-ID).
                        tracing::warn!(
                            delivery = id,
                            "prepared delivery has no stored bytes; rendering it again"
                        );
                        message_id = None;
                    }
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
                        window: read_window(since.as_deref(), until.as_deref())?,
                    })
                },
            )
            .collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|c| (!c.unknown_resend, c.id));
        Ok(out)
    }

    /// Stores prepared messages for claimed rows before any of them is
    /// sent, [`PREPARE_GROUP`] rows per transaction, each one round trip.
    ///
    /// Small transactions because every send waits for its "send started"
    /// mark in the same write turn: one transaction for a whole batch of
    /// 256 messages (~4 MB of stored bytes) held the turn for ~16 ms, and
    /// every send with it. A row whose bytes were stored is prepared on its
    /// own; if a later group fails, the caller sends none of the batch and
    /// lease recovery returns its rows to `pending` (never marked started),
    /// so the next run sends exactly the stored bytes.
    pub async fn prepare_deliveries(&self, prepared: &[Prepared]) -> Result<()> {
        for chunk in super::shaped_chunks(prepared, PREPARE_GROUP) {
            // Only rows the update just prepared (still `sending`, so still
            // this caller's claim) get bytes.
            let sql = format!(
                "BEGIN IMMEDIATE; \
                 UPDATE deliveries SET message_id = v.column2, papers = v.column3 \
                 FROM (VALUES {}) AS v WHERE deliveries.id = v.column1 AND deliveries.state = 'sending'; \
                 INSERT INTO delivery_messages (delivery_id, sealed) \
                 SELECT v.column1, v.column2 FROM (VALUES {}) AS v \
                 JOIN deliveries d ON d.id = v.column1 AND d.state = 'sending' \
                 WHERE true ON CONFLICT (delivery_id) DO UPDATE SET sealed = excluded.sealed; \
                 COMMIT;",
                value_rows(chunk.len(), 3),
                value_rows(chunk.len(), 2)
            );
            let mut q = sqlx::query(&sql);
            for p in chunk {
                q = q
                    .bind(p.id)
                    .bind(&p.message_id)
                    .bind(serde_json::to_string(&p.papers).unwrap_or_else(|_| "[]".into()));
            }
            for p in chunk {
                q = q.bind(p.id).bind(&p.encrypted);
            }
            self.write_script(q).await?;
        }
        Ok(())
    }

    /// Records, durably, that the SMTP transactions of these claimed rows
    /// are about to start: from here until each outcome is committed, a
    /// crash leaves that outcome unknown (R54). One transaction for all.
    pub async fn deliveries_send_started(&self, ids: &[i64], now: DateTime<Utc>) -> Result<()> {
        self.record_dispatch(ids, &[], now).await
    }

    /// The relay accepted these messages: records them and the papers
    /// they carried, so ranking never repeats them (R49). One transaction
    /// for many replies: until it commits, each row is still `sending`
    /// with its prepared bytes stored, so a crash before the commit leaves
    /// it to lease recovery as `unknown`, never silently unsent.
    pub async fn deliveries_sent(&self, sent: &[SentDelivery], now: DateTime<Utc>) -> Result<()> {
        self.record_dispatch(&[], sent, now).await
    }

    /// Both of the above in one transaction: the send path's group
    /// commit (`digest::journal`). Every send waits for its mark, so this
    /// is on the path of every message: one round trip to the database
    /// thread (a single script), not one per statement.
    pub async fn record_dispatch(
        &self,
        started: &[i64],
        sent: &[SentDelivery],
        now: DateTime<Utc>,
    ) -> Result<()> {
        if started.is_empty() && sent.is_empty() {
            return Ok(());
        }
        let started = super::json_ids(started.iter().copied());
        let ids = super::json_ids(sent.iter().map(|s| s.id));
        let papers = serde_json::to_string(
            &sent
                .iter()
                .flat_map(|s| {
                    let date = s.digest_date.to_string();
                    s.papers
                        .iter()
                        .map(move |p| (s.subscriber.0, p.as_str(), date.clone()))
                })
                .collect::<Vec<_>>(),
        )
        .map_err(|e| super::StoreError::Corrupt(format!("sent papers: {e}")))?;
        self.write_script(
            sqlx::query(RECORD_DISPATCH)
                .bind(ts(now))
                .bind(started)
                .bind(ts(now))
                .bind(ids.clone())
                .bind(ids)
                .bind(papers),
        )
        .await
    }

    /// Ends an attempt other than `sent`, recording the reply. `retry` and
    /// `unknown` keep the prepared bytes for the identical resend; the
    /// final states drop them.
    pub async fn delivery_outcome(
        &self,
        id: i64,
        end: AttemptEnd,
        code: Option<u16>,
        enhanced: Option<&str>,
        error: &str,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE deliveries SET state = ?, last_code = ?, last_enhanced_status = ?, \
             last_error = ?, lease_until = NULL, next_attempt_at = COALESCE(?, next_attempt_at) \
             WHERE id = ?",
        )
        .bind(end.state())
        .bind(code.map(i64::from))
        .bind(enhanced)
        .bind(error)
        .bind(end.next().map(ts))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if matches!(end, AttemptEnd::Failed | AttemptEnd::Skipped) {
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

    /// Hands a claimed row that was not sent back until `until` (its
    /// recipient domain's pace, R57): `pending` again (or `unknown` with
    /// its resend unused), the claim not counted as an attempt, any
    /// prepared message kept.
    pub async fn defer_delivery(&self, id: i64, until: DateTime<Utc>) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE deliveries SET state = CASE WHEN resent = 1 THEN 'unknown' ELSE 'pending' END, \
             resent = 0, lease_until = NULL, send_started_at = NULL, attempts = attempts - 1, \
             next_attempt_at = ? WHERE id = ? AND state = 'sending'",
        )
        .bind(ts(until))
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

    /// The last listing day the latest sent digest of each subscriber
    /// covered: where their next digest's window starts. A subscriber
    /// never mailed has no entry.
    pub async fn last_covered_of(
        &self,
        ids: &[SubscriberId],
    ) -> Result<HashMap<SubscriberId, NaiveDate>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut conn = self.pool.acquire().await?;
        last_covered_in(&mut conn, ids).await
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

/// Prepared messages stored per transaction (see `prepare_deliveries`).
const PREPARE_GROUP: usize = 32;

/// The send path's group commit, one transaction: marks rows as started,
/// records accepted messages as `sent`, drops their stored bytes (a sent
/// row is never sent again) and records the papers they carried for
/// never-repeat. Binds, in order: now, started ids, now, sent ids, sent
/// ids, `[subscriber, paper, date]` triples (JSON arrays).
///
/// Plain `?` only: sqlx binds a multi-statement query's numbered
/// parameters wrongly when a statement skips numbers (it stops binding at
/// the first unnamed slot past the argument count), so `?4` alone in a
/// statement was left NULL.
const RECORD_DISPATCH: &str = "BEGIN IMMEDIATE; \
     UPDATE deliveries SET send_started_at = ? \
       WHERE id IN (SELECT value FROM json_each(?)) AND state = 'sending'; \
     UPDATE deliveries SET state = 'sent', sent_at = ?, lease_until = NULL, \
       last_code = 250, last_enhanced_status = NULL, last_error = NULL \
       WHERE id IN (SELECT value FROM json_each(?)); \
     DELETE FROM delivery_messages WHERE delivery_id IN (SELECT value FROM json_each(?)); \
     INSERT INTO sent_papers (subscriber_id, paper_id, digest_date) \
       SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?) WHERE true \
       ON CONFLICT DO NOTHING; \
     COMMIT;";

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::test_support::temp_store;
    use chrono::TimeZone;

    /// An active subscriber, daily at 08:00 UTC.
    async fn subscriber(store: &Store, now: DateTime<Utc>, email: &str) -> SubscriberId {
        crate::store::test_support::active_subscriber(store, now, email).await
    }

    /// A delivery to plan, covering the three days before its date.
    fn item(subscriber: SubscriberId, digest_date: NaiveDate, due_at: DateTime<Utc>) -> PlanItem {
        PlanItem {
            subscriber,
            digest_date,
            due_at,
            window: Window {
                since: digest_date - chrono::Duration::days(3),
                until: digest_date,
            },
        }
    }

    #[tokio::test]
    async fn the_last_covered_day_is_the_end_of_the_latest_sent_digests_window() {
        let (store, _dir) = temp_store().await;
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap();
        let day = |s: &str| s.parse::<NaiveDate>().unwrap();
        let a = subscriber(&store, now, "a@example.org").await;
        let never = subscriber(&store, now, "never@example.org").await;
        // a: sent on the 23rd (covering 16–23), skipped on the 27th, and
        // one pending for today.
        for (date, state) in [
            ("2026-11-23", "sent"),
            ("2026-11-27", "skipped"),
            ("2026-11-30", ""),
        ] {
            let mut it = item(a, day(date), now);
            it.window.since = day("2026-11-16");
            store.plan_deliveries(&[it], now).await.unwrap();
            let claim = store
                .claim_deliveries(now, now + chrono::Duration::minutes(5), 10, true)
                .await
                .unwrap()
                .remove(0);
            assert_eq!(
                claim.window,
                Some(it.window),
                "the claim carries its window"
            );
            match state {
                "sent" => store
                    .deliveries_sent(
                        &[SentDelivery {
                            id: claim.id,
                            subscriber: a,
                            digest_date: claim.digest_date,
                            papers: vec![],
                        }],
                        now,
                    )
                    .await
                    .unwrap(),
                "skipped" => store
                    .delivery_outcome(claim.id, AttemptEnd::Skipped, None, None, "nothing")
                    .await
                    .unwrap(),
                _ => store.release_delivery(claim.id).await.unwrap(),
            }
        }
        let covered = store.last_covered_of(&[a, never]).await.unwrap();
        assert_eq!(covered.get(&a), Some(&day("2026-11-23")));
        assert_eq!(covered.get(&never), None);
        assert!(store.last_covered_of(&[]).await.unwrap().is_empty());
    }

    /// A subscriber's delivery for today, claimed and prepared.
    async fn one_claimed(store: &Store, now: DateTime<Utc>, email: &str) -> ClaimedDelivery {
        let id = subscriber(store, now, email).await;
        store
            .plan_deliveries(&[item(id, now.date_naive(), now)], now)
            .await
            .unwrap();
        let mut claims = store
            .claim_deliveries(now, now + chrono::Duration::minutes(5), 10, true)
            .await
            .unwrap();
        assert_eq!(claims.len(), 1);
        let claim = claims.remove(0);
        store
            .prepare_deliveries(&[Prepared {
                id: claim.id,
                message_id: format!("<{}@test>", claim.id),
                encrypted: vec![7; 9000],
                papers: vec!["2406.00001".into()],
            }])
            .await
            .unwrap();
        claim
    }

    #[tokio::test]
    async fn claims_come_unknown_first_then_by_due_time_across_states() {
        let (store, _dir) = temp_store().await;
        let now = Utc.with_ymd_and_hms(2026, 6, 13, 8, 0, 0).unwrap();
        let lease = now + chrono::Duration::minutes(5);
        // Prepared and then: a retry due 3 minutes ago, an unknown outcome.
        let r = one_claimed(&store, now, "r@example.org").await;
        let u = one_claimed(&store, now, "u@example.org").await;
        store
            .delivery_outcome(
                r.id,
                AttemptEnd::Retry {
                    next: now - chrono::Duration::minutes(3),
                },
                Some(451),
                None,
                "busy",
            )
            .await
            .unwrap();
        store
            .delivery_outcome(
                u.id,
                AttemptEnd::Unknown { next: now },
                None,
                None,
                "stalled",
            )
            .await
            .unwrap();
        // Pending rows due 5 and 1 minutes ago, and one not due yet.
        let mut pending = Vec::new();
        for (email, ago) in [
            ("p5@example.org", 5),
            ("p1@example.org", 1),
            ("later@example.org", -10),
        ] {
            let id = subscriber(&store, now, email).await;
            let due = now - chrono::Duration::minutes(ago);
            store
                .plan_deliveries(&[item(id, now.date_naive(), due)], now)
                .await
                .unwrap();
            pending.push(id);
        }
        let claim = |limit| {
            let store = store.clone();
            async move {
                store
                    .claim_deliveries(now, lease, limit, true)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|c| c.subscriber_id)
                    .collect::<Vec<_>>()
            }
        };
        // The unknown resend, then the earliest due across states.
        assert_eq!(claim(2).await, vec![u.subscriber_id, pending[0]]);
        assert_eq!(claim(10).await, vec![r.subscriber_id, pending[1]]);
        assert!(claim(10).await.is_empty(), "not due yet");
        // Among retries alone too, the earliest due goes first.
        let (store, _dir) = temp_store().await;
        let a = one_claimed(&store, now, "a@example.org").await;
        let b = one_claimed(&store, now, "b@example.org").await;
        for (id, ago) in [(a.id, 0), (b.id, 1)] {
            store
                .delivery_outcome(
                    id,
                    AttemptEnd::Retry {
                        next: now - chrono::Duration::minutes(ago),
                    },
                    Some(451),
                    None,
                    "busy",
                )
                .await
                .unwrap();
        }
        let first = store.claim_deliveries(now, lease, 1, true).await.unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].id, b.id);
    }

    /// A retried delivery that ends `sent` shows the success, not the
    /// earlier temporary failure's details.
    #[tokio::test]
    async fn a_delivery_sent_after_a_retry_keeps_no_stale_failure_details() {
        let (store, _dir) = temp_store().await;
        let now = Utc.with_ymd_and_hms(2026, 6, 13, 8, 0, 0).unwrap();
        let a = one_claimed(&store, now, "a@example.org").await;
        store
            .delivery_outcome(
                a.id,
                AttemptEnd::Retry { next: now },
                Some(451),
                Some("4.7.28"),
                "rate limited",
            )
            .await
            .unwrap();
        let again = store
            .claim_deliveries(now, now + chrono::Duration::minutes(5), 10, true)
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        let sent = SentDelivery {
            id: a.id,
            subscriber: a.subscriber_id,
            digest_date: a.digest_date,
            papers: vec![],
        };
        store.deliveries_sent(&[sent], now).await.unwrap();
        let row: (String, Option<i64>, Option<String>, Option<String>) = sqlx::query_as(
            "SELECT state, last_code, last_enhanced_status, last_error FROM deliveries WHERE id = ?",
        )
        .bind(a.id)
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(row, ("sent".into(), Some(250), None, None));
    }

    async fn stored_messages(store: &Store) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM delivery_messages")
            .fetch_one(store.pool())
            .await
            .unwrap()
    }

    /// The send path's group commit is one transaction: when any part
    /// fails, no mark and no record is kept, and the write connection is
    /// not left inside the failed transaction.
    #[tokio::test]
    async fn a_failed_dispatch_record_keeps_nothing_and_the_next_one_commits_everything() {
        let (store, _dir) = temp_store().await;
        let now = Utc.with_ymd_and_hms(2026, 6, 13, 8, 0, 0).unwrap();
        let a = one_claimed(&store, now, "a@example.org").await;
        let b = one_claimed(&store, now, "b@example.org").await;
        let sent = |subscriber| SentDelivery {
            id: b.id,
            subscriber,
            digest_date: b.digest_date,
            papers: vec!["2406.00001".into(), "2406.00002".into()],
        };
        // A never-repeat row for a subscriber that does not exist breaks
        // the foreign key in the script's last statement.
        let err = store
            .record_dispatch(&[a.id], &[sent(SubscriberId(987_654))], now)
            .await;
        assert!(err.is_err());
        let row = |id: i64| {
            sqlx::query_as::<_, (String, Option<String>)>(
                "SELECT state, send_started_at FROM deliveries WHERE id = ?",
            )
            .bind(id)
            .fetch_one(store.pool())
        };
        assert_eq!(row(a.id).await.unwrap(), ("sending".to_string(), None));
        assert_eq!(row(b.id).await.unwrap().0, "sending");
        assert_eq!(stored_messages(&store).await, 2, "bytes kept");

        store
            .record_dispatch(&[a.id], &[sent(b.subscriber_id)], now)
            .await
            .unwrap();
        assert_eq!(
            row(a.id).await.unwrap(),
            ("sending".to_string(), Some(ts(now)))
        );
        assert_eq!(row(b.id).await.unwrap().0, "sent");
        assert_eq!(stored_messages(&store).await, 1, "the sent row's bytes go");
        let mut never_again: Vec<String> = store
            .sent_paper_ids(b.subscriber_id)
            .await
            .unwrap()
            .into_iter()
            .collect();
        never_again.sort();
        assert_eq!(never_again, ["2406.00001", "2406.00002"]);
    }

    #[tokio::test]
    async fn prepared_bytes_stay_for_a_retry_and_go_once_the_delivery_is_final() {
        let (store, _dir) = temp_store().await;
        let now = Utc.with_ymd_and_hms(2026, 6, 13, 8, 0, 0).unwrap();
        let a = one_claimed(&store, now, "a@example.org").await;
        let b = one_claimed(&store, now, "b@example.org").await;
        let c = one_claimed(&store, now, "c@example.org").await;
        assert_eq!(stored_messages(&store).await, 3);

        // A retry is claimed again with the identical stored bytes.
        store
            .delivery_outcome(
                a.id,
                AttemptEnd::Retry { next: now },
                Some(451),
                None,
                "busy",
            )
            .await
            .unwrap();
        let again = store
            .claim_deliveries(now, now + chrono::Duration::minutes(5), 10, true)
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].message.as_deref(), Some(&[7u8; 9000][..]));
        assert_eq!(
            again[0].message_id.as_deref(),
            Some(&*format!("<{}@test>", a.id))
        );

        store
            .deliveries_sent(
                &[SentDelivery {
                    id: a.id,
                    subscriber: a.subscriber_id,
                    digest_date: a.digest_date,
                    papers: vec!["2406.00001".into()],
                }],
                now,
            )
            .await
            .unwrap();
        store
            .delivery_outcome(
                b.id,
                AttemptEnd::Failed,
                Some(550),
                Some("5.1.1"),
                "no such user",
            )
            .await
            .unwrap();
        // An unknown outcome keeps its bytes for the single resend.
        store
            .delivery_outcome(
                c.id,
                AttemptEnd::Unknown { next: now },
                None,
                None,
                "stalled",
            )
            .await
            .unwrap();
        let left: Vec<i64> = sqlx::query_scalar("SELECT delivery_id FROM delivery_messages")
            .fetch_all(store.pool())
            .await
            .unwrap();
        assert_eq!(left, vec![c.id]);
        // The Message-ID stays with the row after its bytes are gone.
        let mid: Option<String> =
            sqlx::query_scalar("SELECT message_id FROM deliveries WHERE id = ?")
                .bind(a.id)
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(mid, Some(format!("<{}@test>", a.id)));
    }

    #[tokio::test]
    async fn a_prepared_row_whose_bytes_are_missing_is_claimed_to_be_rendered_again() {
        let (store, _dir) = temp_store().await;
        let now = Utc.with_ymd_and_hms(2026, 6, 13, 8, 0, 0).unwrap();
        let a = one_claimed(&store, now, "a@example.org").await;
        store
            .delivery_outcome(
                a.id,
                AttemptEnd::Retry { next: now },
                Some(451),
                None,
                "busy",
            )
            .await
            .unwrap();
        store
            .write_one(sqlx::query("DELETE FROM delivery_messages"))
            .await
            .unwrap();
        let claims = store
            .claim_deliveries(now, now + chrono::Duration::minutes(5), 10, true)
            .await
            .unwrap();
        assert_eq!(claims.len(), 1);
        assert!(claims[0].message.is_none() && claims[0].message_id.is_none());
    }
}

#[cfg(test)]
mod migration_tests {
    use crate::store::Store;
    use crate::store::StoreOptions;
    use sqlx::sqlite::SqliteConnectOptions;
    use std::str::FromStr;

    /// A database left by a version that kept the sealed bytes inline in
    /// `deliveries.message` opens with them moved to `delivery_messages`,
    /// kept only where a resend may still need them.
    #[tokio::test]
    async fn inline_message_bytes_move_to_their_own_table_on_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        // The schema as it was: every migration before the move.
        let old = dir.path().join("old-migrations");
        std::fs::create_dir(&old).unwrap();
        for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")).unwrap()
        {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            if name.as_str() < "20261127000005" {
                std::fs::copy(entry.path(), old.join(&name)).unwrap();
            }
        }
        let pool = sqlx::SqlitePool::connect_with(
            SqliteConnectOptions::from_str("sqlite://")
                .unwrap()
                .filename(&path)
                .create_if_missing(true),
        )
        .await
        .unwrap();
        sqlx::migrate::Migrator::new(old.as_path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO subscribers (id, email, email_canonical, state, digest_size, frequency, \
             send_time, time_zone, created_at, updated_at) \
             VALUES (1, 'a@example.org', 'a@example.org', 'active', 5, 'daily', '08:00', 'UTC', \
             '2026-06-01T00:00:00.000Z', '2026-06-01T00:00:00.000Z')",
        )
        .execute(&pool)
        .await
        .unwrap();
        for (id, date, state, message) in [
            (1, "2026-06-10", "sent", Some(vec![1u8; 300])),
            (2, "2026-06-11", "retry", Some(vec![2u8; 300])),
            (3, "2026-06-12", "unknown", Some(vec![3u8; 300])),
            (4, "2026-06-13", "pending", None),
        ] {
            sqlx::query(
                "INSERT INTO deliveries (id, subscriber_id, digest_date, state, due_at, \
                 next_attempt_at, created_at, message_id, message) \
                 VALUES (?, 1, ?, ?, '2026-06-10T08:00:00.000Z', '2026-06-10T08:00:00.000Z', \
                 '2026-06-10T08:00:00.000Z', ?, ?)",
            )
            .bind(id)
            .bind(date)
            .bind(state)
            .bind(message.as_ref().map(|_| format!("<{id}@test>")))
            .bind(message)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;

        let store = Store::open(StoreOptions {
            path: path.clone(),
            busy_timeout: std::time::Duration::from_secs(10),
            max_connections: 2,
            synchronous: crate::domain::Synchronous::Normal,
        })
        .await
        .unwrap();
        let moved: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT delivery_id, sealed FROM delivery_messages ORDER BY 1")
                .fetch_all(store.pool())
                .await
                .unwrap();
        assert_eq!(moved, vec![(2, vec![2u8; 300]), (3, vec![3u8; 300])]);
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info('deliveries')")
                .fetch_all(store.pool())
                .await
                .unwrap();
        assert!(!columns.iter().any(|c| c == "message"), "{columns:?}");
        // Rows from before windows existed covered the three days before
        // their date.
        let windows: Vec<(String, String)> =
            sqlx::query_as("SELECT window_since, window_until FROM deliveries WHERE id = 1")
                .fetch_all(store.pool())
                .await
                .unwrap();
        assert_eq!(windows, vec![("2026-06-07".into(), "2026-06-10".into())]);
        let ids: Vec<Option<String>> =
            sqlx::query_scalar("SELECT message_id FROM deliveries ORDER BY id")
                .fetch_all(store.pool())
                .await
                .unwrap();
        assert_eq!(
            ids,
            vec![
                Some("<1@test>".into()),
                Some("<2@test>".into()),
                Some("<3@test>".into()),
                None
            ]
        );
    }
}
