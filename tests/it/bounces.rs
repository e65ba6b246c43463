//! Asynchronous bounces and complaints: provider webhooks with the
//! recorded fixtures in `tests/fixtures/webhooks/` (SNS signatures checked
//! against a self-made certificate served on loopback), reports aimed at
//! the digests a test sent (their VERP envelope sender and Message-ID put
//! in place of the fixtures' placeholders), forged reports of every shape
//! (which change nothing), and the end-to-end loop: a digest leaves with a
//! VERP envelope sender, a bounce or complaint about it arrives, and the
//! next run skips that reader.

use crate::digest::{add_active, papers};
use crate::support::TestApp;
use chrono::{DateTime, Utc};
use paperboy::bounces;
use paperboy::digest;
use paperboy::domain::{EmailAddress, SubscriberId};
use paperboy::store::subscribers::SuppressionReason;
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "test-webhook-secret-0123456789";
const CERT_PATH: &str = "/SimpleNotificationService-test.pem";

pub(crate) fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub(crate) fn fixture(dir: &str, name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{dir}/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Serves the test signing certificate, as SNS serves its own.
async fn cert_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(CERT_PATH))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(fixture("webhooks", "sns-test-cert.pem")),
        )
        .mount(&server)
        .await;
    server
}

/// A running paperboy with webhooks on (secret from a file) and VERP on.
async fn app_with_webhooks(
    certs: &MockServer,
    now: DateTime<Utc>,
    extra: &[(&str, &str)],
) -> (TestApp, tempfile::TempDir, paperboy::clock::ManualClock) {
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = secrets.path().join("webhook-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let base = format!("{}/", certs.uri());
    let secret_file = secret_file.display().to_string();
    let mut env = vec![
        ("PAPERBOY__BOUNCES__WEBHOOKS__ENABLED", "true"),
        (
            "PAPERBOY__BOUNCES__WEBHOOKS__SECRET_FILE",
            secret_file.as_str(),
        ),
        (
            "PAPERBOY__BOUNCES__WEBHOOKS__SNS_CERT_BASE_URL",
            base.as_str(),
        ),
        ("PAPERBOY__BOUNCES__VERP_ADDRESS", "bounces@paperboy.test"),
    ];
    env.extend_from_slice(extra);
    let (t, clock) = TestApp::spawn_at(now, &env).await;
    (t, secrets, clock)
}

/// The SNS string to sign for a Notification (written out here, not
/// taken from the code under test).
fn sns_string_to_sign(v: &Value) -> String {
    let mut s = String::new();
    let fields: &[&str] = if v["Type"] == "Notification" {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    for &k in fields {
        if let Some(x) = v.get(k).and_then(Value::as_str) {
            s.push_str(&format!("{k}\n{x}\n"));
        }
    }
    s
}

/// An SNS envelope from a fixture, its SES `mail.source` optionally
/// replaced, pointed at the test certificate and signed with its key.
fn signed_sns(certs: &MockServer, name: &str, source: Option<&str>) -> Value {
    signed_sns_text(certs, &fixture("webhooks", name), source)
}

/// [`signed_sns`] of an SNS envelope given as text.
fn signed_sns_text(certs: &MockServer, text: &str, source: Option<&str>) -> Value {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};
    let mut v: Value = serde_json::from_str(text).unwrap();
    if let Some(src) = source {
        let mut msg: Value = serde_json::from_str(v["Message"].as_str().unwrap()).unwrap();
        msg["mail"]["source"] = Value::String(src.to_string());
        v["Message"] = Value::String(msg.to_string());
    }
    v["SigningCertURL"] = Value::String(format!("{}{CERT_PATH}", certs.uri()));
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(&fixture("webhooks", "sns-test-key.pem")).unwrap();
    let signer = rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(key);
    let sig = signer.sign(sns_string_to_sign(&v).as_bytes());
    use base64::Engine;
    v["Signature"] =
        Value::String(base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()));
    v
}

