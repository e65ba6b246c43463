//! Scale against the real store and engine with a loopback SMTP sink:
//! planning proportional to who is due (the stored next due instants) and
//! per-recipient-domain pacing.

use crate::digest::paper;
use crate::support::TestApp;
use chrono::{DateTime, NaiveTime, Utc};
use paperboy::digest::{self, DigestPick, Picker};
use paperboy::domain::{EmailAddress, Preferences, SubscriberId, SubscriberState};
use paperboy::store::deliveries::DeliveryState;
use paperboy::store::subscribers::{ConsentInput, ConsentMethod};
use std::collections::HashSet;

struct Two;

impl Picker for Two {
    fn pick(
        &self,
        _window: &paperboy::domain::Window,
        _prefs: &Preferences,
        sent: &HashSet<String>,
    ) -> Vec<DigestPick> {
        (1..=2)
            .map(|i| paper(i, &format!("Paper {i}")))
            .filter(|p| !sent.contains(p.id.as_str()))
            .map(|p| DigestPick {
                paper: p.into(),
                score: 1.0,
                reason: "On agents".into(),
                topic: Some("agents".into()),
            })
            .collect()
    }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn prefs(send_time: &str) -> Preferences {
    Preferences {
        topics: vec!["agents".into()],
        ..Preferences::new(
            2,
            NaiveTime::parse_from_str(send_time, "%H:%M").unwrap(),
            chrono_tz::UTC,
        )
    }
}

async fn add(t: &TestApp, email: &str) -> SubscriberId {
    let links = t.app.links.clone();
    let hash = move |id, g| links.manage_token_hash(id, g);
    t.app
        .store
        .add_subscriber(
            &EmailAddress::parse(email).unwrap(),
            &prefs("08:00"),
            SubscriberState::Active,
            &ConsentInput {
                method: ConsentMethod::OperatorImport,
                source: "test".into(),
                consent_text_hash: "x".into(),
                ip: None,
            },
            &hash,
            at("2026-11-01T00:00:00Z"),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn a_tick_has_work_only_when_someone_is_due() {
    let t = TestApp::spawn().await;
    let id = add(&t, "due@example.org").await;
    // A new subscriber is evaluated at the next tick…
    assert!(digest::work_due(&t.app, at("2026-11-27T07:00:00Z"))
        .await
        .unwrap());
    assert_eq!(
        digest::plan(&t.app, at("2026-11-27T07:00:00Z"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        t.app.store.next_due_of(id).await.unwrap(),
        Some(at("2026-11-27T08:00:00Z"))
    );
    // …then nothing until the send time.
    assert!(!digest::work_due(&t.app, at("2026-11-27T07:59:00Z"))
        .await
        .unwrap());
    assert!(digest::work_due(&t.app, at("2026-11-27T08:00:00Z"))
        .await
        .unwrap());
    let r = digest::run(&t.app, &Two, at("2026-11-27T08:01:00Z"))
        .await
        .unwrap();
    assert_eq!((r.counts.planned, r.counts.sent), (1, 1));
    assert!(!digest::work_due(&t.app, at("2026-11-27T09:00:00Z"))
        .await
        .unwrap());
    assert_eq!(
        t.app.store.next_due_of(id).await.unwrap(),
        Some(at("2026-11-28T08:00:00Z"))
    );
    t.stop().await;
}

#[tokio::test]
async fn a_new_send_time_takes_effect_at_the_next_tick() {
    let t = TestApp::spawn().await;
    let id = add(&t, "early@example.org").await;
    digest::plan(&t.app, at("2026-11-27T07:00:00Z"))
        .await
        .unwrap();
    t.app
        .store
        .update_preferences(id, &prefs("07:30"), at("2026-11-27T07:10:00Z"))
        .await
        .unwrap();
    let r = digest::run(&t.app, &Two, at("2026-11-27T07:31:00Z"))
        .await
        .unwrap();
    assert_eq!((r.counts.planned, r.counts.sent), (1, 1));
    // 08:00 was the old time: nothing more today.
    assert!(!digest::work_due(&t.app, at("2026-11-27T08:05:00Z"))
        .await
        .unwrap());
    assert_eq!(t.sink.messages_to("early@example.org").len(), 1);
    t.stop().await;
}

#[tokio::test]
async fn pausing_stops_planning_and_resuming_plans_the_missed_time_once() {
    let t = TestApp::spawn().await;
    let id = add(&t, "pause@example.org").await;
    digest::plan(&t.app, at("2026-11-27T07:00:00Z"))
        .await
        .unwrap();
    t.app
        .store
        .set_paused(id, true, at("2026-11-27T07:30:00Z"))
        .await
        .unwrap();
    assert!(!digest::work_due(&t.app, at("2026-11-27T08:01:00Z"))
        .await
        .unwrap());
    t.app
        .store
        .set_paused(id, false, at("2026-11-27T09:00:00Z"))
        .await
        .unwrap();
    // Resumed inside the catch-up window: today's digest, once.
    let r = digest::run(&t.app, &Two, at("2026-11-27T09:01:00Z"))
        .await
        .unwrap();
    assert_eq!((r.counts.planned, r.counts.sent), (1, 1));
    let r = digest::run(&t.app, &Two, at("2026-11-27T09:02:00Z"))
        .await
        .unwrap();
    assert_eq!(r.counts.planned, 0);
    t.stop().await;
}

#[tokio::test]
async fn a_run_for_an_earlier_instant_plans_what_that_instant_is_due() {
    let t = TestApp::spawn().await;
    let id = add(&t, "past@example.org").await;
    assert_eq!(
        digest::plan(&t.app, at("2026-11-28T08:05:00Z"))
            .await
            .unwrap(),
        1
    );
    // `digest --now` for the day before: the stored instants (for the
    // 29th) say nothing about the 27th, so everyone is evaluated again.
    assert_eq!(
        digest::plan(&t.app, at("2026-11-27T08:05:00Z"))
            .await
            .unwrap(),
        1
    );
    let dates: Vec<String> = t
        .app
        .store
        .deliveries_for(id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.digest_date.to_string())
        .collect();
    assert_eq!(dates, vec!["2026-11-27", "2026-11-28"]);
    t.stop().await;
}

#[tokio::test]
async fn another_time_zone_database_re_evaluates_every_subscriber() {
    let t = TestApp::spawn().await;
    let id = add(&t, "tz@example.org").await;
    digest::plan(&t.app, at("2026-11-27T07:00:00Z"))
        .await
        .unwrap();
    assert!(!digest::work_due(&t.app, at("2026-11-27T07:30:00Z"))
        .await
        .unwrap());
    t.app
        .store
        .set_setting("schedule.tzdb_version", "1999a")
        .await
        .unwrap();
    assert!(digest::work_due(&t.app, at("2026-11-27T07:30:00Z"))
        .await
        .unwrap());
    digest::plan(&t.app, at("2026-11-27T07:30:00Z"))
        .await
        .unwrap();
    let marks = t.app.store.schedule_marks().await.unwrap();
    assert_eq!(
        marks.tzdb_version.as_deref(),
        Some(chrono_tz::IANA_TZDB_VERSION)
    );
    assert_eq!(
        t.app.store.next_due_of(id).await.unwrap(),
        Some(at("2026-11-27T08:00:00Z"))
    );
    t.stop().await;
}

#[tokio::test]
async fn a_capped_domain_is_paced_alone_and_its_excess_waits_for_a_later_tick() {
    let t = TestApp::spawn_with(&[("PAPERBOY__DIGEST__DOMAIN_LIMITS", "slow.test=1")]).await;
    let mut slow = Vec::new();
    for i in 0..5 {
        slow.push(add(&t, &format!("s{i}@slow.test")).await);
        add(&t, &format!("f{i}@fast.test")).await;
    }
    let now = at("2026-11-27T08:01:00Z");
    let r = digest::run(&t.app, &Two, now).await.unwrap();
    // fast.test is not held up; slow.test gets what fits its 1/s within
    // the two-second horizon (slots at 0, 1 and 2 s: three, or four on a
    // machine that stalls a second), the rest is deferred, not failed and
    // not counted as an attempt.
    assert_eq!((r.counts.planned, r.counts.failed), (10, 0));
    for i in 0..5 {
        assert_eq!(t.sink.messages_to(&format!("f{i}@fast.test")).len(), 1);
    }
    let mut waiting = 0;
    for id in &slow {
        let rows = t.app.store.deliveries_for(*id).await.unwrap();
        if rows[0].state == DeliveryState::Pending {
            assert_eq!(rows[0].attempts, 0, "a deferral is not an attempt");
            waiting += 1;
        }
    }
    assert!((1..=2).contains(&waiting), "{waiting} deferred");
    assert_eq!(r.counts.sent, 10 - waiting);
    // The next tick sends the rest, once each.
    let r = digest::run(&t.app, &Two, at("2026-11-27T08:02:00Z"))
        .await
        .unwrap();
    assert_eq!((r.counts.planned, r.counts.sent), (0, waiting));
    for i in 0..5 {
        assert_eq!(t.sink.messages_to(&format!("s{i}@slow.test")).len(), 1);
    }
    t.stop().await;
}
