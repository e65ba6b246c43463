//! The delivery engine against a real in-process SMTP server: outcomes by
//! reply code, retries, suppression, re-checks at send time, no repeats,
//! the error budget, and the rendered digest.
//!
//! These tests exercise delivery, not ranking, so they pick papers with a
//! simple fixed picker; ranking has its own tests.

use crate::support::TestApp;
use chrono::{DateTime, Duration, Utc};
use mail_parser::MimeHeaders;
use paperboy::digest::{self, DigestPick, Picker, RunState};
use paperboy::domain::{
    EmailAddress, Paper, PaperId, Preferences, Span, SubscriberId, SubscriberState, Window,
};
use paperboy::store::subscribers::{ConsentInput, ConsentMethod};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Offers the same papers to everyone, minus those already sent.
pub(crate) struct FixedPicker(pub(crate) Vec<Paper>);

/// Whatever the window: these tests are about delivery.
impl Picker for FixedPicker {
    fn pick(
        &self,
        _window: &Window,
        prefs: &Preferences,
        sent: &HashSet<String>,
    ) -> Vec<DigestPick> {
        self.0
            .iter()
            .filter(|p| !sent.contains(p.id.as_str()))
            .take(prefs.digest_size as usize)
            .map(|p| DigestPick {
                paper: p.clone().into(),
                score: 1.0,
                reason: format!("On {}", prefs.topics.first().cloned().unwrap_or_default()),
                topic: prefs.topics.first().cloned(),
            })
            .collect()
    }
}

pub fn paper(n: u32, title: &str) -> Paper {
    let (id, _) = PaperId::parse_arxiv(&format!("2606.{n:05}v2")).unwrap();
    let mut p = Paper::new(id, title, &format!("Abstract of {title}. ").repeat(12));
    p.authors = vec![
        "Ada Lovelace".into(),
        "Alan Turing".into(),
        "Grace Hopper".into(),
        "Edsger Dijkstra".into(),
    ];
    p.upvotes = Some(40 + n as i64);
    p.github_repo = Some(format!("https://github.com/example/repo{n}"));
    p.sources = vec![paperboy::domain::SourceKind::HuggingFace];
    p
}