async fn post(t: &TestApp, provider: &str, secret: &str, body: &str) -> (u16, String) {
    let r = t
        .client
        .post(t.url(&format!("/webhooks/{provider}/{secret}")))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn post_ok(t: &TestApp, provider: &str, body: &str) -> Value {
    let (status, text) = post(t, provider, SECRET, body).await;
    assert_eq!(status, 200, "{provider}: {text}");
    serde_json::from_str(&text).unwrap()
}

pub(crate) async fn suppression(t: &TestApp, email: &str) -> Option<SuppressionReason> {
    t.app
        .store
        .suppression(&EmailAddress::parse(email).unwrap())
        .await
        .unwrap()
}

pub(crate) async fn events(t: &TestApp, id: SubscriberId) -> Vec<Value> {
    let export = t.app.store.export_subscriber(id).await.unwrap();
    export["bounces"].as_array().unwrap().clone()
}

/// The reader whose mailbox is full in these tests (the fixtures' `full@…`;
/// the test SMTP server refuses local parts starting with "full").
const QUOTA: &str = "quota@example.net";

/// The fixtures' stand-in for a VERP envelope sender.
pub(crate) const PLACEHOLDER: &str = "bounces+DELIVERY.MAC@paperboy.example.org";

/// The fixtures' stand-ins for a digest's Message-ID (without brackets).
const FIXTURE_MIDS: [&str; 3] = [
    "abcdefghijklmnopqrstuvwxyz.20261201@paperboy.example.org",
    "bbbbbbbbbbbbbbbbbbbbbbbbbb.20261201@paperboy.example.org",
    "cccccccccccccccccccccccccc.20261201@paperboy.example.org",
];

/// What paperboy sent one reader: the envelope sender (VERP) and the
/// Message-ID (`<…>`) of their first digest.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub verp: String,
    pub message_id: String,
}

pub(crate) fn sent_to(t: &TestApp, rcpt: &str) -> Sent {
    sent_among(&t.sink.messages_to(rcpt)).unwrap_or_else(|| panic!("no digest was sent to {rcpt}"))
}

/// The first digest among `messages` (its Message-ID is tagged with its
/// date: `<mac.20261201@…>`; confirmation mails are tagged otherwise).
pub(crate) fn sent_among(messages: &[crate::support::Received]) -> Option<Sent> {
    messages.iter().find_map(|m| {
        let parsed = mail_parser::MessageParser::default().parse(&m.data)?;
        let mid = parsed.message_id()?;
        let tag = mid.split('@').next()?.rsplit('.').next()?;
        (tag.len() == 8 && tag.bytes().all(|b| b.is_ascii_digit())).then(|| Sent {
            verp: m.from.clone(),
            message_id: format!("<{mid}>"),
        })
    })
}

/// A fixture about the message `sent`: its placeholders replaced by that
/// digest's VERP address and Message-ID.
pub(crate) fn aimed(text: &str, sent: &Sent) -> String {
    let inner = sent.message_id.trim_matches(['<', '>']);
    FIXTURE_MIDS
        .iter()
        .fold(text.replace(PLACEHOLDER, &sent.verp), |t, mid| {
            t.replace(mid, inner)
        })
}

/// A Postfix DSN ("User unknown") for `rcpt`, delivered to `to`, quoting
/// the Message-ID `mid`.
pub(crate) fn postfix_dsn(rcpt: &str, to: &str, mid: &str) -> String {
    fixture("mailbox", "postfix-hard-5.1.1.eml")
        .replace(PLACEHOLDER, to)
        .replace("gone@example.net", rcpt)
        .replace(&format!("<{}>", FIXTURE_MIDS[0]), mid)
}

/// A Postmark webhook fixture carrying the returned message (Postmark's
/// "Include bounce content").
fn postmark_with_content(name: &str, content: &str) -> String {
    let mut v: Value = serde_json::from_str(&fixture("webhooks", name)).unwrap();
    v["Content"] = Value::String(content.to_string());
    v.to_string()
}

