//! Retention: old delivery rows, never-repeat rows of papers
//! that can no longer be candidates, the fetch log, digest runs and upvote
//! observations are deleted in small batches.
//!
//! Each batch is its own short write transaction, and the pruner yields
//! between batches, so the digest engine's writes (which queue on the same
//! write turn, first come first served) wait at most one batch.
//!
//! What stays, whatever the ages:
//! - deliveries that are not final (pending, sending, retry, unknown) and
//!   each subscriber's latest final delivery;
//! - never-repeat rows (`sent_papers`) of papers still listed within the
//!   never-repeat window, i.e. papers that can still be candidates;
//! - each source's latest fetch-log row (`/healthz` reports it), the
//!   latest digest run, and each paper's latest upvote observation.

use super::{ts, value_rows, Result, Store};
pub use crate::domain::RetentionPolicy;
use chrono::{DateTime, Duration, Utc};

/// Where the never-repeat pass stopped: the id of the last delivery whose
/// papers it pruned. Deliveries are visited once, in id order.
const SENT_PAPERS_CURSOR: &str = "retention.sent_papers_after_delivery";

/// Rows deleted by one [`Store::prune`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    pub deliveries: u64,
    pub sent_papers: u64,
    pub fetch_log: u64,
    pub digest_runs: u64,
    pub upvote_observations: u64,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.deliveries
            + self.sent_papers
            + self.fetch_log
            + self.digest_runs
            + self.upvote_observations
    }
}

impl Store {
    /// Deletes what `policy` no longer keeps as of `now`, batch by batch.
    /// Never-repeat rows go first: they are found through the delivery
    /// rows, which must still be there.
    pub async fn prune(&self, policy: &RetentionPolicy, now: DateTime<Utc>) -> Result<Pruned> {
        let mut pruned = Pruned::default();
        let batch = policy.batch.max(1);
        if let Some(age) = policy.never_repeat {
            while let Some(n) = self.prune_sent_papers_batch(now - age, batch).await? {
                pruned.sent_papers += n;
                tokio::task::yield_now().await;
            }
        }
        if let Some(age) = policy.deliveries {
            let mut after = 0;
            while let Some((n, last)) = self.prune_deliveries_batch(now - age, after, batch).await?
            {
                pruned.deliveries += n;
                after = last;
                tokio::task::yield_now().await;
            }
            pruned.digest_runs = self.prune_digest_runs(now - age, batch).await?;
        }
        if let Some(age) = policy.fetch_log {
            pruned.fetch_log = self.prune_fetch_log(now - age, batch).await?;
        }
        if let Some(age) = policy.upvote_observations {
            let mut after = (String::new(), String::new());
            while let Some((n, last)) = self.prune_upvotes_batch(now - age, &after, batch).await? {
                pruned.upvote_observations += n;
                after = last;
                tokio::task::yield_now().await;
            }
        }
        Ok(pruned)
    }

