//! Asynchronous delivery feedback: bounce and complaint events and the
//! suppressions and unsubscribes they cause.

use super::suppressions::put;
use super::{ts, Result, Store};
use crate::domain::SuppressionReason::{self, Complaint, HardBounce, SoftBounceLimit};
use crate::domain::{hash_canonical, SubscriberId};
use crate::domain::{BounceAction, BounceKind, ReportSource, SoftBouncePolicy};
use chrono::{DateTime, Duration, NaiveDate, Utc};

/// [`Store::delivery_with_message_id`]: a lookup by the deliveries' unique
/// key, the Message-ID only compared.
const DELIVERY_BY_KEY: &str = "SELECT id FROM deliveries \
     WHERE subscriber_id = ? AND digest_date = ? AND message_id = ?";

/// One event to record, already matched to its subscriber.
#[derive(Debug, Clone)]
pub struct NewBounceEvent<'a> {
    pub subscriber: SubscriberId,
    pub delivery: Option<i64>,
    pub kind: BounceKind,
    pub source: ReportSource,
    pub event_key: &'a str,
    pub status: Option<&'a str>,
    pub detail: &'a str,
}

impl Store {
    /// The subscriber a delivery was for, if the delivery still exists.
    pub async fn delivery_subscriber(&self, delivery_id: i64) -> Result<Option<SubscriberId>> {
        let id: Option<i64> =
            sqlx::query_scalar("SELECT subscriber_id FROM deliveries WHERE id = ?")
                .bind(delivery_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(id.map(SubscriberId))
    }

    /// The delivery of `subscriber`'s digest of `digest_date`, if it
    /// carried `message_id`: looked up by its key (the `(subscriber_id,
    /// digest_date)` unique index), never by scanning for the Message-ID.
    pub async fn delivery_with_message_id(
        &self,
        subscriber: SubscriberId,
        digest_date: NaiveDate,
        message_id: &str,
    ) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(DELIVERY_BY_KEY)
            .bind(subscriber.0)
            .bind(digest_date.to_string())
            .bind(message_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Records one event and applies the policy in the same transaction:
    /// a hard bounce suppresses the address (`hard_bounce`, which replaces
    /// a soft-bounce limit); a soft bounce is counted and suppresses once
    /// `policy.limit` soft bounces arrived within `policy.window`
    /// (`soft_bounce_limit`, which the reader's own new opt-in lifts); a
    /// complaint unsubscribes the subscriber and suppresses the address
    /// (`complaint`, which replaces any other reason). Returns `None` when
    /// this event (source and key) was recorded before: nothing changes then.
    pub async fn record_bounce_event(
        &self,
        e: &NewBounceEvent<'_>,
        policy: SoftBouncePolicy,
        now: DateTime<Utc>,
    ) -> Result<Option<BounceAction>> {
        let mut tx = self.begin_write().await?;
        let canonical: Option<String> =
            sqlx::query_scalar("SELECT email_canonical FROM subscribers WHERE id = ?")
                .bind(e.subscriber.0)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(canonical) = canonical else {
            return Err(super::StoreError::NotFound);
        };
        let seen: Option<i64> =
            sqlx::query_scalar("SELECT id FROM bounce_events WHERE source = ? AND event_key = ?")
                .bind(e.source.as_str())
                .bind(e.event_key)
                .fetch_optional(&mut *tx)
                .await?;
        if seen.is_some() {
            tx.commit().await?;
            return Ok(None);
        }
        let hash = hash_canonical(&canonical);
        let action = apply_policy(&mut tx, e, &hash, policy, now).await?;
        sqlx::query(
            "INSERT INTO bounce_events (subscriber_id, delivery_id, kind, source, event_key, \
             status, detail, action, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(e.subscriber.0)
        .bind(e.delivery)
        .bind(e.kind.as_str())
        .bind(e.source.as_str())
        .bind(e.event_key)
        .bind(e.status)
        .bind(e.detail)
        .bind(action.as_str())
        .bind(ts(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(action))
    }

    /// Complaints received and digests sent since `since` (sent counted
    /// from the digest run records, a small table), for the complaint-rate
    /// pause.
    pub async fn complaints_and_sent_since(&self, since: DateTime<Utc>) -> Result<(i64, i64)> {
        let complaints: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM bounce_events WHERE kind = 'complaint' AND received_at >= ?",
        )
        .bind(ts(since))
        .fetch_one(&self.pool)
        .await?;
        let sent: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(sent), 0) FROM digest_runs WHERE started_at >= ?",
        )
        .bind(ts(since))
        .fetch_one(&self.pool)
        .await?;
        Ok((complaints, sent))
    }

    /// Events recorded since `since`, by kind, for the run summary.
    pub async fn bounce_counts_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(BounceKind, i64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT kind, count(*) FROM bounce_events WHERE received_at >= ? GROUP BY kind",
        )
        .bind(ts(since))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, n)| BounceKind::parse(&k).map(|k| (k, n)))
            .collect())
    }

    /// A subscriber's feedback events, for their data export.
    pub(crate) async fn bounce_history_json(&self, id: SubscriberId) -> Result<serde_json::Value> {
        let rows: Vec<HistoryRow> = sqlx::query_as(
            "SELECT f.kind, f.source, f.status, f.action, d.digest_date, f.received_at \
                 FROM bounce_events f LEFT JOIN deliveries d ON d.id = f.delivery_id \
                 WHERE f.subscriber_id = ? ORDER BY f.id",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(serde_json::Value::Array(
            rows.into_iter()
                .map(|(kind, source, status, action, date, at)| {
                    serde_json::json!({
                        "kind": kind, "source": source, "status": status, "action": action,
                        "digest_date": date, "received_at": at,
                    })
                })
                .collect(),
        ))
    }
}

