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
    let mid: Option<String> = sqlx::query_scalar("SELECT message_id FROM deliveries WHERE id = ?")
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

mod migration {
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
