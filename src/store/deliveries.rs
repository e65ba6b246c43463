//! Digest deliveries and the papers they carried (digest runs are in
//! `runs.rs`).
//!
//! Every state change is its own short `BEGIN IMMEDIATE` transaction; the
//! digest engine commits a claim before any SMTP traffic and the outcome
//! right after the reply, so no transaction spans the network.

use super::subscribers::Subscriber;
use super::{parse_ts, ts, value_rows, Result, Store};
use crate::domain::{SubscriberId, Window};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::SqliteConnection;
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

/// The state of a delivery row. The table holds [`DeliveryState::as_str`];
/// the state machine is in the statements below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeliveryState {
    /// Planned, waiting to be due.
    Pending,
    /// Leased to a run.
    Sending,
    Sent,
    /// Failed transiently; tried again at `next_attempt_at`.
    Retry,
    Failed,
    /// Not sent on purpose (unsubscribed, suppressed, nothing to send).
    Skipped,
    /// Interrupted mid-send: possibly sent.
    Unknown,
}

impl DeliveryState {
    /// Every state, in the order reports list them.
    pub const ALL: [DeliveryState; 7] = [
        DeliveryState::Pending,
        DeliveryState::Sending,
        DeliveryState::Sent,
        DeliveryState::Retry,
        DeliveryState::Failed,
        DeliveryState::Skipped,
        DeliveryState::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Sending => "sending",
            DeliveryState::Sent => "sent",
            DeliveryState::Retry => "retry",
            DeliveryState::Failed => "failed",
            DeliveryState::Skipped => "skipped",
            DeliveryState::Unknown => "unknown",
        }
    }

    fn parse(s: &str) -> Result<DeliveryState> {
        DeliveryState::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| super::StoreError::Corrupt(format!("unknown delivery state {s:?}")))
    }
}

impl std::fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
    fn state(self) -> DeliveryState {
        match self {
            AttemptEnd::Retry { .. } => DeliveryState::Retry,
            AttemptEnd::Failed => DeliveryState::Failed,
            AttemptEnd::Skipped => DeliveryState::Skipped,
            AttemptEnd::Unknown { .. } => DeliveryState::Unknown,
        }
    }

    fn next(self) -> Option<DateTime<Utc>> {
        match self {
            AttemptEnd::Retry { next } | AttemptEnd::Unknown { next } => Some(next),
            AttemptEnd::Failed | AttemptEnd::Skipped => None,
        }
    }
}

/// One delivery as [`Store::deliveries_for`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub digest_date: NaiveDate,
    pub state: DeliveryState,
    pub attempts: i64,
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

/// A row about to be claimed.
struct DueRow {
    id: i64,
    state: DeliveryState,
    next_attempt_at: String,
}

/// A claimed row as the lease statement returns it.
#[derive(sqlx::FromRow)]
struct ClaimRow {
    id: i64,
    subscriber_id: i64,
    digest_date: String,
    due_at: String,
    attempts: i64,
    message_id: Option<String>,
    papers: Option<String>,
    window_since: Option<String>,
    window_until: Option<String>,
}

impl ClaimRow {
    /// The claim, with the stored bytes of an earlier attempt, if any.
    fn into_claim(self, message: Option<Vec<u8>>, unknown_resend: bool) -> Result<ClaimedDelivery> {
        let id = self.id;
        let mut message_id = self.message_id;
        if message_id.is_some() && message.is_none() {
            // Only a damaged database gets here. Failing the claim would
            // fail every run after it; instead the digest is rendered again
            // (with the same Message-ID).
            tracing::warn!(
                delivery = id,
                "prepared delivery has no stored bytes; rendering it again"
            );
            message_id = None;
        }
        let papers = self
            .papers
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| super::StoreError::Corrupt(format!("delivery {id} papers: {e}")))?;
        Ok(ClaimedDelivery {
            id,
            subscriber_id: SubscriberId(self.subscriber_id),
            digest_date: parse_date(&self.digest_date)?,
            due_at: parse_ts(&self.due_at)?,
            attempts: self.attempts,
            message,
            message_id,
            papers: papers.unwrap_or_default(),
            unknown_resend,
            window: read_window(self.window_since.as_deref(), self.window_until.as_deref())?,
        })
    }
}