/// kind, source, status, action, digest date, received at.
type HistoryRow = (
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    String,
);

/// What an event does to its subscriber (see
/// [`Store::record_bounce_event`]), inside the caller's transaction.
async fn apply_policy(
    tx: &mut super::WriteTx,
    e: &NewBounceEvent<'_>,
    hash: &str,
    policy: SoftBouncePolicy,
    now: DateTime<Utc>,
) -> Result<BounceAction> {
    Ok(match e.kind {
        BounceKind::HardBounce => {
            let upgrades = [SuppressionReason::SoftBounceLimit];
            put(tx, hash, HardBounce, Some(e.subscriber), &upgrades, now).await?;
            BounceAction::Suppressed
        }
        BounceKind::SoftBounce => {
            let since = now - Duration::days(policy.window_days as i64);
            let earlier: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM bounce_events \
                 WHERE subscriber_id = ? AND kind = 'soft_bounce' AND received_at >= ?",
            )
            .bind(e.subscriber.0)
            .bind(ts(since))
            .fetch_one(&mut **tx)
            .await?;
            if earlier + 1 >= policy.limit as i64 {
                put(tx, hash, SoftBounceLimit, Some(e.subscriber), &[], now).await?;
                BounceAction::Suppressed
            } else {
                BounceAction::Counted
            }
        }
        BounceKind::Complaint => {
            let all = SuppressionReason::ALL;
            put(tx, hash, Complaint, Some(e.subscriber), &all, now).await?;
            sqlx::query(
                "UPDATE subscribers SET state = 'unsubscribed', unsubscribed_at = ?, \
                 updated_at = ? WHERE id = ? AND state != 'unsubscribed'",
            )
            .bind(ts(now))
            .bind(ts(now))
            .bind(e.subscriber.0)
            .execute(&mut **tx)
            .await?;
            sqlx::query(
                "UPDATE outbox SET state = 'skipped', last_error = 'complaint' \
                 WHERE subscriber_id = ? AND state IN ('pending', 'retry')",
            )
            .bind(e.subscriber.0)
            .execute(&mut **tx)
            .await?;
            BounceAction::Unsubscribed
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::temp_store;
    use chrono::SubsecRound;

    /// An active subscriber, daily at 08:00 UTC.
    async fn subscriber(store: &Store, email: &str) -> SubscriberId {
        crate::store::test_support::active_subscriber(store, Utc::now(), email).await
    }

    fn event<'a>(sub: SubscriberId, kind: BounceKind, key: &'a str) -> NewBounceEvent<'a> {
        NewBounceEvent {
            subscriber: sub,
            delivery: None,
            kind,
            source: ReportSource::Postmark,
            event_key: key,
            status: Some("5.1.1"),
            detail: "test",
        }
    }

    const POLICY: SoftBouncePolicy = SoftBouncePolicy {
        limit: 3,
        window_days: 7,
    };

    #[tokio::test]
    async fn a_hard_bounce_suppresses_and_its_duplicate_changes_nothing() {
        let (store, _dir) = temp_store().await;
        let sub = subscriber(&store, "gone@example.net").await;
        let now = Utc::now();
        let e = event(sub, BounceKind::HardBounce, "k1");
        assert_eq!(
            store.record_bounce_event(&e, POLICY, now).await.unwrap(),
            Some(BounceAction::Suppressed)
        );
        assert_eq!(
            store.record_bounce_event(&e, POLICY, now).await.unwrap(),
            None
        );
        let s = store.subscriber(sub).await.unwrap();
        assert_eq!(
            store.suppression(&s.email).await.unwrap(),
            Some(SuppressionReason::HardBounce)
        );
        let export = store.export_subscriber(sub).await.unwrap();
        assert_eq!(export["bounces"].as_array().unwrap().len(), 1);
        assert_eq!(export["bounces"][0]["kind"], "hard_bounce");
    }

    #[tokio::test]
    async fn soft_bounces_suppress_only_after_the_limit_within_the_window() {
        let (store, _dir) = temp_store().await;
        let sub = subscriber(&store, "full@example.net").await;
        let t0 = Utc::now() - Duration::days(30);
        let soft = |k| NewBounceEvent {
            status: Some("4.2.2"),
            ..event(sub, BounceKind::SoftBounce, k)
        };
        // Two long ago, outside the window…
        store
            .record_bounce_event(&soft("a"), POLICY, t0)
            .await
            .unwrap();
        store
            .record_bounce_event(&soft("b"), POLICY, t0)
            .await
            .unwrap();
        let now = Utc::now();
        // …so two recent ones are still only counted; the third suppresses.
        assert_eq!(
            store
                .record_bounce_event(&soft("c"), POLICY, now)
                .await
                .unwrap(),
            Some(BounceAction::Counted)
        );
        assert_eq!(
            store
                .record_bounce_event(&soft("d"), POLICY, now)
                .await
                .unwrap(),
            Some(BounceAction::Counted)
        );
        let s = store.subscriber(sub).await.unwrap();
        assert_eq!(store.suppression(&s.email).await.unwrap(), None);
        assert_eq!(
            store
                .record_bounce_event(&soft("e"), POLICY, now)
                .await
                .unwrap(),
            Some(BounceAction::Suppressed)
        );
        assert_eq!(
            store.suppression(&s.email).await.unwrap(),
            Some(SuppressionReason::SoftBounceLimit),
            "the soft-bounce limit is a reason of its own, not a hard bounce"
        );
        let shown = store.subscriber_suppression(sub).await.unwrap().unwrap();
        assert_eq!(
            (shown.reason, shown.since),
            (SuppressionReason::SoftBounceLimit, now.trunc_subsecs(3))
        );
        // A hard bounce later makes it a hard bounce.
        let hard = event(sub, BounceKind::HardBounce, "f");
        store.record_bounce_event(&hard, POLICY, now).await.unwrap();
        assert_eq!(
            store.suppression(&s.email).await.unwrap(),
            Some(SuppressionReason::HardBounce)
        );
    }

    /// A report's Message-ID is looked up by the deliveries' unique key
    /// (subscriber, digest date), never by a scan of the table.
    #[tokio::test]
    async fn the_message_id_lookup_uses_the_deliveries_key() {
        let (store, _dir) = temp_store().await;
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {DELIVERY_BY_KEY}"))
                .bind(1)
                .bind("2026-12-01")
                .bind("<x@y>")
                .fetch_all(store.pool())
                .await
                .unwrap();
        let steps: Vec<&str> = plan.iter().map(|r| r.3.as_str()).collect();
        assert!(
            steps.len() == 1
                && steps[0].starts_with("SEARCH deliveries USING INDEX")
                && steps[0].contains("(subscriber_id=? AND digest_date=?)"),
            "{steps:?}"
        );
    }

    #[tokio::test]
    async fn a_complaint_unsubscribes_and_outranks_a_hard_bounce() {
        let (store, _dir) = temp_store().await;
        let sub = subscriber(&store, "angry@example.net").await;
        let now = Utc::now();
        store
            .record_bounce_event(&event(sub, BounceKind::HardBounce, "h"), POLICY, now)
            .await
            .unwrap();
        assert_eq!(
            store
                .record_bounce_event(&event(sub, BounceKind::Complaint, "c"), POLICY, now)
                .await
                .unwrap(),
            Some(BounceAction::Unsubscribed)
        );
        let s = store.subscriber(sub).await.unwrap();
        assert_eq!(s.state, crate::domain::SubscriberState::Unsubscribed);
        assert_eq!(
            store.suppression(&s.email).await.unwrap(),
            Some(SuppressionReason::Complaint)
        );
        let (complaints, _) = store
            .complaints_and_sent_since(now - Duration::hours(1))
            .await
            .unwrap();
        assert_eq!(complaints, 1);
    }
}
