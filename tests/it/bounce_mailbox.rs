//! The bounce mailbox against a real IMAP server: Dovecot (Debian's
//! `dovecot-imapd`, installed by `scripts/test`), started here with a
//! throw-away configuration on a free loopback port with implicit TLS and
//! a certificate signed by a CA made for the test, holding real-shaped DSN
//! and ARF messages, replies that are not reports, or (`bounce_postfix`)
//! what a real Postfix delivered.

use crate::bounces::{at, events, fixture, postfix_dsn, sent_to, suppression, PLACEHOLDER};
use crate::digest::{add_active, papers};
use crate::support::{free_port, TestApp};
use paperboy::bounces::mailbox;
use paperboy::digest;
use paperboy::store::subscribers::SuppressionReason;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DOVECOT: &str = "/usr/sbin/dovecot";
const USER: &str = "bounces";
const PASSWORD: &str = "imap-test-password";

/// A Dovecot instance for one test; killed on drop.
pub(crate) struct Dovecot {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    /// The user and group mail files must belong to.
    owner: (u32, u32),
    delivered: usize,
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Dovecot {
    pub(crate) fn start() -> Dovecot {
        assert!(
            Path::new(DOVECOT).exists(),
            "{DOVECOT} is missing: the bounce-mailbox tests need Dovecot \
             (`apt-get install dovecot-imapd`; scripts/test installs it)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Dovecot's unprivileged processes must reach their files.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        // A throw-away CA and a "localhost" server certificate it signs,
        // made with README's two-command recipe (rustls refuses a
        // self-signed server certificate that is its own CA).
        let openssl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(d));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=paperboy test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        openssl(&[
            "req",
            "-x509",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ]);
        // Dovecot refuses mail access as root: as root, mail belongs to
        // `nobody`; otherwise to the user running the test.
        let me = std::fs::metadata("/proc/self").unwrap();
        let owner = if me.uid() == 0 {
            (65534, 65534)
        } else {
            (me.uid(), me.gid())
        };
        let root = me.uid() == 0;
        for sub in ["run", "state", "home", "mail"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("users"), format!("{USER}:{{PLAIN}}{PASSWORD}\n")).unwrap();
        let maildir = d.join("mail").join(USER);
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        let port = free_port();
        let users = if root {
            "default_internal_user = dovecot\ndefault_login_user = dovenull\n".to_string()
        } else {
            let name = std::env::var("USER").unwrap_or_default();
            format!("default_internal_user = {name}\ndefault_login_user = {name}\n")
        };
        let conf = format!(
            "base_dir = {run}\nstate_dir = {state}\ninstance_name = paperboy-test-{port}\n\
             listen = 127.0.0.1\nprotocols = imap\nssl = required\n\
             ssl_cert = <{cert}\nssl_key = <{key}\n\
             disable_plaintext_auth = yes\nauth_mechanisms = plain\n\
             mail_location = maildir:{mail}/%u\nfirst_valid_uid = 1\n{users}\
             log_path = {dir}/dovecot.log\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {dir}/users\n}}\n\
             userdb {{\n  driver = static\n  args = uid={uid} gid={gid} home={dir}/home/%u\n}}\n\
             service imap-login {{\n  chroot =\n  inet_listener imap {{\n    port = 0\n  }}\n  inet_listener imaps {{\n    port = {port}\n    ssl = yes\n  }}\n}}\n\
             service anvil {{\n  chroot =\n}}\n",
            run = d.join("run").display(),
            state = d.join("state").display(),
            cert = d.join("cert.pem").display(),
            key = d.join("key.pem").display(),
            mail = d.join("mail").display(),
            dir = d.display(),
            uid = owner.0,
            gid = owner.1,
        );
        std::fs::write(d.join("dovecot.conf"), conf).unwrap();
        chown_tree(&d.join("mail"), owner);
        chown_tree(&d.join("home"), owner);
        let child = Command::new(DOVECOT)
            .arg("-F")
            .arg("-c")
            .arg(d.join("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting dovecot");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let log = std::fs::read_to_string(d.join("dovecot.log")).unwrap_or_default();
            assert!(Instant::now() < deadline, "dovecot did not start:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Dovecot {
            child,
            dir,
            port,
            owner,
            delivered: 0,
        }
    }

    /// Delivers a message into the user's INBOX (Maildir `new/`), as the
    /// MTA in front of the mailbox would.
    pub(crate) fn deliver(&mut self, raw: &str) {
        self.delivered += 1;
        let new = self.dir.path().join("mail").join(USER).join("new");
        let path: PathBuf = new.join(format!("1764576000.M{}P1.paperboy-test", self.delivered));
        std::fs::write(&path, raw.replace("\r\n", "\n").replace('\n', "\r\n")).unwrap();
        std::os::unix::fs::chown(&path, Some(self.owner.0), Some(self.owner.1)).unwrap();
    }

    /// The user's Maildir (INBOX), for an MTA to deliver into.
    pub(crate) fn maildir(&self) -> PathBuf {
        self.dir.path().join("mail").join(USER)
    }

    /// Messages in a folder ("" for INBOX), read or not.
    pub(crate) fn count(&self, name: &str) -> usize {
        let base = self.dir.path().join("mail").join(USER);
        let folder = if name.is_empty() {
            base
        } else {
            base.join(format!(".{name}"))
        };
        ["cur", "new"]
            .iter()
            .map(|sub| std::fs::read_dir(folder.join(sub)).map_or(0, |d| d.count()))
            .sum()
    }

    /// The `[bounces]` settings for this mailbox, VERP on
    /// (`bounces@paperboy.test`), polled only at start-up and by the test.
    pub(crate) fn config(&self, password_file: &Path) -> Vec<(String, String)> {
        vec![
            ("PAPERBOY__BOUNCES__MAILBOX__ENABLED".into(), "true".into()),
            (
                "PAPERBOY__BOUNCES__MAILBOX__HOST".into(),
                "localhost".into(),
            ),
            (
                "PAPERBOY__BOUNCES__MAILBOX__PORT".into(),
                self.port.to_string(),
            ),
            ("PAPERBOY__BOUNCES__MAILBOX__USERNAME".into(), USER.into()),
            (
                "PAPERBOY__BOUNCES__MAILBOX__PASSWORD_FILE".into(),
                password_file.display().to_string(),
            ),
            (
                "PAPERBOY__BOUNCES__MAILBOX__CA_FILE".into(),
                self.dir.path().join("ca.pem").display().to_string(),
            ),
            (
                "PAPERBOY__BOUNCES__MAILBOX__TIMEOUT_SECS".into(),
                "10".into(),
            ),
            // Polled by the test, not by the scheduler.
            (
                "PAPERBOY__BOUNCES__MAILBOX__CRON".into(),
                "0 0 0 1 1 *".into(),
            ),
            (
                "PAPERBOY__BOUNCES__VERP_ADDRESS".into(),
                "bounces@paperboy.test".into(),
            ),
        ]
    }
}

fn chown_tree(p: &Path, owner: (u32, u32)) {
    std::os::unix::fs::chown(p, Some(owner.0), Some(owner.1)).unwrap();
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path(), owner);
        }
    }
}

