//! Suppression as a visible state: a suppressed reader is shown as such,
//! with the reason, in `subscribers list` and `export` (the real binary),
//! `/metrics` and their own settings page; the soft-bounce limit is a
//! reason of its own, which the reader's own new opt-in lifts.

use crate::bounces::{aimed, at, fixture, postfix_dsn, record_mail, sent_to, suppression};
use crate::digest::{add_active, papers};
use crate::support::TestApp;
use paperboy::digest;
use paperboy::domain::{SubscriberId, SubscriberState};
use paperboy::store::subscribers::SuppressionReason;
use std::process::{Command, Stdio};

const VERP: (&str, &str) = ("PAPERBOY__BOUNCES__VERP_ADDRESS", "bounces@paperboy.test");

/// The `n`th Exim "delayed" DSN (a soft bounce) about the digest sent to
/// `rcpt`, to its VERP address; each report has its own Message-Id. (The
/// test SMTP server refuses local parts starting with "full".)
fn delayed_dsn(t: &TestApp, rcpt: &str, n: usize) -> String {
    aimed(
        &fixture("mailbox", "exim-delayed-4.2.2.eml"),
        &sent_to(t, rcpt),
    )
    .replace("full@example.com", rcpt)
    .replace("<E1vR0aa-0005Ab-2c@", &format!("<E1vR0aa-{n}-{rcpt}."))
}