/// Due rows to claim, at most `limit`: unknown outcomes first (their
/// single resend should not wait behind a whole day's queue), then by due
/// time.
///
/// One index range per state (deliveries_due is (state,
/// next_attempt_at), rowid order within a key), each already in order and
/// at most `limit` long, merged here. A single query over all three
/// states would have to sort every due row on each claim, which grows
/// with the day's whole queue.
async fn due_rows(
    conn: &mut SqliteConnection,
    now: DateTime<Utc>,
    limit: u32,
    resend_unknown: bool,
) -> Result<Vec<DueRow>> {
    let mut due: Vec<DueRow> = Vec::new();
    for state in [
        DeliveryState::Unknown,
        DeliveryState::Retry,
        DeliveryState::Pending,
    ] {
        if state == DeliveryState::Unknown && !resend_unknown {
            continue;
        }
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT id, state, next_attempt_at FROM deliveries \
                 WHERE state = ? AND next_attempt_at <= ? \
                   AND (state <> 'unknown' OR (resent = 0 AND message_id IS NOT NULL)) \
                 ORDER BY next_attempt_at, id LIMIT ?",
        )
        .bind(state.as_str())
        .bind(ts(now))
        .bind(limit as i64)
        .fetch_all(&mut *conn)
        .await?;
        due.extend(rows.into_iter().map(|(id, _, next_attempt_at)| DueRow {
            id,
            state,
            next_attempt_at,
        }));
    }
    let unknown_first = due
        .iter()
        .take_while(|d| d.state == DeliveryState::Unknown)
        .count();
    due[unknown_first..]
        .sort_by(|a, b| (&a.next_attempt_at, a.id).cmp(&(&b.next_attempt_at, b.id)));
    due.truncate(limit as usize);
    Ok(due)
}

/// Leases the rows to the caller: `sending` until `lease_until`, one more
/// attempt, the resend of an unknown outcome used.
async fn lease(
    conn: &mut SqliteConnection,
    due: &[DueRow],
    lease_until: DateTime<Utc>,
) -> Result<Vec<ClaimRow>> {
    // SET expressions see the row before the update: `state` is the old
    // one.
    Ok(sqlx::query_as(
        "UPDATE deliveries SET state = 'sending', lease_until = ?, attempts = attempts + 1, \
         send_started_at = NULL, resent = resent OR state = 'unknown' WHERE id IN (SELECT value FROM json_each(?)) \
         RETURNING id, subscriber_id, digest_date, due_at, attempts, message_id, papers, \
         window_since, window_until",
    )
    .bind(ts(lease_until))
    .bind(super::json_ids(due.iter().map(|d| d.id)))
    .fetch_all(&mut *conn)
    .await?)
}

/// The stored bytes of the claimed rows that have them. Only retries and
/// resends do; a first attempt's are stored by `prepare_deliveries` after
/// rendering.
async fn stored_messages(
    conn: &mut SqliteConnection,
    rows: &[ClaimRow],
) -> Result<HashMap<i64, Vec<u8>>> {
    let prepared: Vec<i64> = rows
        .iter()
        .filter(|r| r.message_id.is_some())
        .map(|r| r.id)
        .collect();
    if prepared.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT delivery_id, sealed FROM delivery_messages \
         WHERE delivery_id IN (SELECT value FROM json_each(?))",
    )
    .bind(super::json_ids(prepared.into_iter()))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().collect())
}

pub(super) fn parse_date(s: &str) -> Result<NaiveDate> {
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

impl Store {
    /// Inserts one pending delivery per item, ignoring those whose
    /// (subscriber, local date) exists (planning is idempotent; an
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
    /// message; the others' outcome is unknown. Returns (back to
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

    /// Claims up to `limit` due deliveries, leasing them until `lease_until`.
    /// With `resend_unknown`, unknown rows not yet resent are claimed
    /// too, for their single byte-identical resend; they come first.
    pub async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        resend_unknown: bool,
    ) -> Result<Vec<ClaimedDelivery>> {
        let mut tx = self.begin_write().await?;
        let due = due_rows(&mut tx, now, limit, resend_unknown).await?;
        if due.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let rows = lease(&mut tx, &due, lease_until).await?;
        let mut messages = stored_messages(&mut tx, &rows).await?;
        tx.commit().await?;
        let unknown: HashSet<i64> = due
            .iter()
            .filter(|d| d.state == DeliveryState::Unknown)
            .map(|d| d.id)
            .collect();
        let mut out = rows
            .into_iter()
            .map(|row| {
                let message = messages.remove(&row.id);
                let resend = unknown.contains(&row.id);
                row.into_claim(message, resend)
            })
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
    /// crash leaves that outcome unknown. One transaction for all.
    pub async fn deliveries_send_started(&self, ids: &[i64], now: DateTime<Utc>) -> Result<()> {
        self.record_dispatch(ids, &[], now).await
    }

    /// The relay accepted these messages: records them and the papers
    /// they carried, so ranking never repeats them. One transaction
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
        .bind(end.state().as_str())
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
    /// recipient domain's pace): `pending` again (or `unknown` with
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

    /// Delivery counts by state, for /metrics; states without rows are
    /// left out.
    pub async fn delivery_counts(&self) -> Result<Vec<(DeliveryState, i64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT state, count(*) FROM deliveries GROUP BY state ORDER BY state")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(s, n)| Ok((DeliveryState::parse(&s)?, n)))
            .collect()
    }

    /// Every delivery of a subscriber, oldest digest first, for tests and
    /// reports.
    pub async fn deliveries_for(&self, id: SubscriberId) -> Result<Vec<DeliveryRecord>> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT digest_date, state, attempts FROM deliveries WHERE subscriber_id = ? ORDER BY digest_date",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(d, s, attempts)| {
                Ok(DeliveryRecord {
                    digest_date: parse_date(&d)?,
                    state: DeliveryState::parse(&s)?,
                    attempts,
                })
            })
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
mod tests;
