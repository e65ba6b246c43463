//! Each active subscriber's next due instant, so that planning
//! reads only the subscribers who are due.
//!
//! `subscribers.next_due_at` holds the UTC instant at which a subscriber's
//! schedule must next be evaluated; the empty string means "at the next
//! tick" (new rows, and rows whose state or timing changed: a trigger in
//! the migration resets them, whichever code path wrote them). The
//! schedule itself is not here: [`Store::plan_due_page`] takes the
//! evaluation as a function, so the store stays SQL only.
//!
//! Two marks in `settings` say when every stored instant must be thrown
//! away: the time-zone database version the instants were computed with
//! (a new tzdata release can move a zone's offsets), and the `now` of the
//! last evaluation (a run for an earlier `now`, e.g. `digest --now` in the
//! past, needs the answers for that earlier instant).

use super::deliveries::{insert_planned, PlanItem};
use super::sent::last_covered_in;
use super::subscribers::{Subscriber, SubscriberRow, SUBSCRIBER_COLUMNS};
use super::{parse_ts, ts, value_rows, Result, Store, StoreError};
use crate::domain::{Frequency, SubscriberId, Timing, Window};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

const TZDB_KEY: &str = "schedule.tzdb_version";
const EVALUATED_AT_KEY: &str = "schedule.evaluated_at";

/// Stored when a frequency can never send: sorts after every real instant.
const NEVER: &str = "9999-12-31T23:59:59.999Z";

/// Rows reset per transaction by [`Store::reset_schedule`], so a reset
/// of a million subscribers never holds the write lock for long.
const RESET_BATCH: i64 = 10_000;

/// What the stored instants were computed with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScheduleMarks {
    pub tzdb_version: Option<String>,
    pub evaluated_at: Option<DateTime<Utc>>,
}

/// What evaluating one subscriber's timing at `now` decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evaluation {
    /// The digest to plan now: local date and due instant.
    pub due: Option<(NaiveDate, DateTime<Utc>)>,
    /// When to evaluate this subscriber next (after `now`); `None`: never.
    pub next_due: Option<DateTime<Utc>>,
}

/// One page of [`Store::plan_due_page`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DuePage {
    /// Subscribers evaluated (fewer than the limit: nobody else is due).
    pub evaluated: usize,
    /// Deliveries newly planned.
    pub planned: u64,
}

/// The evaluation [`Store::plan_due_page`] applies to each due row.
pub type Evaluate<'a> = &'a (dyn Fn(&Timing) -> Evaluation + Send + Sync);

/// The window of listing days [`Store::plan_due_page`] records with each
/// digest it plans, from the subscriber's timing, the digest's local date
/// and the last day their latest sent digest covered (`domain::window`
/// with the configured limits).
pub type WindowOf<'a> = &'a (dyn Fn(&Timing, NaiveDate, Option<NaiveDate>) -> Window + Send + Sync);

fn timing_of(id: i64, frequency: &str, send_time: &str, zone: &str) -> Result<Timing> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("subscriber {id}: bad {what}"));
    Ok(Timing {
        frequency: Frequency::decode(frequency).ok_or_else(|| corrupt("frequency"))?,
        send_time: NaiveTime::parse_from_str(send_time, "%H:%M")
            .map_err(|_| corrupt("send_time"))?,
        time_zone: zone.parse().map_err(|_| corrupt("time_zone"))?,
    })
}

/// The queries over the due set name their index. Without statistics
/// (no `ANALYZE`), SQLite prefers the equality on `state` and its
/// `subscribers_state` index over the range on `next_due_at`: it then
/// visits every active subscriber, and sorts them, for each page. Planning
/// was quadratic in the number of subscribers (about three of the six
/// minutes of a 1M-subscriber run) and an idle tick's "is anyone due?"
/// scanned every subscriber. `INDEXED BY` makes the statement fail to
/// prepare, loudly, if the index ever stops being usable for it.
///
/// Active subscribers due by `?`, earliest first, at most `?` of them.
const DUE_PAGE: &str = "SELECT id, frequency, send_time, time_zone \
     FROM subscribers INDEXED BY subscribers_next_due \
     WHERE state = 'active' AND next_due_at <= ? ORDER BY next_due_at LIMIT ?";

