use super::*;
use crate::domain::{hash_canonical, TokenPurpose};
use crate::store::test_support::temp_store;
use crate::store::StoreOptions;
use chrono::TimeZone;
use sqlx::sqlite::SqliteConnectOptions;
use std::str::FromStr;

fn prefs() -> Preferences {
    Preferences {
        topics: vec!["retrieval".into()],
        ..Preferences::new(5, NaiveTime::from_hms_opt(8, 0, 0).unwrap(), chrono_tz::UTC)
    }
}

fn operator() -> ConsentInput {
    ConsentInput {
        method: ConsentMethod::OperatorImport,
        source: "test".into(),
        consent_text_hash: "test".into(),
        ip: None,
    }
}

async fn add(store: &Store, email: &str, state: SubscriberState) -> Result<SubscriberId> {
    let now = Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap();
    store
        .add_subscriber(
            &EmailAddress::parse(email).unwrap(),
            &prefs(),
            state,
            &operator(),
            &|id, g| format!("hash-{}-{g}", id.0),
            now,
        )
        .await
}

#[tokio::test]
async fn an_operator_add_never_lifts_a_suppression_of_any_reason() {
    let (store, _dir) = temp_store().await;
    let now = Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap();
    let id = add(&store, "gone@example.org", SubscriberState::Active)
        .await
        .unwrap();
    store
        .delete_subscriber(id, SuppressionReason::Deleted, now)
        .await
        .unwrap();
    let manual = EmailAddress::parse("blocked@example.org").unwrap();
    store
        .suppress(&manual, SuppressionReason::Manual, now)
        .await
        .unwrap();
    for email in [
        "gone@example.org",
        "GONE@example.org",
        "blocked@example.org",
    ] {
        for state in [SubscriberState::Active, SubscriberState::Pending] {
            let err = add(&store, email, state).await.unwrap_err();
            assert!(matches!(err, StoreError::Suppressed(_)), "{email}: {err}");
        }
        let e = EmailAddress::parse(email).unwrap();
        assert!(store.suppression(&e).await.unwrap().is_some(), "{email}");
        assert!(store.subscriber_by_email(&e).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn one_mailbox_typed_three_ways_is_one_subscriber() {
    let (store, _dir) = temp_store().await;
    add(&store, "keeper@example.com", SubscriberState::Active)
        .await
        .unwrap();
    for other in ["Keeper@example.com", "KEEPER@EXAMPLE.COM"] {
        let err = add(&store, other, SubscriberState::Active)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{other}: {err}");
        let found = store
            .subscriber_by_email(&EmailAddress::parse(other).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.email.as_str(), "keeper@example.com");
    }
    assert_eq!(store.list_subscribers(None).await.unwrap().len(), 1);
}

/// A suppression recorded when canonical keys kept the local part's
/// case is still found for the address as it was typed.
#[tokio::test]
async fn a_suppression_stored_under_the_old_key_still_matches() {
    let (store, _dir) = temp_store().await;
    store
        .write_one(
            sqlx::query(
                "INSERT INTO suppressions (email_hash, reason, created_at) \
                 VALUES (?, 'hard_bounce', '2026-01-01T00:00:00.000Z')",
            )
            .bind(hash_canonical("Bounced@example.org")),
        )
        .await
        .unwrap();
    let typed = EmailAddress::parse("Bounced@Example.org").unwrap();
    assert_eq!(
        store.suppression(&typed).await.unwrap(),
        Some(SuppressionReason::HardBounce)
    );
    assert_eq!(store.suppressed_among(&[&typed]).await.unwrap(), vec![true]);
    let err = add(&store, "Bounced@example.org", SubscriberState::Active)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Suppressed("hard_bounce")),
        "{err}"
    );
}

async fn old_schema_pool(path: &std::path::Path, dir: &std::path::Path) -> sqlx::SqlitePool {
    let old = dir.join("old-migrations");
    std::fs::create_dir(&old).unwrap();
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.as_str() < "20261204000400" {
            std::fs::copy(entry.path(), old.join(&name)).unwrap();
        }
    }
    let pool = sqlx::SqlitePool::connect_with(
        SqliteConnectOptions::from_str("sqlite://")
            .unwrap()
            .filename(path)
            .create_if_missing(true)
            .foreign_keys(true),
    )
    .await
    .unwrap();
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    pool
}