/// SendGrid's batch, each event's `smtp-id` set to the Message-ID of the
/// digest sent to its address (events about other addresses keep theirs).
fn sendgrid_aimed(t: &TestApp) -> String {
    let text = fixture("webhooks", "sendgrid-events.json").replace("full@example.net", QUOTA);
    let mut v: Value = serde_json::from_str(&text).unwrap();
    for e in v.as_array_mut().unwrap() {
        let rcpt = e["email"].as_str().unwrap().to_string();
        if e.get("smtp-id").is_some() && !t.sink.messages_to(&rcpt).is_empty() {
            e["smtp-id"] = Value::String(sent_to(t, &rcpt).message_id);
        }
    }
    v.to_string()
}

/// Feeds one mail-borne report through the mailbox's parser and records
/// its events, as a poll would.
pub(crate) async fn record_mail(t: &TestApp, raw: &str) -> Vec<bounces::Outcome> {
    let parsed = bounces::report::parse(raw.as_bytes()).unwrap();
    let mut out = Vec::new();
    for e in bounces::mailbox::events_of(&parsed, raw.as_bytes()) {
        out.push(bounces::record(&t.app.bounces(), &e).await.unwrap());
    }
    out
}

async fn metrics(t: &TestApp) -> String {
    t.client
        .get(t.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn each_provider_reports_hard_and_soft_bounces_and_complaints_about_its_digests() {
    let certs = cert_server().await;
    let now = at("2026-12-01T09:00:00Z");
    let (t, _s, _clock) = app_with_webhooks(
        &certs,
        now,
        &[("PAPERBOY__BOUNCES__SOFT_BOUNCE_LIMIT", "10")],
    )
    .await;
    let gone = add_active(&t.app, "gone@example.net", &["rag"], 3).await;
    let full = add_active(&t.app, QUOTA, &["rag"], 3).await;
    let angry = add_active(&t.app, "angry@example.net", &["rag"], 3).await;
    let reader = add_active(&t.app, "reader@example.net", &["rag"], 3).await;
    let r = digest::run(&t.app, &papers(9), now).await.unwrap();
    assert_eq!(r.counts.sent, 4);
    let to = |rcpt: &str| sent_to(&t, rcpt);
    let dsn = |rcpt: &str| postfix_dsn(rcpt, "pm-bounces@postmark.test", &to(rcpt).message_id);
    let arf = aimed(
        &fixture("mailbox", "yahoo-arf-abuse.eml"),
        &to("angry@example.net"),
    )
    .replace("reader@yahoo.com", "angry@example.net");

    let hard = [
        (
            "ses",
            signed_sns_text(
                &certs,
                &aimed(
                    &fixture("webhooks", "ses-bounce-permanent.json"),
                    &to("gone@example.net"),
                ),
                None,
            )
            .to_string(),
        ),
        (
            "postmark",
            postmark_with_content("postmark-bounce-hard.json", &dsn("gone@example.net")),
        ),
        (
            "mailgun",
            aimed(
                &fixture("webhooks", "mailgun-failed-permanent.json"),
                &to("gone@example.net"),
            ),
        ),
    ];
    for (provider, body) in hard {
        let r = post_ok(&t, provider, &body).await;
        assert_eq!(r["recorded"], 1, "{provider}: {r}");
    }
    assert_eq!(
        suppression(&t, "gone@example.net").await,
        Some(SuppressionReason::HardBounce)
    );

    let soft = [
        (
            "ses",
            signed_sns_text(
                &certs,
                &aimed(
                    &fixture("webhooks", "ses-bounce-transient.json"),
                    &to(QUOTA),
                )
                .replace("full@example.net", QUOTA),
                None,
            )
            .to_string(),
        ),
        (
            "postmark",
            postmark_with_content("postmark-bounce-soft.json", &dsn(QUOTA))
                .replace("full@example.net", QUOTA),
        ),
        (
            "mailgun",
            aimed(
                &fixture("webhooks", "mailgun-failed-temporary.json"),
                &to(QUOTA),
            )
            .replace("full@example.net", QUOTA),
        ),
    ];
    for (provider, body) in soft {
        let r = post_ok(&t, provider, &body).await;
        assert_eq!(r["recorded"], 1, "{provider}: {r}");
    }
    assert_eq!(
        suppression(&t, QUOTA).await,
        None,
        "soft bounces are only counted"
    );

    let complaints = [
        (
            "ses",
            signed_sns_text(
                &certs,
                &aimed(
                    &fixture("webhooks", "ses-complaint.json"),
                    &to("angry@example.net"),
                ),
                None,
            )
            .to_string(),
        ),
        (
            "postmark",
            postmark_with_content("postmark-spam-complaint.json", &arf),
        ),
        (
            "mailgun",
            aimed(
                &fixture("webhooks", "mailgun-complained.json"),
                &to("angry@example.net"),
            ),
        ),
    ];
    for (provider, body) in complaints {
        let r = post_ok(&t, provider, &body).await;
        assert_eq!(r["recorded"], 1, "{provider}: {r}");
    }
    // SendGrid posts a batch: a bounce, a deferral, a delivery, a spam
    // report and an open. The bounce and the deferral quote the digest's
    // Message-ID (`smtp-id`); its spam reports quote nothing of the
    // message, so they name no digest and change nothing.
    let r = post_ok(&t, "sendgrid", &sendgrid_aimed(&t)).await;
    assert_eq!(
        (
            r["events"].as_u64(),
            r["recorded"].as_u64(),
            r["unmatched"].as_u64()
        ),
        (Some(3), Some(2), Some(1)),
        "{r}"
    );

    let s = t.app.store.subscriber(angry).await.unwrap();
    assert_eq!(s.state, paperboy::domain::SubscriberState::Unsubscribed);
    assert_eq!(
        suppression(&t, "angry@example.net").await,
        Some(SuppressionReason::Complaint)
    );
    assert_eq!(events(&t, gone).await.len(), 4);
    assert_eq!(events(&t, full).await.len(), 4);
    assert_eq!(events(&t, angry).await.len(), 3);
    assert!(events(&t, reader).await.is_empty());
    assert_eq!(suppression(&t, "reader@example.net").await, None);
    let e = &events(&t, gone).await[0];
    assert_eq!(
        (
            e["kind"].as_str(),
            e["source"].as_str(),
            e["status"].as_str(),
            e["digest_date"].as_str()
        ),
        (
            Some("hard_bounce"),
            Some("ses"),
            Some("5.1.1"),
            Some("2026-12-01")
        )
    );

    // Duplicates change nothing.
    let again = post_ok(
        &t,
        "postmark",
        &postmark_with_content("postmark-bounce-hard.json", &dsn("gone@example.net")),
    )
    .await;
    assert_eq!(
        (again["recorded"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    let again = post_ok(&t, "sendgrid", &sendgrid_aimed(&t)).await;
    assert_eq!(again["duplicates"], 2, "{again}");
    assert_eq!(events(&t, gone).await.len(), 4);

    let metrics = metrics(&t).await;
    assert!(
        metrics.contains("paperboy_bounces_total{type=\"hard\"} 4"),
        "{metrics}"
    );
    assert!(metrics.contains("paperboy_bounces_total{type=\"soft\"} 4"));
    assert!(metrics.contains("paperboy_complaints_total{source=\"all\"} 3"));
    assert!(metrics.contains("paperboy_bounce_reports_ignored_total{reason=\"duplicate\"} 3"));
    assert!(metrics.contains("paperboy_bounce_reports_ignored_total{reason=\"unmatched\"} 2"));
    t.stop().await;
}

/// Forged reports of every shape: to the bare bounce address (no VERP
/// token) naming a reader paperboy never mailed; quoting a Message-ID
/// paperboy never issued, or one of paperboy's shape with a forged mac, or
/// a genuine one of another reader's digest; with a forged VERP mac. None
/// of them changes anyone; the genuine report beside them does.
#[tokio::test]
async fn forged_bounce_reports_of_every_shape_suppress_nobody() {
    let day = at("2026-12-01T08:00:00Z");
    let (t, _clock) = TestApp::spawn_at(
        day,
        &[("PAPERBOY__BOUNCES__VERP_ADDRESS", "bounces@paperboy.test")],
    )
    .await;
    let mailed = add_active(&t.app, "mailed@example.net", &["rag"], 3).await;
    let other = add_active(&t.app, "other@example.net", &["rag"], 3).await;
    assert_eq!(
        digest::run(&t.app, &papers(9), day)
            .await
            .unwrap()
            .counts
            .sent,
        2
    );
    // Subscribed after the run: never mailed.
    let victim = add_active(&t.app, "victim@example.net", &["rag"], 3).await;
    let real = sent_to(&t, "mailed@example.net");
    let bare = "bounces@paperboy.test";
    let mut forged_mac = real.message_id.clone();
    let flipped = if &forged_mac[1..2] == "a" { "b" } else { "a" };
    forged_mac.replace_range(1..2, flipped);
    let other_day = real.message_id.replace(".20261201@", ".20261202@");
    let cases = [
        (
            "bare address, unknown Message-ID, never-mailed reader",
            postfix_dsn("victim@example.net", bare, "<forged.20261201@evil.test>"),
        ),
        (
            "bare address, no Message-ID quoted",
            postfix_dsn("victim@example.net", bare, "<>").replace("Message-ID: <>\n", ""),
        ),
        (
            "paperboy's shape with a forged mac",
            postfix_dsn("mailed@example.net", bare, &forged_mac),
        ),
        (
            "a genuine Message-ID of another day",
            postfix_dsn("mailed@example.net", bare, &other_day),
        ),
        (
            "another reader's genuine Message-ID",
            postfix_dsn("victim@example.net", bare, &real.message_id),
        ),
        (
            "another reader's genuine Message-ID, mailed reader named",
            postfix_dsn("other@example.net", bare, &real.message_id),
        ),
    ];
    for (what, raw) in &cases {
        let outcomes = record_mail(&t, raw).await;
        assert_eq!(outcomes, vec![bounces::Outcome::Unmatched], "{what}");
    }
    let forged_verp = postfix_dsn(
        "victim@example.net",
        "bounces+1.aaaaaaaaaaaaaaaa@paperboy.test",
        "<x@y.test>",
    );
    assert_eq!(
        record_mail(&t, &forged_verp).await,
        vec![bounces::Outcome::Forged]
    );
    for (id, email) in [
        (victim, "victim@example.net"),
        (mailed, "mailed@example.net"),
        (other, "other@example.net"),
    ] {
        assert_eq!(suppression(&t, email).await, None, "{email}");
        assert!(events(&t, id).await.is_empty(), "{email}");
        let s = t.app.store.subscriber(id).await.unwrap();
        assert_eq!(s.state, paperboy::domain::SubscriberState::Active);
    }

    // The genuine report, to the bare address: its Message-ID is the one
    // paperboy gave the failed recipient's digest.
    let genuine = postfix_dsn("mailed@example.net", bare, &real.message_id);
    assert!(matches!(
        record_mail(&t, &genuine).await[..],
        [bounces::Outcome::Applied(_)]
    ));
    assert_eq!(
        suppression(&t, "mailed@example.net").await,
        Some(SuppressionReason::HardBounce)
    );
    assert_eq!(events(&t, mailed).await[0]["digest_date"], "2026-12-01");
    t.stop().await;
}

/// Each provider's payload names a reader but no message paperboy sent
/// (the fixtures quote placeholder Message-IDs and envelope senders):
/// authentic requests, and nothing changes.
#[tokio::test]
async fn webhooks_that_name_a_reader_but_no_message_paperboy_sent_change_nothing() {
    let certs = cert_server().await;
    let (t, _s, _clock) = app_with_webhooks(&certs, at("2026-12-01T09:00:00Z"), &[]).await;
    let mut readers = Vec::new();
    for email in ["gone@example.net", "full@example.net", "angry@example.net"] {
        readers.push((email, add_active(&t.app, email, &["rag"], 3).await));
    }
    let bodies = [
        (
            "ses",
            signed_sns(
                &certs,
                "ses-bounce-permanent.json",
                Some("bounces@paperboy.test"),
            )
            .to_string(),
        ),
        (
            "ses",
            signed_sns(&certs, "ses-complaint.json", Some("digest@paperboy.test")).to_string(),
        ),
        ("postmark", fixture("webhooks", "postmark-bounce-hard.json")),
        (
            "postmark",
            fixture("webhooks", "postmark-spam-complaint.json"),
        ),
        (
            "postmark",
            postmark_with_content(
                "postmark-bounce-hard.json",
                &postfix_dsn(
                    "gone@example.net",
                    "pm@postmark.test",
                    "<x.20261201@paperboy.test>",
                ),
            ),
        ),
        ("sendgrid", fixture("webhooks", "sendgrid-events.json")),
        (
            "mailgun",
            fixture("webhooks", "mailgun-failed-permanent.json")
                .replace(PLACEHOLDER, "bounces@paperboy.test"),
        ),
        (
            "mailgun",
            fixture("webhooks", "mailgun-complained.json")
                .replace(PLACEHOLDER, "bounces@paperboy.test"),
        ),
    ];
    for (provider, body) in &bodies {
        let r = post_ok(&t, provider, body).await;
        assert_eq!(r["recorded"], 0, "{provider}: {r}");
        assert_eq!(r["unmatched"], r["events"], "{provider}: {r}");
    }
    for (email, id) in readers {
        assert_eq!(suppression(&t, email).await, None, "{email}");
        assert!(events(&t, id).await.is_empty(), "{email}");
        let s = t.app.store.subscriber(id).await.unwrap();
        assert_eq!(
            s.state,
            paperboy::domain::SubscriberState::Active,
            "{email}"
        );
    }
    t.stop().await;
}

#[tokio::test]
async fn forged_and_malformed_webhooks_are_refused_and_change_nothing() {
    let certs = cert_server().await;
    let (t, _s, _clock) = app_with_webhooks(
        &certs,
        at("2026-12-01T09:00:00Z"),
        &[(
            "PAPERBOY__BOUNCES__WEBHOOKS__MAILGUN_SIGNING_KEY_ENV",
            "PAPERBOY_TEST_MAILGUN_KEY_BOUNCES",
        )],
    )
    .await;
    // SAFETY of set_var: the name is unique to this test.
    std::env::set_var(
        "PAPERBOY_TEST_MAILGUN_KEY_BOUNCES",
        "key-test-mailgun-signing",
    );
    let gone = add_active(&t.app, "gone@example.net", &["rag"], 3).await;
    let hard = fixture("webhooks", "postmark-bounce-hard.json");

    // Wrong or missing secret.
    assert_eq!(
        post(&t, "postmark", "not-the-secret-at-all-000000", &hard)
            .await
            .0,
        401
    );
    let r = t
        .client
        .post(t.url("/webhooks/postmark"))
        .body(hard.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The header form is accepted too (checked below with a malformed body).
    // An SNS message altered after signing, or signed by someone else's
    // certificate URL.
    let mut tampered = signed_sns(&certs, "ses-bounce-permanent.json", None);
    tampered["Message"] = Value::String(
        tampered["Message"]
            .as_str()
            .unwrap()
            .replace("Permanent", "Transient"),
    );
    assert_eq!(post(&t, "ses", SECRET, &tampered.to_string()).await.0, 403);
    let mut elsewhere = signed_sns(&certs, "ses-bounce-permanent.json", None);
    elsewhere["SigningCertURL"] =
        Value::String("https://evil.test/SimpleNotificationService-x.pem".into());
    assert_eq!(post(&t, "ses", SECRET, &elsewhere.to_string()).await.0, 403);
    // A Mailgun signature that does not verify with the signing key.
    let mut mg: Value =
        serde_json::from_str(&fixture("webhooks", "mailgun-failed-permanent.json")).unwrap();
    mg["signature"]["token"] = Value::String("another-token".into());
    assert_eq!(post(&t, "mailgun", SECRET, &mg.to_string()).await.0, 403);
    // A VERP envelope sender whose mac does not verify: accepted (the
    // request is authentic) but ignored.
    let forged = signed_sns(
        &certs,
        "ses-bounce-permanent.json",
        Some("bounces+1.aaaaaaaaaaaaaaaa@paperboy.test"),
    );
    let r = post_ok(&t, "ses", &forged.to_string()).await;
    assert_eq!(
        (r["recorded"].as_u64(), r["forged"].as_u64()),
        (Some(0), Some(1)),
        "{r}"
    );

    // Malformed payloads: 400.
    for (provider, body) in [
        ("postmark", "{not json"),
        ("postmark", r#"{"Type": "HardBounce"}"#),
        ("sendgrid", r#"{"event": "bounce"}"#),
        ("ses", r#"{"Type": "Notification"}"#),
    ] {
        let r = t
            .client
            .post(t.url(&format!("/webhooks/{provider}")))
            .header("x-paperboy-webhook-secret", SECRET)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{provider} {body}");
    }
    assert_eq!(post(&t, "unknown", SECRET, &hard).await.0, 404);
    // An SNS subscription confirmation is verified, logged and records
    // nothing.
    let confirm = signed_sns(&certs, "ses-subscription-confirmation.json", None);
    let r = post_ok(&t, "ses", &confirm.to_string()).await;
    assert_eq!(r["events"], 0, "{r}");

    assert!(events(&t, gone).await.is_empty());
    assert_eq!(suppression(&t, "gone@example.net").await, None);
    let s = t.app.store.subscriber(gone).await.unwrap();
    assert_eq!(s.state, paperboy::domain::SubscriberState::Active);
    t.stop().await;
}

#[tokio::test]
async fn webhooks_are_off_unless_enabled() {
    let t = TestApp::spawn().await;
    let r = t
        .client
        .post(t.url("/webhooks/postmark/anything-at-all-0000"))
        .body(fixture("webhooks", "postmark-bounce-hard.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    t.stop().await;
}

#[tokio::test]
async fn a_digest_that_bounces_later_suppresses_its_reader_before_the_next_run() {
    let certs = cert_server().await;
    let day1 = at("2026-12-01T08:00:00Z");
    let (t, _s, _clock) = app_with_webhooks(&certs, day1, &[]).await;
    let gone = add_active(&t.app, "gone@example.net", &["rag"], 3).await;
    add_active(&t.app, "angry@example.net", &["rag"], 3).await;
    add_active(&t.app, "stays@example.net", &["rag"], 3).await;
    let picker = papers(9);
    let r = digest::run(&t.app, &picker, day1).await.unwrap();
    assert_eq!(r.counts.sent, 3);

    // Each digest left with its own VERP envelope sender.
    let msgs = t.sink.messages();
    let verp_of = |rcpt: &str| {
        msgs.iter()
            .find(|m| m.to.iter().any(|t| t == rcpt))
            .map(|m| m.from.clone())
            .unwrap()
    };
    let gone_verp = verp_of("gone@example.net");
    assert!(
        gone_verp.starts_with("bounces+") && gone_verp.ends_with("@paperboy.test"),
        "{gone_verp}"
    );
    assert_ne!(gone_verp, verp_of("stays@example.net"));

    // SES reports the bounce later; only the VERP address ties it to the
    // delivery (the fixture's Message-ID is not ours).
    let bounce = signed_sns(&certs, "ses-bounce-permanent.json", Some(&gone_verp));
    let r = post_ok(&t, "ses", &bounce.to_string()).await;
    assert_eq!(r["recorded"], 1, "{r}");
    let e = &events(&t, gone).await[0];
    assert_eq!(e["digest_date"], "2026-12-01", "{e}");
    // Mailgun reports a complaint of the other reader.
    let complaint = aimed(
        &fixture("webhooks", "mailgun-complained.json"),
        &sent_to(&t, "angry@example.net"),
    );
    assert_eq!(post_ok(&t, "mailgun", &complaint).await["recorded"], 1);

    let day2 = at("2026-12-02T08:00:00Z");
    let r = digest::run(&t.app, &picker, day2).await.unwrap();
    assert_eq!(r.counts.sent, 1, "{:?}", r.counts);
    assert_eq!(t.sink.messages_to("gone@example.net").len(), 1);
    assert_eq!(t.sink.messages_to("angry@example.net").len(), 1);
    assert_eq!(t.sink.messages_to("stays@example.net").len(), 2);
    let health: Value = t
        .client
        .get(t.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["sending_paused"], Value::Null);
    assert_eq!(
        health["last_digest_run"]["bounces_last_24h"]["hard"], 1,
        "{health}"
    );
    t.stop().await;
}

#[tokio::test]
async fn a_complaint_rate_above_the_threshold_pauses_sending_and_healthz_says_so() {
    let certs = cert_server().await;
    let day1 = at("2026-12-01T08:00:00Z");
    let (t, _s, _clock) = app_with_webhooks(
        &certs,
        day1,
        &[
            ("PAPERBOY__BOUNCES__COMPLAINT_MIN_SENT", "2"),
            ("PAPERBOY__BOUNCES__COMPLAINT_MAX_PERCENT", "10"),
        ],
    )
    .await;
    add_active(&t.app, "angry@example.net", &["rag"], 3).await;
    add_active(&t.app, "a@example.net", &["rag"], 3).await;
    add_active(&t.app, "b@example.net", &["rag"], 3).await;
    let picker = papers(9);
    assert_eq!(
        digest::run(&t.app, &picker, day1)
            .await
            .unwrap()
            .counts
            .sent,
        3
    );
    let complaint = aimed(
        &fixture("webhooks", "mailgun-complained.json"),
        &sent_to(&t, "angry@example.net"),
    );
    assert_eq!(post_ok(&t, "mailgun", &complaint).await["recorded"], 1);

    let health: Value = t
        .client
        .get(t.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let why = health["sending_paused"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(why.contains("complaint rate 33.33%"), "{health}");
    // The next run (within the window) sends nothing and says why.
    let r = digest::run(&t.app, &picker, at("2026-12-01T20:00:00Z")).await;
    let r = r.unwrap();
    assert_eq!(r.counts.sent, 0);
    assert_eq!(r.state, digest::RunState::PausedErrors);
    assert!(r.note.unwrap_or_default().contains("complaint rate"));
    t.stop().await;
}

#[tokio::test]
async fn only_the_readers_own_new_opt_in_lifts_a_complaint_and_nothing_lifts_a_hard_bounce() {
    let certs = cert_server().await;
    let (t, _s, clock) = app_with_webhooks(&certs, at("2026-12-01T09:00:00Z"), &[]).await;
    t.subscribe_and_confirm("angry@example.net").await;
    t.subscribe_and_confirm("gone@example.net").await;
    let now = at("2026-12-01T09:00:00Z");
    assert_eq!(
        digest::run(&t.app, &papers(9), now)
            .await
            .unwrap()
            .counts
            .sent,
        2
    );
    for (name, rcpt) in [
        ("mailgun-complained.json", "angry@example.net"),
        ("mailgun-failed-permanent.json", "gone@example.net"),
    ] {
        let body = aimed(&fixture("webhooks", name), &sent_to(&t, rcpt));
        assert_eq!(post_ok(&t, "mailgun", &body).await["recorded"], 1, "{name}");
    }
    assert_eq!(
        t.state_of("angry@example.net").await.as_deref(),
        Some("unsubscribed")
    );
    assert_eq!(
        suppression(&t, "angry@example.net").await,
        Some(SuppressionReason::Complaint)
    );

    // The reader subscribes again (later: confirmation mails per address
    // are rate-limited) and confirms from the mailed link.
    clock.set(at("2026-12-02T09:00:00Z"));
    t.subscribe_and_confirm("angry@example.net").await;
    assert_eq!(
        t.state_of("angry@example.net").await.as_deref(),
        Some("active")
    );
    assert_eq!(suppression(&t, "angry@example.net").await, None);

    // A hard-bounced address gets no confirmation mail at all.
    let before = t.sink.messages_to("gone@example.net").len();
    assert_eq!(t.subscribe_email("gone@example.net").await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(t.sink.messages_to("gone@example.net").len(), before);
    assert_eq!(
        suppression(&t, "gone@example.net").await,
        Some(SuppressionReason::HardBounce)
    );
    t.stop().await;
}