/// Whether anything is due at `?1`: a subscriber to evaluate, a delivery
/// to claim (with `?2`, an unknown outcome to resend), a lease to recover.
const WORK_DUE: &str = "SELECT EXISTS (SELECT 1 FROM subscribers INDEXED BY subscribers_next_due \
         WHERE state = 'active' AND next_due_at <= ?1) \
     OR EXISTS (SELECT 1 FROM deliveries WHERE state = 'pending' AND next_attempt_at <= ?1) \
     OR EXISTS (SELECT 1 FROM deliveries WHERE state = 'retry' AND next_attempt_at <= ?1) \
     OR (?2 AND EXISTS (SELECT 1 FROM deliveries WHERE state = 'unknown' \
         AND next_attempt_at <= ?1 AND resent = 0 AND message_id IS NOT NULL)) \
     OR EXISTS (SELECT 1 FROM deliveries WHERE state = 'sending' AND lease_until <= ?1)";

/// Up to `?` active subscribers not yet marked for evaluation, marked.
const RESET_PAGE: &str = "UPDATE subscribers SET next_due_at = '' WHERE id IN \
     (SELECT id FROM subscribers INDEXED BY subscribers_next_due \
      WHERE state = 'active' AND next_due_at > '' LIMIT ?)";

impl Store {
    pub async fn schedule_marks(&self) -> Result<ScheduleMarks> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT key, value FROM settings WHERE key IN (?, ?)")
                .bind(TZDB_KEY)
                .bind(EVALUATED_AT_KEY)
                .fetch_all(&self.pool)
                .await?;
        let mut marks = ScheduleMarks::default();
        for (k, v) in rows {
            if k == TZDB_KEY {
                marks.tzdb_version = Some(v);
            } else {
                marks.evaluated_at = Some(parse_ts(&v)?);
            }
        }
        Ok(marks)
    }

    /// Marks every active subscriber for evaluation at the next tick, in
    /// batches, then records the marks the coming evaluation will match.
    /// Returns how many rows were reset.
    pub async fn reset_schedule(&self, tzdb_version: &str, now: DateTime<Utc>) -> Result<u64> {
        let mut total = 0;
        loop {
            let mut tx = self.begin_write().await?;
            let n = sqlx::query(RESET_PAGE)
                .bind(RESET_BATCH)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                write_marks(&mut tx, tzdb_version, now).await?;
            }
            tx.commit().await?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }

    /// Evaluates up to `limit` active subscribers whose next due instant
    /// is at or before `now`, in one write transaction: plans the
    /// deliveries `evaluate` says are due (idempotently) and stores
    /// each row's next instant, which must be after `now` so the row
    /// leaves the due set. Call again until a page comes back short.
    pub async fn plan_due_page(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        tzdb_version: &str,
        evaluate: Evaluate<'_>,
        window_of: WindowOf<'_>,
    ) -> Result<DuePage> {
        let mut tx = self.begin_write().await?;
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(DUE_PAGE)
            .bind(ts(now))
            .bind(limit as i64)
            .fetch_all(&mut *tx)
            .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(DuePage::default());
        }
        let mut due = Vec::new();
        let mut next = Vec::with_capacity(rows.len());
        for (id, frequency, send_time, zone) in &rows {
            let timing = timing_of(*id, frequency, send_time, zone)?;
            let e = evaluate(&timing);
            if let Some((date, at)) = e.due {
                due.push((SubscriberId(*id), date, at, timing));
            }
            let next_due = match e.next_due {
                Some(t) if t > now => ts(t),
                Some(t) => {
                    return Err(StoreError::Corrupt(format!(
                        "subscriber {id}: next due instant {} is not after {}",
                        ts(t),
                        ts(now)
                    )))
                }
                None => NEVER.to_string(),
            };
            next.push((*id, next_due));
        }
        let ids: Vec<SubscriberId> = due.iter().map(|d| d.0).collect();
        let covered = last_covered_in(&mut tx, &ids).await?;
        let items: Vec<PlanItem> = due
            .iter()
            .map(|(id, date, at, timing)| PlanItem {
                subscriber: *id,
                digest_date: *date,
                due_at: *at,
                window: window_of(timing, *date, covered.get(id).copied()),
            })
            .collect();
        let planned = insert_planned(&mut tx, &items, now).await?;
        for chunk in super::shaped_chunks(&next, 500) {
            let sql = format!(
                "UPDATE subscribers SET next_due_at = v.column2 \
                 FROM (VALUES {}) AS v WHERE subscribers.id = v.column1",
                value_rows(chunk.len(), 2)
            );
            let mut q = sqlx::query(&sql);
            for (id, at) in chunk {
                q = q.bind(id).bind(at);
            }
            q.execute(&mut *tx).await?;
        }
        write_marks(&mut tx, tzdb_version, now).await?;
        tx.commit().await?;
        Ok(DuePage {
            evaluated: rows.len(),
            planned,
        })
    }

    /// Active subscribers whose next due instant is at or before `now`,
    /// with `id > after`, in id order: what a dry run looks at. Read only.
    pub async fn due_subscribers_page(
        &self,
        now: DateTime<Utc>,
        after: SubscriberId,
        limit: u32,
    ) -> Result<Vec<Subscriber>> {
        let rows: Vec<SubscriberRow> = sqlx::query_as(&format!(
            "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers \
             WHERE state = 'active' AND next_due_at <= ? AND id > ? ORDER BY id LIMIT ?"
        ))
        .bind(ts(now))
        .bind(after.0)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Subscriber::try_from).collect()
    }

    /// Whether a digest run at `now` has anything to do: a subscriber to
    /// evaluate, a delivery to claim, or a lease to recover. A handful of
    /// index probes, so an idle tick costs next to nothing.
    pub async fn digest_work_due(&self, now: DateTime<Utc>, resend_unknown: bool) -> Result<bool> {
        let due: bool = sqlx::query_scalar(WORK_DUE)
            .bind(ts(now))
            .bind(resend_unknown)
            .fetch_one(&self.pool)
            .await?;
        Ok(due)
    }

    /// The stored next due instant of a subscriber (`None`: to evaluate at
    /// the next tick, or never), for tests and reports.
    pub async fn next_due_of(&self, id: SubscriberId) -> Result<Option<DateTime<Utc>>> {
        let at: String = sqlx::query_scalar("SELECT next_due_at FROM subscribers WHERE id = ?")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        if at.is_empty() || at == NEVER {
            return Ok(None);
        }
        parse_ts(&at).map(Some)
    }
}