/// Writes the mailbox password to a file in `dir` and returns the
/// settings for `imap` plus `extra`.
fn settings(imap: &Dovecot, dir: &Path, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let password_file = dir.join("imap-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let mut env = imap.config(&password_file);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Waits until a poll has finished (`serve` polls once at start-up), so
/// that the test's own polls see what it delivers after this.
pub(crate) async fn polled(t: &TestApp) -> paperboy::telemetry::MailboxHealth {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let h = t.app.metrics.bounces.mailbox_health();
        if h.last_success.is_some() || h.failing_since.is_some() {
            return h;
        }
        assert!(Instant::now() < deadline, "no bounce-mailbox poll finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn healthz(t: &TestApp) -> serde_json::Value {
    t.client
        .get(t.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
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

/// An ordinary reply to a digest (not a report), the `n`th.
fn reply(n: usize) -> String {
    fixture("mailbox", "not-a-report.eml").replace("<reply.1@", &format!("<reply.{n}@"))
}

#[tokio::test]
async fn bounces_and_complaints_in_the_mailbox_suppress_and_unsubscribe_before_the_next_run() {
    let mut imap = Dovecot::start();
    let secrets = tempfile::tempdir().unwrap();
    let env = settings(&imap, secrets.path(), &[]);
    let day1 = at("2026-12-01T08:00:00Z");
    let (t, _clock) = TestApp::spawn_at(day1, &pairs(&env)).await;
    polled(&t).await;
    let gone = add_active(&t.app, "gone@example.net", &["rag"], 3).await;
    let slow = add_active(&t.app, "slow@example.com", &["rag"], 3).await;
    let reader = add_active(&t.app, "reader@yahoo.com", &["rag"], 3).await;
    let stays = add_active(&t.app, "stays@example.net", &["rag"], 3).await;
    let picker = papers(9);
    assert_eq!(
        digest::run(&t.app, &picker, day1)
            .await
            .unwrap()
            .counts
            .sent,
        4
    );
    let verp_of = |rcpt: &str| sent_to(&t, rcpt).verp;

    // What the relay and the providers send back, to the VERP addresses.
    imap.deliver(
        &fixture("mailbox", "postfix-hard-5.1.1.eml")
            .replace(PLACEHOLDER, &verp_of("gone@example.net")),
    );
    imap.deliver(
        &fixture("mailbox", "exim-delayed-4.2.2.eml")
            .replace(PLACEHOLDER, &verp_of("slow@example.com")),
    );
    imap.deliver(
        &fixture("mailbox", "yahoo-arf-abuse.eml")
            .replace(PLACEHOLDER, &verp_of("reader@yahoo.com")),
    );
    // A bounce naming a VERP address with a forged mac, a bounce that
    // names no message paperboy sent, and an ordinary reply.
    imap.deliver(
        &fixture("mailbox", "qmail-failure-notice.eml")
            .replace(PLACEHOLDER, "bounces+1.aaaaaaaaaaaaaaaa@paperboy.test"),
    );
    imap.deliver(&fixture("mailbox", "gmail-hard-5.1.1.eml"));
    imap.deliver(&fixture("mailbox", "not-a-report.eml"));

    let r = mailbox::poll(&t.app.bounces()).await.unwrap();
    assert_eq!(
        (
            r.read,
            r.recorded,
            r.forged,
            r.unmatched,
            r.unparseable,
            r.duplicates
        ),
        (6, 3, 1, 1, 1, 0),
        "{r}"
    );
    assert_eq!(
        suppression(&t, "gone@example.net").await,
        Some(SuppressionReason::HardBounce)
    );
    assert_eq!(
        suppression(&t, "slow@example.com").await,
        None,
        "one soft bounce is only counted"
    );
    assert_eq!(events(&t, slow).await[0]["kind"], "soft_bounce");
    assert_eq!(
        suppression(&t, "reader@yahoo.com").await,
        Some(SuppressionReason::Complaint)
    );
    let r_state = t.app.store.subscriber(reader).await.unwrap().state;
    assert_eq!(r_state, paperboy::domain::SubscriberState::Unsubscribed);
    let e = &events(&t, gone).await[0];
    assert_eq!(
        (e["source"].as_str(), e["digest_date"].as_str()),
        (Some("mailbox"), Some("2026-12-01"))
    );
    assert!(events(&t, stays).await.is_empty());

    // Every message read was marked: the next poll reads nothing, and the
    // reply is counted once.
    let again = mailbox::poll(&t.app.bounces()).await.unwrap();
    assert_eq!((again.read, again.unparseable), (0, 0), "{again}");
    assert!(metrics(&t)
        .await
        .contains("paperboy_bounce_reports_ignored_total{reason=\"unparseable\"} 1"));
    assert_eq!(imap.count(""), 6, "flagged, not moved");

    let day2 = at("2026-12-02T08:00:00Z");
    let run2 = digest::run(&t.app, &picker, day2).await.unwrap();
    assert_eq!(run2.counts.sent, 2, "{:?}", run2.counts);
    assert_eq!(t.sink.messages_to("gone@example.net").len(), 1);
    assert_eq!(t.sink.messages_to("reader@yahoo.com").len(), 1);
    assert_eq!(t.sink.messages_to("slow@example.com").len(), 2);
    t.stop().await;
}

/// Replies and vacation notices go to the Return-Path too. A thousand of
/// them ahead of a bounce must not hide it, nor be counted again.
#[tokio::test]
async fn a_thousand_replies_in_the_mailbox_never_hide_a_bounce() {
    let mut imap = Dovecot::start();
    let secrets = tempfile::tempdir().unwrap();
    let env = settings(&imap, secrets.path(), &[]);
    let day = at("2026-12-01T08:00:00Z");
    let (t, _clock) = TestApp::spawn_at(day, &pairs(&env)).await;
    polled(&t).await;
    add_active(&t.app, "gone@example.net", &["rag"], 3).await;
    assert_eq!(
        digest::run(&t.app, &papers(9), day)
            .await
            .unwrap()
            .counts
            .sent,
        1
    );
    for n in 0..1000 {
        imap.deliver(&reply(n));
    }
    let gone = sent_to(&t, "gone@example.net");
    imap.deliver(&postfix_dsn(
        "gone@example.net",
        &gone.verp,
        &gone.message_id,
    ));

    let mut polls = Vec::new();
    while suppression(&t, "gone@example.net").await.is_none() {
        assert!(
            polls.len() < 2,
            "the bounce is still unread after {polls:?}"
        );
        polls.push(mailbox::poll(&t.app.bounces()).await.unwrap());
    }
    let read: u64 = polls.iter().map(|r| r.read).sum();
    assert_eq!(read, 1001, "{polls:?}");
    let again = mailbox::poll(&t.app.bounces()).await.unwrap();
    assert_eq!(again.read, 0, "{again}");
    assert!(metrics(&t)
        .await
        .contains("paperboy_bounce_reports_ignored_total{reason=\"unparseable\"} 1000"));
    t.stop().await;
}

#[tokio::test]
async fn a_wrong_mailbox_password_is_a_clear_error_and_changes_nothing() {
    let mut imap = Dovecot::start();
    imap.deliver(&fixture("mailbox", "postfix-hard-5.1.1.eml"));
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("imap-password");
    std::fs::write(&password_file, "wrong-password\n").unwrap();
    let env = imap.config(&password_file);
    let (t, _clock) = TestApp::spawn_at(at("2026-12-01T08:00:00Z"), &pairs(&env)).await;
    add_active(&t.app, "gone@example.net", &["rag"], 3).await;
    let err = mailbox::poll(&t.app.bounces()).await.unwrap_err();
    assert!(matches!(err, mailbox::MailboxError::Login(_)), "{err}");
    assert_eq!(suppression(&t, "gone@example.net").await, None);
    t.stop().await;
}

#[tokio::test]
async fn reports_and_other_mail_can_be_moved_to_folders_created_as_needed() {
    let mut imap = Dovecot::start();
    let secrets = tempfile::tempdir().unwrap();
    let env = settings(
        &imap,
        secrets.path(),
        &[
            ("PAPERBOY__BOUNCES__MAILBOX__PROCESSED_FOLDER", "Processed"),
            ("PAPERBOY__BOUNCES__MAILBOX__NON_REPORTS", "move"),
        ],
    );
    let day = at("2026-12-01T08:00:00Z");
    let (t, _clock) = TestApp::spawn_at(day, &pairs(&env)).await;
    polled(&t).await;
    add_active(&t.app, "gone@example.net", &["rag"], 3).await;
    assert_eq!(
        digest::run(&t.app, &papers(9), day)
            .await
            .unwrap()
            .counts
            .sent,
        1
    );
    // To the bare bounce address: the quoted Message-ID is what ties it to
    // the digest.
    let gone = sent_to(&t, "gone@example.net");
    imap.deliver(&postfix_dsn(
        "gone@example.net",
        "bounces@paperboy.test",
        &gone.message_id,
    ));
    imap.deliver(&reply(1));
    let r = mailbox::poll(&t.app.bounces()).await.unwrap();
    assert_eq!((r.read, r.recorded, r.unparseable), (2, 1, 1), "{r}");
    assert_eq!(
        suppression(&t, "gone@example.net").await,
        Some(SuppressionReason::HardBounce)
    );
    assert_eq!(
        (
            imap.count(""),
            imap.count("Processed"),
            imap.count("Not bounces")
        ),
        (0, 1, 1)
    );
    let again = mailbox::poll(&t.app.bounces()).await.unwrap();
    assert_eq!(again.read, 0, "{again}");
    t.stop().await;
}

/// `/healthz` is `degraded` while the mailbox cannot be polled, or polls
/// leave mail behind, and says since when; `/metrics` has the last
/// successful poll. `serve` polls at start-up, so both show at once.
#[tokio::test]
async fn healthz_says_since_when_the_mailbox_cannot_be_polled_or_is_behind() {
    let mut imap = Dovecot::start();
    let day = at("2026-12-01T08:00:00Z");
    let secrets = tempfile::tempdir().unwrap();
    // The server's own certificate is no CA: rustls refuses the chain.
    let leaf = imap.dir.path().join("cert.pem").display().to_string();
    let env = settings(
        &imap,
        secrets.path(),
        &[("PAPERBOY__BOUNCES__MAILBOX__CA_FILE", leaf.as_str())],
    );
    let (t, _clock) = TestApp::spawn_at(day, &pairs(&env)).await;
    let h = polled(&t).await;
    assert!(h.failing_since.is_some(), "{h:?}");
    let health = healthz(&t).await;
    assert_eq!(health["status"], "degraded", "{health}");
    let mb = &health["bounce_mailbox"];
    assert_eq!(
        (mb["state"].as_str(), mb["degraded_since"].as_str()),
        (Some("failing"), Some("2026-12-01T08:00:00.000Z")),
        "{health}"
    );
    assert!(
        mb["last_error"].as_str().unwrap().contains("TLS"),
        "{health}"
    );
    let m = metrics(&t).await;
    assert!(m.contains("paperboy_bounce_mailbox_failing 1"), "{m}");
    assert!(m.contains("paperboy_bounce_mailbox_last_success_timestamp_seconds 0"));
    t.stop().await;

    // Right CA, one message per poll, two waiting: behind after the first.
    imap.deliver(&reply(1));
    imap.deliver(&reply(2));
    let env = settings(
        &imap,
        secrets.path(),
        &[("PAPERBOY__BOUNCES__MAILBOX__MAX_MESSAGES", "1")],
    );
    let (t, clock) = TestApp::spawn_at(day, &pairs(&env)).await;
    let h = polled(&t).await;
    assert_eq!((h.unread_left, h.failing_since), (1, None), "{h:?}");
    let health = healthz(&t).await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["bounce_mailbox"]["state"], "behind", "{health}");
    assert_eq!(
        health["bounce_mailbox"]["degraded_since"],
        "2026-12-01T08:00:00.000Z"
    );
    clock.set(at("2026-12-01T08:05:00Z"));
    let r = mailbox::poll(&t.app.bounces()).await.unwrap();
    assert_eq!((r.read, r.left), (1, 0), "{r}");
    let health = healthz(&t).await;
    assert_eq!(
        (
            health["status"].as_str(),
            health["bounce_mailbox"]["state"].as_str()
        ),
        (Some("ok"), Some("ok")),
        "{health}"
    );
    let m = metrics(&t).await;
    let five_past = at("2026-12-01T08:05:00Z").timestamp();
    assert!(
        m.contains(&format!(
            "paperboy_bounce_mailbox_last_success_timestamp_seconds {five_past}"
        )),
        "{m}"
    );
    assert!(m.contains("paperboy_bounce_mailbox_failing 0"));
    t.stop().await;
}