pub(crate) fn papers(n: u32) -> FixedPicker {
    FixedPicker(
        (1..=n)
            .map(|i| paper(i, &format!("Paper number {i}")))
            .collect(),
    )
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Adds an active subscriber: daily at 08:00 UTC, 3 papers.
async fn active(t: &TestApp, email: &str) -> SubscriberId {
    add_active(&t.app, email, &["speculative decoding"], 3).await
}

/// Adds an active subscriber to `app`: daily at 08:00 UTC.
pub(crate) async fn add_active(
    app: &paperboy::app::App,
    email: &str,
    topics: &[&str],
    size: u8,
) -> SubscriberId {
    let prefs = Preferences {
        topics: topics.iter().map(|t| t.to_string()).collect(),
        ..Preferences::new(
            size,
            chrono::NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            chrono_tz::UTC,
        )
    };
    let links = app.links.clone();
    let hash = move |id, g| links.manage_token_hash(id, g);
    app.store
        .add_subscriber(
            &EmailAddress::parse(email).unwrap(),
            &prefs,
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

async fn states(t: &TestApp, id: SubscriberId) -> Vec<(String, String, i64)> {
    t.app
        .store
        .deliveries_for(id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.digest_date.to_string(), r.state.to_string(), r.attempts))
        .collect()
}

#[tokio::test]
async fn smtp_replies_decide_states_retries_and_suppressions() {
    let t = TestApp::spawn_with(&[("PAPERBOY__DIGEST__RETRY_BASE_SECS", "60")]).await;
    let ok = active(&t, "ok@example.org").await;
    let temp = active(&t, "temp@example.org").await;
    let rate = active(&t, "rate@example.org").await;
    let perm = active(&t, "perm@example.org").await;
    let full = active(&t, "full@example.org").await;
    let picker = papers(5);

    let r = digest::run(&t.app, &picker, at("2026-11-27T08:01:00Z"))
        .await
        .unwrap();
    assert_eq!(r.counts.planned, 5);
    assert_eq!(
        (r.counts.sent, r.counts.retried, r.counts.failed),
        (1, 2, 2)
    );
    assert_eq!(
        states(&t, ok).await,
        vec![("2026-11-27".into(), "sent".into(), 1)]
    );
    assert_eq!(states(&t, temp).await[0].1, "retry");
    assert_eq!(states(&t, rate).await[0].1, "retry");
    assert_eq!(states(&t, perm).await[0].1, "failed");
    assert_eq!(states(&t, full).await[0].1, "failed");
    let store = &t.app.store;
    let suppressed = |e: &str| {
        let e = EmailAddress::parse(e).unwrap();
        async move { store.suppression(&e).await.unwrap() }
    };
    assert!(
        suppressed("perm@example.org").await.is_some(),
        "550 5.1.1 is a hard bounce"
    );
    assert!(
        suppressed("full@example.org").await.is_none(),
        "552 is not a bounce of the address"
    );
    assert!(suppressed("temp@example.org").await.is_none());

    // Before the backoff has passed nothing is retried; after it, once more.
    let r = digest::run(&t.app, &picker, at("2026-11-27T08:01:30Z"))
        .await
        .unwrap();
    assert_eq!(r.counts.retried, 0);
    let r = digest::run(&t.app, &picker, at("2026-11-27T09:30:00Z"))
        .await
        .unwrap();
    assert_eq!(r.counts.retried, 2);
    assert_eq!(states(&t, temp).await[0].2, 2, "second attempt recorded");

    // Past retry_max_age_hours the delivery gives up as expired.
    let r = digest::run(&t.app, &picker, at("2026-11-28T05:00:00Z"))
        .await
        .unwrap();
    assert_eq!(r.counts.failed, 2);
    assert_eq!(states(&t, temp).await[0].1, "failed");
    assert_eq!(t.sink.messages().len(), 1, "only ok@ ever received mail");
    t.stop().await;
}

#[tokio::test]
async fn two_temporary_failures_then_success_make_three_attempts_and_one_message() {
    let t = TestApp::spawn_with(&[("PAPERBOY__DIGEST__RETRY_BASE_SECS", "60")]).await;
    let id = active(&t, "flaky@example.org").await;
    let picker = papers(3);
    let mut now = at("2026-11-27T08:00:00Z");
    for _ in 0..3 {
        digest::run(&t.app, &picker, now).await.unwrap();
        now += Duration::minutes(10);
    }
    assert_eq!(
        states(&t, id).await,
        vec![("2026-11-27".into(), "sent".into(), 3)]
    );
    let msgs = t.sink.messages_to("flaky@example.org");
    assert_eq!(msgs.len(), 1);
    let parsed = mail_parser::MessageParser::default()
        .parse(&msgs[0].data)
        .unwrap();
    assert!(parsed.message_id().unwrap().contains(".20261127@"));
    t.stop().await;
}

#[tokio::test]
async fn an_unsubscribe_between_planning_and_sending_sends_nothing() {
    let t = TestApp::spawn().await;
    let stay = active(&t, "stay@example.org").await;
    let leave = active(&t, "leave@example.org").await;
    let now = at("2026-11-27T08:05:00Z");
    assert_eq!(digest::plan(&t.app, now).await.unwrap(), 2);
    t.app.store.unsubscribe(leave, now).await.unwrap();
    let r = digest::run(&t.app, &papers(3), now).await.unwrap();
    assert_eq!((r.counts.sent, r.counts.skipped), (1, 1));
    assert_eq!(states(&t, leave).await[0].1, "skipped");
    assert_eq!(states(&t, stay).await[0].1, "sent");
    assert!(t.sink.messages_to("leave@example.org").is_empty());
    t.stop().await;
}

#[tokio::test]
async fn a_digest_too_large_to_send_fails_is_counted_failed_and_sends_nothing() {
    // 10 papers with long excerpts make a digest well above 10 kB.
    let t = TestApp::spawn_with(&[("PAPERBOY__MAIL__MAX_MESSAGE_BYTES", "10000")]).await;
    let id = add_active(&t.app, "big@example.org", &["speculative decoding"], 10).await;
    let r = digest::run(&t.app, &papers(10), at("2026-11-27T08:05:00Z"))
        .await
        .unwrap();
    assert_eq!(
        (r.counts.sent, r.counts.failed, r.counts.skipped),
        (0, 1, 0)
    );
    assert_eq!(states(&t, id).await[0].1, "failed");
    assert!(t.sink.messages_to("big@example.org").is_empty());
    t.stop().await;
}

#[tokio::test]
async fn planning_is_idempotent_and_a_restart_inside_the_window_sends_once() {
    let t = TestApp::spawn().await;
    let id = active(&t, "once@example.org").await;
    let picker = papers(6);
    // Daemon "down" at 08:00; comes back at 10:10, inside the 6 h window.
    assert_eq!(
        digest::plan(&t.app, at("2026-11-27T10:10:00Z"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        digest::plan(&t.app, at("2026-11-27T10:10:00Z"))
            .await
            .unwrap(),
        0
    );
    digest::run(&t.app, &picker, at("2026-11-27T10:10:00Z"))
        .await
        .unwrap();
    // "Restarts" later the same day plan nothing new.
    for later in [
        "2026-11-27T10:20:00Z",
        "2026-11-27T13:59:00Z",
        "2026-11-27T23:00:00Z",
    ] {
        let r = digest::run(&t.app, &picker, at(later)).await.unwrap();
        assert_eq!(r.counts.planned, 0, "{later}");
    }
    assert_eq!(t.sink.messages_to("once@example.org").len(), 1);
    // Outside the window the missed day is not made up.
    let other = active(&t, "late@example.org").await;
    digest::run(&t.app, &picker, at("2026-11-28T14:30:00Z"))
        .await
        .unwrap();
    assert!(states(&t, other).await.is_empty());
    assert_eq!(states(&t, id).await.len(), 1);
    t.stop().await;
}

#[tokio::test]
async fn no_paper_is_mailed_twice_to_the_same_subscriber_across_days() {
    let t = TestApp::spawn().await;
    let id = active(&t, "reader@example.org").await;
    let picker = papers(5);
    digest::run(&t.app, &picker, at("2026-11-27T08:01:00Z"))
        .await
        .unwrap();
    digest::run(&t.app, &picker, at("2026-11-28T08:01:00Z"))
        .await
        .unwrap();
    let r = digest::run(&t.app, &picker, at("2026-11-29T08:01:00Z"))
        .await
        .unwrap();
    assert_eq!(
        r.counts.skipped, 1,
        "nothing new left on day three: no digest"
    );
    let sent = t.app.store.sent_paper_ids(id).await.unwrap();
    assert_eq!(sent.len(), 5);
    let mut seen = HashSet::new();
    for m in t.sink.messages_to("reader@example.org") {
        for link in crate::support::links_in(&m) {
            if let Some(pid) = link.strip_prefix("https://arxiv.org/abs/") {
                assert!(
                    seen.insert(pid.to_string()),
                    "{pid} mailed twice; messages: {:?}",
                    t.sink
                        .messages_to("reader@example.org")
                        .iter()
                        .map(|m| m
                            .text()
                            .lines()
                            .filter(|l| l.starts_with("Message-ID") || l.starts_with("Date"))
                            .collect::<Vec<_>>()
                            .join(" "))
                        .collect::<Vec<_>>()
                );
            }
        }
    }
    assert_eq!(seen.len(), 5);
    t.stop().await;
}

#[tokio::test]
async fn a_burst_of_hard_bounces_pauses_the_run() {
    let t = TestApp::spawn_with(&[("PAPERBOY__DIGEST__MAX_BOUNCE_PERCENT", "5")]).await;
    // One address in ten does not exist.
    for i in 0..100 {
        let local = if i % 10 == 3 { "perm" } else { "reader" };
        active(&t, &format!("{local}{i}@example.org")).await;
    }
    let r = digest::run(&t.app, &papers(3), at("2026-11-27T08:01:00Z"))
        .await
        .unwrap();
    assert_eq!(r.state, RunState::PausedErrors, "{:?}", r.note);
    assert!(r.note.unwrap().contains("hard-bounce rate"));
    assert!(
        r.counts.sent + r.counts.failed < 100,
        "the run stopped early"
    );
    t.stop().await;
}

#[tokio::test]
async fn one_click_completes_quickly_while_a_send_is_stalled() {
    let t = TestApp::spawn().await;
    active(&t, "slow@example.org").await;
    let manage = t.subscribe_and_confirm("quick@example.org").await;
    t.sink.set_stall(std::time::Duration::from_secs(3));
    let app = t.app.clone();
    let run =
        tokio::spawn(
            async move { digest::run(&app, &papers(3), at("2026-11-27T08:01:00Z")).await },
        );
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let started = std::time::Instant::now();
    let r = crate::support::client()
        .post(manage.replace("/manage/", "/unsubscribe/"))
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    run.await.unwrap().unwrap();
    t.sink.set_stall(std::time::Duration::ZERO);
    t.stop().await;
}

#[tokio::test]
async fn a_digest_carries_every_required_header_and_both_parts() {
    let t = TestApp::spawn().await;
    let id = active(&t, "hdr@example.org").await;
    digest::run(&t.app, &papers(3), at("2026-11-27T08:01:00Z"))
        .await
        .unwrap();
    let msg = &t.sink.wait_for("hdr@example.org", 1).await[0];
    let parsed = mail_parser::MessageParser::default()
        .parse(&msg.data)
        .unwrap();
    let ct = parsed.root_part().content_type().unwrap();
    assert_eq!(
        (ct.ctype(), ct.subtype()),
        ("multipart", Some("alternative"))
    );

    let sub = t.app.store.subscriber(id).await.unwrap();
    let token = t.app.links.manage_token(sub.id, sub.token_generation);
    let unsubscribe = t.app.links.unsubscribe_url(&token);
    let manage = t.app.links.manage_url(&token);
    assert_eq!(
        parsed.header_raw("List-Unsubscribe").unwrap().trim(),
        format!("<{unsubscribe}>")
    );
    assert_eq!(
        parsed.header_raw("List-Unsubscribe-Post").unwrap().trim(),
        "List-Unsubscribe=One-Click"
    );
    assert_eq!(
        parsed.header_raw("List-Id").unwrap().trim(),
        "Test digest <daily.paperboy.test>"
    );
    assert_eq!(
        parsed.header_raw("Auto-Submitted").unwrap().trim(),
        "auto-generated"
    );
    assert_eq!(
        parsed.subject().unwrap(),
        "3 papers on speculative decoding"
    );
    let id_header = parsed.message_id().unwrap();
    assert!(
        id_header.ends_with(".20261127@paperboy.test"),
        "{id_header}"
    );
    let raw = msg.text();
    let head: Vec<&str> = raw.lines().take_while(|l| !l.is_empty()).collect();
    for h in [
        "From:",
        "To:",
        "Subject:",
        "Date:",
        "Message-ID:",
        "List-Unsubscribe:",
        "List-Unsubscribe-Post:",
        "List-Id:",
    ] {
        assert_eq!(head.iter().filter(|l| l.starts_with(h)).count(), 1, "{h}");
    }
    assert!(raw.lines().all(|l| l.len() <= 998));

    let text = parsed.body_text(0).unwrap();
    let html = parsed.body_html(0).unwrap();
    // The preheader opens both parts: a visible summary, not titles.
    let preheader = text.lines().next().unwrap();
    assert_eq!(preheader, "3 with code · up to 43 upvotes");
    for s in [
        unsubscribe.as_str(),
        manage.as_str(),
        "Paper number 1",
        "Paper number 3",
        "https://arxiv.org/abs/2606.00001",
    ] {
        assert!(text.contains(s), "text part lacks {s}");
        assert!(html.contains(s), "html part lacks {s}");
    }
    assert!(html.contains(&format!(
        "<a href=\"{unsubscribe}\" style=\"color:#5b6168;\">Unsubscribe</a>"
    )));
    // In the HTML part it is the first text, visible: Gmail asks senders
    // not to hide content, so no `display:none` preheader.
    let body = &html[html.find("<body").unwrap()..];
    let first_text = body
        .split('>')
        .filter_map(|chunk| chunk.split('<').next())
        .find(|t| !t.trim().is_empty())
        .unwrap();
    assert_eq!(first_text, preheader);
    assert!(!html.contains("display:none"));
    // Every link points straight at its target: no tracking, safe schemes.
    for link in crate::support::extract_links(&html) {
        let u = url::Url::parse(&link).unwrap();
        assert!(matches!(u.scheme(), "https" | "http"), "{link}");
        assert!(
            ["arxiv.org", "github.com", "huggingface.co", "127.0.0.1"]
                .contains(&u.host_str().unwrap()),
            "{link}"
        );
    }
    t.stop().await;
}

#[tokio::test]
async fn hostile_paper_text_is_escaped_in_html_and_kept_out_of_headers() {
    let t = TestApp::spawn().await;
    active(&t, "xss@example.org").await;
    let mut evil = paper(
        1,
        "<script>alert(1)</script> & \"q\"\r\nBcc: victim@example.org",
    );
    evil.abstract_text = "<img src=x onerror=alert(1)> text".into();
    evil.project_page = Some("javascript:alert(1)".into());
    evil.github_repo = Some("javascript:alert(2)".into());
    let picker = FixedPicker(vec![evil]);
    digest::run(&t.app, &picker, at("2026-11-27T08:01:00Z"))
        .await
        .unwrap();
    let msg = &t.sink.wait_for("xss@example.org", 1).await[0];
    let parsed = mail_parser::MessageParser::default()
        .parse(&msg.data)
        .unwrap();
    assert!(parsed.header("Bcc").is_none());
    let html = parsed.body_html(0).unwrap();
    assert!(!html.contains("<script>") && !html.contains("<img"));
    assert!(html.contains("&lt;script&gt;"));
    assert!(!html.contains("javascript:"));
    let text = parsed.body_text(0).unwrap();
    assert!(
        text.contains("<script>alert(1)</script> & \"q\""),
        "text part is literal"
    );
    t.stop().await;
}

/// Verifies `message` with dkimpy, an independent implementation,
/// answering the DNS lookup with the test key. Fails the test when
/// python3 or dkimpy is missing: `scripts/test` installs them.
fn dkimpy_verifies(message: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("msg.eml");
    std::fs::write(&path, message).unwrap();
    let pubkey = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/dkim/test-key.pub.b64"
    ))
    .unwrap();
    let script = format!(
        "import dkim,sys\nmsg=open(sys.argv[1],'rb').read()\n\
         dns=lambda name, timeout=5: b'v=DKIM1; k=rsa; p={}' if name==b'test._domainkey.paperboy.test.' else None\n\
         print('PASS' if dkim.verify(msg, dnsfunc=dns, minkey=1024) else 'FAIL')\n",
        pubkey.trim()
    );
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .arg(&path)
        .output()
        .expect("python3 is needed for the DKIM cross-check (scripts/test installs dkimpy)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "dkimpy failed to run (install it with `pip install dkimpy`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.trim() == "PASS"
}

#[tokio::test]
async fn a_dkim_signed_digest_verifies_with_dkimpy_and_tampering_breaks_it() {
    let key = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/dkim/test-key.pem"
    );
    let t = TestApp::spawn_with(&[
        ("PAPERBOY__MAIL__DKIM__ENABLED", "true"),
        ("PAPERBOY__MAIL__DKIM__SELECTOR", "test"),
        ("PAPERBOY__MAIL__DKIM__DOMAIN", "paperboy.test"),
        ("PAPERBOY__MAIL__DKIM__PRIVATE_KEY_FILE", key),
    ])
    .await;
    active(&t, "signed@example.org").await;
    digest::run(&t.app, &papers(3), at("2026-11-27T08:01:00Z"))
        .await
        .unwrap();
    let msg = t.sink.wait_for("signed@example.org", 1).await.remove(0);
    let raw = msg.text();
    let sig_block: String = raw
        .split("\r\n")
        .skip_while(|l| !l.starts_with("DKIM-Signature:"))
        .take_while(|l| {
            l.starts_with("DKIM-Signature:") || l.starts_with(' ') || l.starts_with('\t')
        })
        .collect();
    assert!(sig_block.contains("c=relaxed/relaxed"), "{sig_block}");
    for h in [
        "list-unsubscribe",
        "list-unsubscribe-post",
        "list-id",
        "message-id",
    ] {
        assert!(
            sig_block.to_ascii_lowercase().contains(h),
            "h= lacks {h}: {sig_block}"
        );
    }
    assert!(
        dkimpy_verifies(&msg.data),
        "dkimpy rejects paperboy's signature"
    );

    let tampered = raw.replacen("/unsubscribe/", "/unsubscribe/x", 1);
    assert!(
        !dkimpy_verifies(tampered.as_bytes()),
        "a changed List-Unsubscribe must break the signature"
    );
    t.stop().await;
}

/// Compares `actual` with `tests/golden/{name}`; `UPDATE_GOLDEN=1`
/// rewrites the file instead (review the diff before committing it).
fn golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing {}; run with UPDATE_GOLDEN=1", path.display()));
    assert_eq!(actual, expected, "{name} differs from the golden file");
}

#[tokio::test]
async fn the_rendered_digest_matches_the_golden_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::support::test_config(
        dir.path(),
        None,
        "https://paperboy.example.org",
        &[(
            "PAPERBOY__SECURITY__SECRET_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIj",
        )],
    );
    let app = paperboy::app::App::build(config, Default::default())
        .await
        .unwrap();
    let id = add_active(
        &app,
        "golden@example.org",
        &["speculative decoding", "RAG"],
        5,
    )
    .await;
    let sub = app.store.subscriber(id).await.unwrap();
    let mut p1 = paper(1, "Speculative Decoding with <Draft> Heads & Trees");
    p1.ai_summary = Some("A draft model proposes tokens that the target model verifies in parallel, doubling throughput without changing outputs.".into());
    let mut p2 = paper(2, "Retrieval-Augmented Generation at Scale");
    p2.authors.truncate(2);
    p2.github_repo = None;
    p2.upvotes = None;
    let picks = vec![
        DigestPick {
            paper: p1.into(),
            score: 3.2,
            reason: "On speculative decoding · 41 upvotes".into(),
            topic: Some("speculative decoding".into()),
        },
        DigestPick {
            paper: p2.into(),
            score: 2.1,
            reason: "On RAG".into(),
            topic: Some("RAG".into()),
        },
    ];
    let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
    let mail = digest::render_digest(&app, &sub, &picks, date, Span::Day).unwrap();
    assert_eq!(mail.subject, "2 papers on speculative decoding and RAG");
    golden("digest.txt", &mail.text);
    golden("digest.html", &mail.html);
    // Rendering is deterministic.
    assert_eq!(
        digest::render_digest(&app, &sub, &picks, date, Span::Day).unwrap(),
        mail
    );
}

#[tokio::test]
async fn end_to_end_subscribe_confirm_digest_and_one_click_from_the_header() {
    // The whole path with the real ranker over the recorded HF list.
    let now = at("2026-06-12T06:00:00Z");
    let (t, clock) = TestApp::spawn_at(now, &[]).await;
    t.seed_hf_fixture().await;
    let r = t
        .subscribe(&[
            ("email", "e2e@example.org"),
            ("topics", "reinforcement learning\nLLM agents"),
            ("send_time", "08:00"),
            ("time_zone", "UTC"),
        ])
        .await;
    assert_eq!(r.status(), 200);
    let link = t.confirmation_link("e2e@example.org", 1).await;
    assert!(t
        .client
        .get(&link)
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    assert_eq!(
        t.state_of("e2e@example.org").await.as_deref(),
        Some("pending")
    );
    t.client.post(&link).send().await.unwrap();
    assert_eq!(
        t.state_of("e2e@example.org").await.as_deref(),
        Some("active")
    );

    let send_at = at("2026-06-12T08:00:30Z");
    clock.set(send_at);
    let picker = digest::WindowPickers::new();
    let report = digest::run(&t.app, &picker, send_at).await.unwrap();
    assert_eq!((report.counts.planned, report.counts.sent), (1, 1));

    let msgs = t.sink.wait_for("e2e@example.org", 2).await;
    let digest_mail = &msgs[1];
    let parsed = mail_parser::MessageParser::default()
        .parse(&digest_mail.data)
        .unwrap();
    let subject = parsed.subject().unwrap().to_string();
    assert!(
        subject.contains(" on reinforcement learning") || subject.contains(" on LLM agents"),
        "{subject}"
    );
    let text = parsed.body_text(0).unwrap().into_owned();
    assert!(
        text.contains("\n   On reinforcement learning") || text.contains("\n   On LLM agents"),
        "each pick says why: {text}"
    );
    let header = parsed
        .header_raw("List-Unsubscribe")
        .unwrap()
        .trim()
        .to_string();
    let one_click = header
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string();
    assert!(one_click.starts_with(&t.base_url));

    // The mailbox provider's one-click POST, from the header itself.
    let r = crate::support::client()
        .post(&one_click)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        t.state_of("e2e@example.org").await.as_deref(),
        Some("unsubscribed")
    );

    // The next day's run sends nothing.
    let next = at("2026-06-13T08:00:30Z");
    clock.set(next);
    let picker = digest::WindowPickers::new();
    let report = digest::run(&t.app, &picker, next).await.unwrap();
    assert_eq!((report.counts.planned, report.counts.sent), (0, 0));
    assert_eq!(t.sink.messages_to("e2e@example.org").len(), 2);
    t.stop().await;
}

#[tokio::test]
async fn a_relay_that_stalls_past_the_timeout_leaves_an_unknown_outcome_resent_once() {
    let t = TestApp::spawn_with(&[
        ("PAPERBOY__MAIL__SMTP__TIMEOUT_SECS", "1"),
        ("PAPERBOY__DIGEST__UNKNOWN_POLICY", "resend"),
    ])
    .await;
    let id = active(&t, "stall@example.org").await;
    let picker = papers(3);
    t.sink.set_stall(std::time::Duration::from_secs(3));
    let r = digest::run(&t.app, &picker, at("2026-11-27T08:01:00Z"))
        .await
        .unwrap();
    assert_eq!((r.counts.sent, r.counts.unknown), (0, 1), "{r:?}");
    assert_eq!(states(&t, id).await[0].1, "unknown");
    // The relay did take it, late.
    t.sink.wait_for("stall@example.org", 1).await;
    t.sink.set_stall(std::time::Duration::ZERO);

    // Not before the backoff (base 5 min), then exactly once.
    let r = digest::run(&t.app, &picker, at("2026-11-27T08:02:00Z"))
        .await
        .unwrap();
    assert_eq!(r.counts.sent, 0, "{r:?}");
    let r = digest::run(&t.app, &picker, at("2026-11-27T08:30:00Z"))
        .await
        .unwrap();
    assert_eq!(r.counts.sent, 1, "the single resend");
    let got = t.sink.wait_for("stall@example.org", 2).await;
    assert_eq!(got[0].data, got[1].data, "byte-identical resend");
    assert_eq!(states(&t, id).await[0].1, "sent");
    digest::run(&t.app, &picker, at("2026-11-27T10:10:00Z"))
        .await
        .unwrap();
    assert_eq!(
        t.sink.messages_to("stall@example.org").len(),
        2,
        "never a third copy"
    );
    t.stop().await;
}

/// "done" means nothing due is left: a run that finds a delivery still
/// leased (here by a run that is still going) says so instead.
#[tokio::test]
async fn a_run_that_leaves_a_leased_delivery_reports_incomplete_not_done() {
    let t = TestApp::spawn().await;
    let busy = active(&t, "busy@example.org").await;
    active(&t, "free@example.org").await;
    sqlx::query(
        "INSERT INTO deliveries (subscriber_id, digest_date, state, due_at, next_attempt_at, \
         lease_until, created_at) VALUES (?, '2026-11-27', 'sending', '2026-11-27T08:00:00.000Z', \
         '2026-11-27T08:00:00.000Z', '2026-11-27T08:06:00.000Z', '2026-11-27T08:00:00.000Z')",
    )
    .bind(busy.0)
    .execute(t.app.store.pool())
    .await
    .unwrap();
    let r = digest::run(&t.app, &papers(3), at("2026-11-27T08:01:00Z"))
        .await
        .unwrap();
    assert_eq!(r.counts.sent, 1);
    assert_eq!(r.state, digest::RunState::Incomplete);
    let note = r.note.unwrap();
    assert!(note.contains("1 in flight"), "{note}");
    // Once the lease has run out, the next run recovers and finishes it.
    let r = digest::run(&t.app, &papers(3), at("2026-11-27T08:07:00Z"))
        .await
        .unwrap();
    assert_eq!((r.counts.sent, r.state), (1, digest::RunState::Done));
    t.stop().await;
}

/// The send path awaits its durable "send started" mark only before the
/// message data (the relay can take a message only at the data's end):
/// a mark that fails leaves nothing at the relay, a mark that is slow
/// still sends exactly one message, and a 550 at RCPT is the SMTP outcome
/// whatever the mark did.
#[tokio::test]
async fn a_send_whose_start_mark_fails_never_reaches_the_relay() {
    let t = TestApp::spawn().await;
    let composed = |to: &str| paperboy::deliver::Composed {
        envelope: lettre::address::Envelope::new(
            Some("digest@paperboy.test".parse().unwrap()),
            vec![to.parse().unwrap()],
        )
        .unwrap(),
        bytes: b"Subject: hello\r\n\r\nbody\r\n".to_vec(),
        message_id: "<m@paperboy.test>".into(),
    };
    // Promptly: a QUIT after DATA's 354 would be read as message data
    // and wait for a reply until the relay's own timeout.
    let failed = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        t.app
            .transport
            .send_when(&composed("gate@example.org"), async {
                anyhow::bail!("the mark did not commit")
            }),
    )
    .await
    .expect("a failed mark ends the session at once");
    assert!(failed.is_err(), "the mark's error is the outer error");
    assert_eq!(t.sink.data_ends(), 0, "no message data reached the relay");

    let slow = t
        .app
        .transport
        .send_when(&composed("gate@example.org"), async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            Ok(())
        })
        .await
        .expect("the mark committed");
    assert!(slow.is_ok(), "{slow:?}");
    assert_eq!(t.sink.wait_for("gate@example.org", 1).await.len(), 1);

    let refused = t
        .app
        .transport
        .send_when(&composed("perm@example.org"), async { Ok(()) })
        .await
        .expect("the mark committed");
    assert!(
        matches!(
            refused,
            Err(paperboy::deliver::DeliverError::Permanent { code: 550, .. })
        ),
        "{refused:?}"
    );
    assert_eq!(t.sink.data_ends(), 1, "only the one accepted message");
    t.stop().await;
}