async fn write_marks(
    conn: &mut sqlx::SqliteConnection,
    tzdb_version: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO settings (key, value) VALUES (?, ?), (?, ?) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(TZDB_KEY)
    .bind(tzdb_version)
    .bind(EVALUATED_AT_KEY)
    .bind(ts(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::test_support::temp_store;
    use chrono::{Duration, TimeZone};

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 4, h, 0, 0).unwrap()
    }

    async fn add(store: &Store, email: &str) -> SubscriberId {
        crate::store::test_support::active_subscriber(store, at(0), email).await
    }

    /// Each statement over the due set walks `subscribers_next_due`, never
    /// every active subscriber (the `state` index) and never a sort.
    #[tokio::test]
    async fn due_set_queries_walk_the_next_due_index() {
        let (store, _dir) = temp_store().await;
        for q in [DUE_PAGE, RESET_PAGE, WORK_DUE] {
            let plan: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(&format!("EXPLAIN QUERY PLAN {q}"))
                    .bind(ts(at(8)))
                    .bind(10)
                    .fetch_all(store.pool())
                    .await
                    .unwrap();
            let steps: Vec<&str> = plan.iter().map(|r| r.3.as_str()).collect();
            let on_subscribers: Vec<&&str> = steps
                .iter()
                .filter(|s| s.contains(" subscribers "))
                .collect();
            assert!(
                !on_subscribers.is_empty()
                    && on_subscribers
                        .iter()
                        .all(|s| s.contains("subscribers_next_due") || s.contains("PRIMARY KEY")),
                "{q}: {steps:?}"
            );
            assert!(
                !steps.iter().any(|s| s.contains("TEMP B-TREE")),
                "{q}: {steps:?}"
            );
        }
    }

    /// Due today at 08:00 when evaluated after it; next: 08:00 tomorrow.
    fn daily_eight(now: DateTime<Utc>) -> impl Fn(&Timing) -> Evaluation + Send + Sync {
        move |_t: &Timing| Evaluation {
            due: (now >= at(8)).then(|| (at(8).date_naive(), at(8))),
            next_due: Some(at(8) + Duration::days(if now >= at(8) { 1 } else { 0 })),
        }
    }

    /// A first digest's window: the three days before its date.
    fn first_windows(_t: &Timing, date: NaiveDate, _last: Option<NaiveDate>) -> Window {
        Window {
            since: date - Duration::days(3),
            until: date,
        }
    }

    #[tokio::test]
    async fn a_tick_evaluates_only_the_subscribers_who_are_due() {
        let (store, _dir) = temp_store().await;
        let a = add(&store, "a@example.org").await;
        let b = add(&store, "b@example.org").await;
        assert_eq!(
            store.next_due_of(a).await.unwrap(),
            None,
            "new: evaluate next tick"
        );
        assert!(store.digest_work_due(at(1), true).await.unwrap());
        // 01:00: both evaluated, nothing due yet, both next due at 08:00.
        let p = store
            .plan_due_page(at(1), 100, "2025a", &daily_eight(at(1)), &first_windows)
            .await
            .unwrap();
        assert_eq!((p.evaluated, p.planned), (2, 0));
        assert_eq!(store.next_due_of(b).await.unwrap(), Some(at(8)));
        // 02:00: nobody due, nothing read, no work at all.
        let p = store
            .plan_due_page(at(2), 100, "2025a", &daily_eight(at(2)), &first_windows)
            .await
            .unwrap();
        assert_eq!(p, DuePage::default());
        assert!(!store.digest_work_due(at(2), true).await.unwrap());
        // 08:00: both planned, and tomorrow is next.
        let p = store
            .plan_due_page(at(8), 100, "2025a", &daily_eight(at(8)), &first_windows)
            .await
            .unwrap();
        assert_eq!((p.evaluated, p.planned), (2, 2));
        assert_eq!(
            store.next_due_of(a).await.unwrap(),
            Some(at(8) + Duration::days(1))
        );
        let marks = store.schedule_marks().await.unwrap();
        assert_eq!(marks.tzdb_version.as_deref(), Some("2025a"));
        assert_eq!(marks.evaluated_at, Some(at(8)));
        // A page limit smaller than the due set: the rest come next page.
        store.reset_schedule("2025a", at(9)).await.unwrap();
        let p = store
            .plan_due_page(at(9), 1, "2025a", &daily_eight(at(9)), &first_windows)
            .await
            .unwrap();
        assert_eq!((p.evaluated, p.planned), (1, 0), "planning is idempotent");
        let p = store
            .plan_due_page(at(9), 1, "2025a", &daily_eight(at(9)), &first_windows)
            .await
            .unwrap();
        assert_eq!(p.evaluated, 1);
        let p = store
            .plan_due_page(at(9), 1, "2025a", &daily_eight(at(9)), &first_windows)
            .await
            .unwrap();
        assert_eq!(p.evaluated, 0);
    }

    #[tokio::test]
    async fn a_change_of_timing_or_state_puts_a_subscriber_back_for_evaluation() {
        let (store, _dir) = temp_store().await;
        let id = add(&store, "a@example.org").await;
        let settle = |store: Store| async move {
            store
                .plan_due_page(at(1), 100, "x", &daily_eight(at(1)), &first_windows)
                .await
                .unwrap();
        };
        settle(store.clone()).await;
        assert_eq!(store.next_due_of(id).await.unwrap(), Some(at(8)));

        // Topics only: the schedule is unaffected.
        let mut prefs = store.subscriber(id).await.unwrap().preferences;
        prefs.topics = vec!["agents".into()];
        store.update_preferences(id, &prefs, at(1)).await.unwrap();
        assert_eq!(store.next_due_of(id).await.unwrap(), Some(at(8)));

        // Send time, zone, frequency: evaluate again.
        for change in 0..3 {
            match change {
                0 => prefs.send_time = NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
                1 => prefs.time_zone = chrono_tz::Europe::Berlin,
                _ => prefs.frequency = Frequency::Weekdays,
            }
            store.update_preferences(id, &prefs, at(1)).await.unwrap();
            assert_eq!(
                store.next_due_of(id).await.unwrap(),
                None,
                "change {change}"
            );
            settle(store.clone()).await;
        }
        // Pause takes the row out of the due set; resume puts it back.
        store.set_paused(id, true, at(1)).await.unwrap();
        assert!(!store.digest_work_due(at(23), true).await.unwrap());
        store.set_paused(id, false, at(1)).await.unwrap();
        assert_eq!(store.next_due_of(id).await.unwrap(), None);
        assert!(store.digest_work_due(at(1), true).await.unwrap());
    }

    #[tokio::test]
    async fn a_next_due_instant_that_is_not_after_now_is_refused() {
        let (store, _dir) = temp_store().await;
        add(&store, "a@example.org").await;
        let stuck = |_: &Timing| Evaluation {
            due: None,
            next_due: Some(at(1)),
        };
        let err = store
            .plan_due_page(at(1), 100, "x", &stuck, &first_windows)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("is not after"), "{err}");
    }
}