    /// One batch of the never-repeat pass: for the next deliveries (by id)
    /// created a day before `cutoff` or earlier, deletes their
    /// `sent_papers` rows unless the paper was listed on or after
    /// `cutoff`'s date. `None` when no delivery
    /// that old is left to visit.
    async fn prune_sent_papers_batch(
        &self,
        cutoff: DateTime<Utc>,
        batch: u32,
    ) -> Result<Option<u64>> {
        let mut tx = self.begin_write().await?;
        let after: i64 = sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
            .bind(SENT_PAPERS_CURSOR)
            .fetch_optional(&mut *tx)
            .await?
            .and_then(|v: String| v.parse().ok())
            .unwrap_or(0);
        // By id (the primary key) and cut in Rust: a `created_at` filter
        // in SQL would scan every newer row to find nothing. A delivery is
        // visited once, so only when a day more than the window has
        // passed: then its papers, listed on or before the day it was
        // planned, are listed before `cutoff`'s date unless listed again.
        let cutoff_ts = ts(cutoff - Duration::days(1));
        let rows: Vec<(i64, i64, Option<String>, String)> = sqlx::query_as(
            "SELECT id, subscriber_id, papers, created_at FROM deliveries \
             WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(batch as i64)
        .fetch_all(&mut *tx)
        .await?;
        let old = rows.iter().take_while(|r| r.3 < cutoff_ts).count();
        let rows = &rows[..old];
        let Some(last) = rows.last().map(|r| r.0) else {
            tx.commit().await?;
            return Ok(None);
        };
        let pairs: Vec<(i64, String)> = rows
            .iter()
            .filter_map(|(_, sub, papers, _)| Some((*sub, papers.as_deref()?)))
            .flat_map(|(sub, papers)| {
                // A damaged list only means its rows stay.
                let ids: Vec<String> = serde_json::from_str(papers).unwrap_or_default();
                ids.into_iter().map(move |p| (sub, p))
            })
            .collect();
        let listed_since = cutoff.date_naive().to_string();
        let mut deleted = 0;
        for chunk in super::shaped_chunks(&pairs, 400) {
            let sql = format!(
                "DELETE FROM sent_papers WHERE (subscriber_id, paper_id) IN \
                 (SELECT v.column1, v.column2 FROM (VALUES {})  AS v) \
                 AND NOT EXISTS (SELECT 1 FROM papers p \
                                 WHERE p.id = sent_papers.paper_id AND p.listed_on >= ?)",
                value_rows(chunk.len(), 2)
            );
            let mut q = sqlx::query(&sql);
            for (sub, paper) in chunk {
                q = q.bind(sub).bind(paper);
            }
            deleted += q
                .bind(&listed_since)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES (?, ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(SENT_PAPERS_CURSOR)
        .bind(last.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(deleted))
    }

    /// One batch of the delivery pass over ids after `after`: deletes the
    /// final deliveries created before `cutoff` that are not their
    /// subscriber's latest final one. Returns (deleted, last id looked at), or
    /// `None` once the batch reaches deliveries newer than `cutoff` (ids
    /// grow with creation time, so nothing older follows).
    async fn prune_deliveries_batch(
        &self,
        cutoff: DateTime<Utc>,
        after: i64,
        batch: u32,
    ) -> Result<Option<(u64, i64)>> {
        let mut tx = self.begin_write().await?;
        let (last, first_created): (Option<i64>, Option<String>) = sqlx::query_as(
            "SELECT max(id), min(created_at) FROM \
             (SELECT id, created_at FROM deliveries WHERE id > ? ORDER BY id LIMIT ?)",
        )
        .bind(after)
        .bind(batch as i64)
        .fetch_one(&mut *tx)
        .await?;
        let cutoff = ts(cutoff);
        let (Some(last), Some(first_created)) = (last, first_created) else {
            tx.commit().await?;
            return Ok(None);
        };
        if first_created >= cutoff {
            tx.commit().await?;
            return Ok(None);
        }
        let deleted = sqlx::query(
            "DELETE FROM deliveries WHERE id > ? AND id <= ? AND created_at < ? \
             AND state IN ('sent', 'failed', 'skipped') \
             AND EXISTS (SELECT 1 FROM deliveries n WHERE n.subscriber_id = deliveries.subscriber_id \
                         AND n.digest_date > deliveries.digest_date \
                         AND n.state IN ('sent', 'failed', 'skipped'))",
        )
        .bind(after)
        .bind(last)
        .bind(&cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(Some((deleted, last)))
    }

    /// Finished digest runs started before `cutoff`, except the latest.
    async fn prune_digest_runs(&self, cutoff: DateTime<Utc>, batch: u32) -> Result<u64> {
        self.delete_in_batches(
            "DELETE FROM digest_runs WHERE id IN (SELECT id FROM digest_runs \
             WHERE started_at < ?1 AND state <> 'running' \
               AND id < (SELECT max(id) FROM digest_runs) ORDER BY id LIMIT ?2)",
            cutoff,
            batch,
        )
        .await
    }

    /// Fetch-log rows finished before `cutoff`, except each source's latest.
    async fn prune_fetch_log(&self, cutoff: DateTime<Utc>, batch: u32) -> Result<u64> {
        self.delete_in_batches(
            "DELETE FROM fetch_log WHERE id IN (SELECT id FROM fetch_log \
             WHERE finished_at < ?1 \
               AND id NOT IN (SELECT max(id) FROM fetch_log GROUP BY source) \
             ORDER BY id LIMIT ?2)",
            cutoff,
            batch,
        )
        .await
    }

    /// Runs a `DELETE … LIMIT ?2` statement (cutoff as `?1`) until it
    /// deletes nothing, one transaction per batch.
    async fn delete_in_batches(&self, sql: &str, cutoff: DateTime<Utc>, batch: u32) -> Result<u64> {
        let mut total = 0;
        loop {
            let mut tx = self.begin_write().await?;
            let n = sqlx::query(sql)
                .bind(ts(cutoff))
                .bind(batch as i64)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }

    /// One batch of the upvote pass over the observations after `after`
    /// (key order): deletes those before `cutoff` that have a newer
    /// observation of the same paper. Returns (deleted, last key looked
    /// at), or `None` at the end of the table.
    async fn prune_upvotes_batch(
        &self,
        cutoff: DateTime<Utc>,
        after: &(String, String),
        batch: u32,
    ) -> Result<Option<(u64, (String, String))>> {
        let mut tx = self.begin_write().await?;
        let last: Option<(String, String)> = sqlx::query_as(
            "SELECT paper_id, observed_at FROM \
             (SELECT paper_id, observed_at FROM upvote_observations \
              WHERE (paper_id, observed_at) > (?, ?) ORDER BY paper_id, observed_at LIMIT ?) \
             ORDER BY paper_id DESC, observed_at DESC LIMIT 1",
        )
        .bind(&after.0)
        .bind(&after.1)
        .bind(batch as i64)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(last) = last else {
            tx.commit().await?;
            return Ok(None);
        };
        let deleted = sqlx::query(
            "DELETE FROM upvote_observations \
             WHERE (paper_id, observed_at) > (?, ?) AND (paper_id, observed_at) <= (?, ?) \
               AND observed_at < ? \
               AND EXISTS (SELECT 1 FROM upvote_observations n \
                           WHERE n.paper_id = upvote_observations.paper_id \
                             AND n.observed_at > upvote_observations.observed_at)",
        )
        .bind(&after.0)
        .bind(&after.1)
        .bind(&last.0)
        .bind(&last.1)
        .bind(ts(cutoff))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(Some((deleted, last)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SubscriberId;
    use crate::store::deliveries::{Prepared, SentDelivery};

    use crate::store::test_support::temp_store;
    use chrono::{NaiveDate, TimeZone};

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 10, 1, 8, 0, 0).unwrap() + Duration::days(d as i64)
    }

    async fn add(store: &Store, email: &str) -> SubscriberId {
        crate::store::test_support::active_subscriber(store, day(0), email).await
    }

    /// A paper listed on `listed`, as its source stores it.
    async fn paper(store: &Store, id: &str, listed: DateTime<Utc>) {
        sqlx::query(
            "INSERT INTO papers (id, title, abstract, listed_on, text_source, first_seen_at, \
             updated_at) VALUES (?, 't', 'a', ?, 'huggingface', ?, ?)",
        )
        .bind(id)
        .bind(listed.date_naive().to_string())
        .bind(ts(listed))
        .bind(ts(listed))
        .execute(store.pool())
        .await
        .unwrap();
    }

    /// A delivery to plan for `date`, covering the three days before it.
    fn planned(
        subscriber: SubscriberId,
        date: NaiveDate,
        due_at: DateTime<Utc>,
    ) -> crate::store::deliveries::PlanItem {
        crate::store::deliveries::PlanItem {
            subscriber,
            digest_date: date,
            due_at,
            window: crate::domain::Window {
                since: date - Duration::days(3),
                until: date,
            },
        }
    }

    /// Sends `papers` to each subscriber on `at`'s date through the real
    /// delivery statements (plan, claim, prepare, record).
    async fn send_day(store: &Store, subs: &[SubscriberId], at: DateTime<Utc>, papers: &[&str]) {
        let date = at.date_naive();
        let items: Vec<_> = subs.iter().map(|s| planned(*s, date, at)).collect();
        store.plan_deliveries(&items, at).await.unwrap();
        let claims = store
            .claim_deliveries(at, at + Duration::minutes(5), 100, false)
            .await
            .unwrap();
        let papers: Vec<String> = papers.iter().map(|p| p.to_string()).collect();
        let prepared: Vec<Prepared> = claims
            .iter()
            .map(|c| Prepared {
                id: c.id,
                message_id: format!("m{}", c.id),
                encrypted: vec![1, 2, 3],
                papers: papers.clone(),
            })
            .collect();
        store.prepare_deliveries(&prepared).await.unwrap();
        let sent: Vec<SentDelivery> = claims
            .iter()
            .map(|c| SentDelivery {
                id: c.id,
                subscriber: c.subscriber_id,
                digest_date: c.digest_date,
                papers: papers.clone(),
            })
            .collect();
        store.deliveries_sent(&sent, at).await.unwrap();
    }

    fn policy() -> RetentionPolicy {
        RetentionPolicy {
            deliveries: Some(Duration::days(30)),
            never_repeat: Some(Duration::days(14)),
            fetch_log: Some(Duration::days(30)),
            upvote_observations: Some(Duration::days(14)),
            // Tiny batches, so every pass crosses batch boundaries.
            batch: 2,
        }
    }

    async fn count(store: &Store, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(store.pool())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn old_deliveries_go_but_each_subscribers_latest_and_unfinished_ones_stay() {
        let (store, _dir) = temp_store().await;
        let a = add(&store, "a@example.org").await;
        let b = add(&store, "b@example.org").await;
        // a: daily for 40 days; b: only on day 0 (then stopped).
        send_day(&store, &[a, b], day(0), &[]).await;
        for d in 1..40 {
            send_day(&store, &[a], day(d), &[]).await;
        }
        // An old delivery that never finished stays.
        store
            .plan_deliveries(
                &[planned(
                    b,
                    NaiveDate::from_ymd_opt(2026, 10, 2).unwrap(),
                    day(1),
                )],
                day(1),
            )
            .await
            .unwrap();
        let p = store.prune(&policy(), day(40)).await.unwrap();
        // a's deliveries of days 0..=9 are older than 30 days.
        assert_eq!(p.deliveries, 10);
        let kept = store.deliveries_for(b).await.unwrap();
        assert_eq!(kept.len(), 2, "b's latest and its pending one: {kept:?}");
        assert_eq!(store.deliveries_for(a).await.unwrap().len(), 30);
        assert_eq!(
            store.prune(&policy(), day(40)).await.unwrap(),
            Pruned::default()
        );
    }

    #[tokio::test]
    async fn never_repeat_rows_stay_only_for_papers_that_can_still_be_candidates() {
        let (store, _dir) = temp_store().await;
        let a = add(&store, "a@example.org").await;
        paper(&store, "2609.00001", day(0)).await;
        paper(&store, "2609.00002", day(0)).await;
        send_day(&store, &[a], day(0), &["2609.00001", "2609.00002"]).await;
        send_day(&store, &[a], day(10), &[]).await;
        // Paper 2 was listed again recently: it can be a candidate again.
        sqlx::query("UPDATE papers SET listed_on = ? WHERE id = '2609.00002'")
            .bind(day(19).date_naive().to_string())
            .execute(store.pool())
            .await
            .unwrap();
        let p = store.prune(&policy(), day(20)).await.unwrap();
        assert_eq!((p.sent_papers, p.deliveries), (1, 0));
        let left = store.sent_paper_ids(a).await.unwrap();
        assert_eq!(
            left.into_iter().collect::<Vec<_>>(),
            vec!["2609.00002".to_string()]
        );
        // Each delivery is visited once: nothing more to do.
        assert_eq!(
            store.prune(&policy(), day(20)).await.unwrap(),
            Pruned::default()
        );
    }

    #[tokio::test]
    async fn old_fetch_log_rows_and_upvote_observations_go_but_the_latest_stay() {
        let (store, _dir) = temp_store().await;
        paper(&store, "2609.00001", day(0)).await;
        paper(&store, "2609.00002", day(0)).await;
        for d in 0..5 {
            for (source, ok) in [("huggingface", 1), ("arxiv_feed", 0)] {
                sqlx::query(
                    "INSERT INTO fetch_log (source, started_at, finished_at, ok) VALUES (?, ?, ?, ?)",
                )
                .bind(source)
                .bind(ts(day(d)))
                .bind(ts(day(d)))
                .bind(ok)
                .execute(store.pool())
                .await
                .unwrap();
            }
            for id in ["2609.00001", "2609.00002"] {
                sqlx::query(
                    "INSERT INTO upvote_observations (paper_id, observed_at, upvotes) VALUES (?, ?, ?)",
                )
                .bind(id)
                .bind(ts(day(d)))
                .bind(d as i64)
                .execute(store.pool())
                .await
                .unwrap();
            }
        }
        // Paper 1 is still observed recently; paper 2's last is day 4.
        sqlx::query("INSERT INTO upvote_observations VALUES ('2609.00001', ?, 9)")
            .bind(ts(day(60)))
            .execute(store.pool())
            .await
            .unwrap();
        let p = store.prune(&policy(), day(61)).await.unwrap();
        assert_eq!((p.fetch_log, p.upvote_observations), (8, 9));
        assert_eq!(count(&store, "SELECT count(*) FROM fetch_log").await, 2);
        let latest = store.latest_fetches().await.unwrap();
        assert_eq!(latest.len(), 2, "each source's latest fetch stays");
        let one = store
            .upvote_history(&crate::domain::PaperId::parse_arxiv("2609.00001").unwrap().0)
            .await
            .unwrap();
        let two = store
            .upvote_history(&crate::domain::PaperId::parse_arxiv("2609.00002").unwrap().0)
            .await
            .unwrap();
        assert_eq!((one.len(), two.len()), (1, 1));
        assert_eq!(two[0].upvotes, 4);
    }
}