/// A relay that takes one message per connection, then closes it: the
/// first reply of the next session on that connection would never come.
async fn one_message_per_connection_relay() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 relay.test\r\n").await?;
                let mut in_data = false;
                while let Some(line) = lines.next_line().await? {
                    let reply: &[u8] = if in_data {
                        if line != "." {
                            continue;
                        }
                        count.fetch_add(1, Ordering::SeqCst);
                        write.write_all(b"250 2.0.0 queued\r\n").await?;
                        // One message per connection.
                        return Ok::<_, std::io::Error>(());
                    } else if line.starts_with("EHLO") {
                        b"250-relay.test\r\n250 8BITMIME\r\n"
                    } else if line == "DATA" {
                        in_data = true;
                        b"354 go ahead\r\n"
                    } else if line == "QUIT" {
                        b"221 bye\r\n"
                    } else {
                        b"250 ok\r\n"
                    };
                    write.write_all(reply).await?;
                }
                Ok(())
            });
        }
    });
    (addr, accepted)
}

/// Connections that just finished a message are reused without a NOOP;
/// when the relay closed one meanwhile, the message goes out on a new
/// connection in the same send, never as a failure.
#[tokio::test]
async fn a_reused_connection_the_relay_closed_costs_a_reconnect_not_the_message() {
    let (relay, accepted) = one_message_per_connection_relay().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::support::test_config(dir.path(), Some(relay), "http://127.0.0.1:1", &[]);
    let transport = paperboy::deliver::Transport::from_config(&cfg).unwrap();
    let message = paperboy::deliver::Composed {
        envelope: lettre::address::Envelope::new(
            Some("digest@paperboy.test".parse().unwrap()),
            vec!["reader@example.org".parse().unwrap()],
        )
        .unwrap(),
        bytes: b"Subject: hello\r\n\r\nbody\r\n".to_vec(),
        message_id: "<m@paperboy.test>".into(),
    };
    for n in 1..=3 {
        let sent = transport.send(&message).await;
        assert!(sent.is_ok(), "message {n}: {sent:?}");
        assert_eq!(accepted.load(Ordering::SeqCst), n);
    }
}

/// Lines starting with a dot reach the relay's reader unchanged (the
/// transport dot-stuffs them, the relay removes the stuffing), and the
/// message ends where it ended: no empty line added before the final dot.
#[tokio::test]
async fn lines_starting_with_a_dot_arrive_as_they_were_written() {
    let sink = crate::support::SmtpSink::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::support::test_config(dir.path(), Some(sink.addr), "http://127.0.0.1:1", &[]);
    let transport = paperboy::deliver::Transport::from_config(&cfg).unwrap();
    let body = ".first\r\n..second\r\n.\r\nlast line. with a dot\r\n";
    let message = paperboy::deliver::Composed {
        envelope: lettre::address::Envelope::new(
            Some("digest@paperboy.test".parse().unwrap()),
            vec!["reader@example.org".parse().unwrap()],
        )
        .unwrap(),
        bytes: format!("Subject: dots\r\n\r\n{body}").into_bytes(),
        message_id: "<dots@paperboy.test>".into(),
    };
    transport.send(&message).await.unwrap();
    let got = sink.wait_for("reader@example.org", 1).await;
    let text = got[0].text();
    assert_eq!(text, format!("Subject: dots\r\n\r\n{body}"));
}