/// A database where one mailbox became three subscribers opens with
/// them folded into the one with the oldest confirmed consent; the
/// others' consents and links move to it, the merge is recorded, and
/// a later unsubscribe of one variant wins.
#[tokio::test]
async fn the_upgrade_folds_case_duplicates_keeping_the_oldest_confirmed_consent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    let pool = old_schema_pool(&path, dir.path()).await;
    // (id, email, state, created, confirmed, unsubscribed)
    let rows = [
        (
            1,
            "Keeper@example.com",
            "active",
            "2026-03-01",
            Some("2026-03-02"),
            None,
        ),
        (
            2,
            "keeper@example.com",
            "active",
            "2026-01-01",
            Some("2026-01-05"),
            None,
        ),
        (3, "KEEPER@example.com", "pending", "2025-12-01", None, None),
        (
            4,
            "other@example.com",
            "active",
            "2026-01-01",
            Some("2026-01-01"),
            None,
        ),
        (
            5,
            "Quit@example.com",
            "active",
            "2026-01-01",
            Some("2026-01-02"),
            None,
        ),
        (
            6,
            "quit@example.com",
            "unsubscribed",
            "2026-02-01",
            Some("2026-02-02"),
            Some("2026-05-01"),
        ),
    ];
    for (id, email, state, created, confirmed, unsub) in rows {
        let t = |d: &str| format!("{d}T00:00:00.000Z");
        let (local, domain) = email.split_once('@').unwrap();
        sqlx::query(
            "INSERT INTO subscribers (id, email, email_canonical, state, digest_size, \
             frequency, send_time, time_zone, created_at, updated_at, confirmed_at, \
             unsubscribed_at) VALUES (?, ?, ?, ?, 5, 'daily', '08:00', 'UTC', ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(email)
        .bind(format!("{local}@{}", domain.to_lowercase()))
        .bind(state)
        .bind(t(created))
        .bind(t(created))
        .bind(confirmed.map(t))
        .bind(unsub.map(t))
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO consents (subscriber_id, method, source, consent_text_hash, topics, \
             requested_at, confirmed_at) VALUES (?, 'web_form', 'f', 'h', '[]', ?, ?)",
        )
        .bind(id)
        .bind(t(created))
        .bind(confirmed.map(t))
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO tokens (hash, subscriber_id, purpose, created_at) \
             VALUES (?, ?, 'manage', '2026-01-01T00:00:00.000Z')",
        )
        .bind(format!("manage-{id}"))
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    }
    // The variant that bounced was suppressed under its old key.
    sqlx::query(
        "INSERT INTO suppressions (email_hash, reason, created_at) \
         VALUES (?, 'hard_bounce', '2026-04-01T00:00:00.000Z')",
    )
    .bind(hash_canonical("KEEPER@example.com"))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let store = Store::open(StoreOptions {
        path,
        busy_timeout: std::time::Duration::from_secs(10),
        max_connections: 2,
        synchronous: crate::domain::Synchronous::Normal,
    })
    .await
    .unwrap();
    let subs = store.list_subscribers(None).await.unwrap();
    let summary: Vec<(i64, &str, &str, &str)> = subs
        .iter()
        .map(|s| {
            (
                s.id.0,
                s.email.as_str(),
                s.email.canonical(),
                s.state.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (2, "keeper@example.com", "keeper@example.com", "active"),
            (4, "other@example.com", "other@example.com", "active"),
            (5, "Quit@example.com", "quit@example.com", "unsubscribed"),
        ]
    );
    assert_eq!(
        ts(subs[0].confirmed_at.unwrap()),
        "2026-01-05T00:00:00.000Z"
    );
    let consents: i64 = sqlx::query_scalar("SELECT count(*) FROM consents WHERE subscriber_id = 2")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(consents, 3);
    for token in ["manage-1", "manage-2", "manage-3"] {
        let owner = store
            .subscriber_for_token(token, TokenPurpose::Manage, Utc::now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(owner.id, SubscriberId(2), "{token}");
    }
    let merges: Vec<(i64, i64, String, bool)> = sqlx::query_as(
        "SELECT kept_id, merged_id, merged_state, reported_at IS NOT NULL \
         FROM subscriber_merges ORDER BY merged_id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(
        merges,
        vec![
            (2, 1, "active".into(), true),
            (2, 3, "pending".into(), true),
            (5, 6, "unsubscribed".into(), true),
        ]
    );
    // The bounced variant's suppression now covers the whole mailbox.
    let any_case = EmailAddress::parse("kEEper@example.com").unwrap();
    assert_eq!(
        store.suppression(&any_case).await.unwrap(),
        Some(SuppressionReason::HardBounce)
    );
    assert!(store.finish_mailbox_merges().await.unwrap().is_empty());
}

mod choices {
    use super::*;
    use crate::domain::{FeedbackAction, Paper, PaperId, PreviewChoice, SourceKind};
    use crate::store::papers::PaperBatch;
    use chrono::Duration;

    fn web_form() -> ConsentInput {
        ConsentInput {
            method: ConsentMethod::WebForm,
            source: "test".into(),
            consent_text_hash: "test".into(),
            ip: None,
        }
    }

    fn choice(id: &str, action: FeedbackAction) -> PreviewChoice {
        PreviewChoice {
            paper: PaperId::from_stored(id.to_string()),
            action,
        }
    }

    async fn request(store: &Store, choices: &[PreviewChoice], now: DateTime<Utc>) -> SubscriberId {
        let limits = ConfirmLimits {
            min_interval: Duration::zero(),
            per_day: 100,
            global_per_hour: 100,
        };
        let email = EmailAddress::parse("reader@example.org").unwrap();
        let (_, id) = store
            .request_subscription(
                SubscribeRequest {
                    email: &email,
                    prefs: &prefs(),
                    consent: &web_form(),
                    choices,
                },
                &limits,
                &|id, g| format!("hash-{}-{g}", id.0),
                now,
            )
            .await
            .unwrap();
        id.unwrap()
    }

    async fn pending(store: &Store, id: SubscriberId) -> Vec<(String, String)> {
        sqlx::query_as(
            "SELECT paper_id, action FROM pending_choices WHERE subscriber_id = ? ORDER BY paper_id",
        )
        .bind(id.0)
        .fetch_all(store.pool())
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn preview_choices_wait_with_the_pending_subscription_and_become_feedback_on_confirming()
    {
        let (store, _dir) = temp_store().await;
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap();
        let papers: Vec<Paper> = ["2606.00001", "2606.00002"]
            .iter()
            .map(|i| Paper::new(PaperId::from_stored(i.to_string()), "A paper", "Text."))
            .collect();
        store
            .upsert_papers(PaperBatch {
                source: SourceKind::ArxivFeed,
                papers: &papers,
                observed_at: now,
                validators: &[],
            })
            .await
            .unwrap();
        let first = [
            choice("2606.00001", FeedbackAction::More),
            choice("2606.99999", FeedbackAction::More),
        ];
        let id = request(&store, &first, now).await;
        assert_eq!(
            pending(&store, id).await,
            vec![("2606.00001".to_string(), "more".to_string())],
            "a paper that is not stored is dropped"
        );
        assert!(store.feedback_of(id).await.unwrap().is_empty());
        let export = store.export_subscriber(id).await.unwrap();
        assert_eq!(export["pending_choices"][0]["paper"], "2606.00001");
        assert_eq!(export["pending_choices"][0]["action"], "more");

        // Asking again replaces the choices.
        let second = [choice("2606.00002", FeedbackAction::NotForMe)];
        let id = request(&store, &second, now).await;
        assert_eq!(
            pending(&store, id).await,
            vec![("2606.00002".to_string(), "not_for_me".to_string())]
        );

        let later = now + Duration::hours(2);
        store
            .insert_confirm_token(id, "confirm-hash", now, now + Duration::days(2))
            .await
            .unwrap();
        let outcome = store.confirm("confirm-hash", later).await.unwrap();
        assert!(matches!(outcome, ConfirmOutcome::Confirmed(_)));
        let fb = store.feedback_of(id).await.unwrap();
        assert_eq!(fb.len(), 1);
        assert_eq!(fb[0].paper.as_str(), "2606.00002");
        assert_eq!((fb[0].action, fb[0].at), (FeedbackAction::NotForMe, later));
        assert!(pending(&store, id).await.is_empty());
    }
}