/// Runs the real binary on `t`'s database.
fn paperboy(t: &TestApp, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_paperboy"))
        .args(args)
        .current_dir(t.dir.path())
        .env_remove("RUST_LOG")
        .env("PAPERBOY__DATABASE__PATH", t.db_path())
        .env("PAPERBOY__MAIL__OUTBOX_DIR", t.dir.path().join("outbox"))
        .env("PAPERBOY__SOURCES__HUGGINGFACE__ENABLED", "false")
        .env("PAPERBOY__RANK__SEMANTIC__ENABLED", "false")
        .env("PAPERBOY__LOGGING__LEVEL", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "paperboy {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn get(t: &TestApp, url: &str) -> String {
    let r = t.client.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.text().await.unwrap()
}

fn manage_url(t: &TestApp, id: SubscriberId) -> String {
    t.app.links.manage_url(&t.app.links.manage_token(id, 0))
}

/// The text between `<div … id="suppressed"` and its closing `</div>`.
fn notice(page: &str) -> Option<&str> {
    let start = page.find("id=\"suppressed\"")?;
    let end = page[start..].find("</div>")? + start;
    Some(&page[start..end])
}

#[tokio::test]
async fn a_suppressed_reader_is_shown_as_suppressed_in_listings_metrics_and_their_settings_page() {
    let day = at("2026-12-01T08:00:00Z");
    let (t, _clock) = TestApp::spawn_at(day, &[VERP]).await;
    let gone = add_active(&t.app, "gone@example.net", &["rag"], 3).await;
    let quota = add_active(&t.app, "quota@example.net", &["rag"], 3).await;
    let angry = add_active(&t.app, "angry@example.net", &["rag"], 3).await;
    let reader = add_active(&t.app, "reader@example.net", &["rag"], 3).await;
    assert_eq!(
        digest::run(&t.app, &papers(9), day)
            .await
            .unwrap()
            .counts
            .sent,
        4
    );
    let gone_sent = sent_to(&t, "gone@example.net");
    record_mail(
        &t,
        &postfix_dsn("gone@example.net", &gone_sent.verp, &gone_sent.message_id),
    )
    .await;
    for n in 1..=3 {
        record_mail(&t, &delayed_dsn(&t, "quota@example.net", n)).await;
    }
    let arf = aimed(
        &fixture("mailbox", "yahoo-arf-abuse.eml"),
        &sent_to(&t, "angry@example.net"),
    )
    .replace("reader@yahoo.com", "angry@example.net");
    record_mail(&t, &arf).await;

    // `/metrics`: the suppressed are not counted as active (or unsubscribed).
    let metrics = get(&t, &t.url("/metrics")).await;
    for line in [
        "paperboy_subscribers{state=\"active\"} 1",
        "paperboy_subscribers{state=\"unsubscribed\"} 0",
        "paperboy_subscribers{state=\"suppressed\"} 3",
        "paperboy_subscribers_suppressed{reason=\"hard_bounce\"} 1",
        "paperboy_subscribers_suppressed{reason=\"soft_bounce_limit\"} 1",
        "paperboy_subscribers_suppressed{reason=\"complaint\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }

    // `subscribers list`, text and JSON, and `--state suppressed`.
    let text = paperboy(&t, &["subscribers", "list"]);
    let state_of = |email: &str| {
        text.lines()
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .find(|f| f[1] == email)
            .map(|f| f[2].to_string())
            .unwrap()
    };
    assert_eq!(
        state_of("gone@example.net"),
        "active, suppressed (hard bounce since 2026-12-01)"
    );
    assert_eq!(
        state_of("quota@example.net"),
        "active, suppressed (soft-bounce limit since 2026-12-01)"
    );
    assert_eq!(
        state_of("angry@example.net"),
        "unsubscribed, suppressed (spam complaint since 2026-12-01)"
    );
    assert_eq!(state_of("reader@example.net"), "active");
    let json = paperboy(&t, &["subscribers", "list", "--format", "json"]);
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let row = |email: &str| rows.iter().find(|r| r["email"] == email).unwrap().clone();
    assert_eq!(row("gone@example.net")["suppressed"], "hard_bounce");
    assert_eq!(row("quota@example.net")["suppressed"], "soft_bounce_limit");
    assert_eq!(row("reader@example.net")["suppressed"], "");
    assert_eq!(
        row("gone@example.net")["suppressed_at"],
        "2026-12-01T08:00:00.000Z"
    );
    let only = paperboy(&t, &["subscribers", "list", "--state", "suppressed"]);
    assert_eq!(only.lines().count(), 3, "{only}");
    assert!(!only.contains("reader@example.net"));

    // `subscribers export`: a column the import reads back (and skips).
    let csv = paperboy(&t, &["subscribers", "export"]);
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|c| *c == "suppressed").unwrap();
    let field = |email: &str| {
        csv.lines()
            .find(|l| l.starts_with(email))
            .map(|l| l.split(',').nth(col).unwrap().to_string())
            .unwrap()
    };
    assert_eq!(field("gone@example.net"), "hard_bounce");
    assert_eq!(field("angry@example.net"), "complaint");
    assert_eq!(field("reader@example.net"), "");

    // The settings page says what happened and what the reader can do.
    let page = get(&t, &manage_url(&t, gone)).await;
    assert!(
        page.contains("status: <strong>suppressed</strong>"),
        "{page}"
    );
    let n = notice(&page).expect("a suppression notice");
    assert!(n.contains("data-reason=\"hard_bounce\""), "{n}");
    assert!(
        n.contains("mailbox does not exist") && n.contains("another address"),
        "{n}"
    );
    assert!(
        !n.contains("resubscribe"),
        "a hard bounce is never lifted: {n}"
    );
    let page = get(&t, &manage_url(&t, quota)).await;
    let n = notice(&page).expect("a suppression notice");
    assert!(n.contains("data-reason=\"soft_bounce_limit\""), "{n}");
    assert!(n.contains("3 times within 7 days"), "{n}");
    assert!(n.contains("value=\"resubscribe\""), "{n}");
    let page = get(&t, &manage_url(&t, angry)).await;
    assert!(
        notice(&page).unwrap().contains("reported as spam"),
        "{page}"
    );
    let page = get(&t, &manage_url(&t, reader)).await;
    assert!(page.contains("status: <strong>active</strong>") && notice(&page).is_none());
    t.stop().await;
}

#[tokio::test]
async fn a_soft_bounce_limit_is_its_own_reason_and_the_readers_new_opt_in_lifts_it() {
    let day1 = at("2026-12-01T09:00:00Z");
    let (t, clock) = TestApp::spawn_at(day1, &[VERP]).await;
    let manage = t.subscribe_and_confirm("quota@example.net").await;
    t.subscribe_and_confirm("also-quota@example.net").await;
    let picker = papers(30);
    assert_eq!(
        digest::run(&t.app, &picker, day1)
            .await
            .unwrap()
            .counts
            .sent,
        2
    );
    for rcpt in ["quota@example.net", "also-quota@example.net"] {
        for n in 1..=3 {
            record_mail(&t, &delayed_dsn(&t, rcpt, n)).await;
        }
        assert_eq!(
            suppression(&t, rcpt).await,
            Some(SuppressionReason::SoftBounceLimit),
            "{rcpt}"
        );
    }
    let day2 = at("2026-12-02T09:00:00Z");
    clock.set(day2);
    assert_eq!(
        digest::run(&t.app, &picker, day2)
            .await
            .unwrap()
            .counts
            .sent,
        0
    );

    // One reader presses "Subscribe again" on the settings page…
    let r = t.manage_post(&manage, &[("action", "resubscribe")]).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Check your inbox"));
    // …the other subscribes again on the home page.
    assert_eq!(
        t.subscribe_email("also-quota@example.net").await.status(),
        200
    );
    for rcpt in ["quota@example.net", "also-quota@example.net"] {
        // Each has had a confirmation and a digest; the third mail is the
        // new confirmation.
        let link = t.confirmation_link(rcpt, 3).await;
        assert_eq!(t.client.post(&link).send().await.unwrap().status(), 200);
        assert_eq!(suppression(&t, rcpt).await, None, "{rcpt}");
        assert_eq!(t.state_of(rcpt).await.as_deref(), Some("active"), "{rcpt}");
    }
    let day3 = at("2026-12-03T09:00:00Z");
    clock.set(day3);
    assert_eq!(
        digest::run(&t.app, &picker, day3)
            .await
            .unwrap()
            .counts
            .sent,
        2
    );
    let s = t
        .app
        .store
        .subscriber_by_email(&paperboy::domain::EmailAddress::parse("quota@example.net").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.state, SubscriberState::Active);
    t.stop().await;
}
