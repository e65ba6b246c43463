//! The bounce mailbox against a real IMAP server: Dovecot (Debian's
//! `dovecot-imapd`, installed by `scripts/test`), started here with a
//! throw-away configuration on a free loopback port with implicit TLS and
//! a self-signed certificate made for the test, holding real-shaped DSN
//! and ARF messages.

use crate::bounces::{at, events, fixture, suppression};
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
struct Dovecot {
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
    fn start() -> Dovecot {
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
        // made for this test (webpki refuses a CA certificate as a server's).
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
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "key.pem",
            "-out",
            "leaf.csr",
        ]);
        std::fs::write(d.join("leaf.ext"), "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
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
    fn deliver(&mut self, raw: &str) {
        self.delivered += 1;
        let new = self.dir.path().join("mail").join(USER).join("new");
        let path: PathBuf = new.join(format!("1764576000.M{}P1.paperboy-test", self.delivered));
        std::fs::write(&path, raw.replace("\r\n", "\n").replace('\n', "\r\n")).unwrap();
        std::os::unix::fs::chown(&path, Some(self.owner.0), Some(self.owner.1)).unwrap();
    }

    /// Creates a folder (Maildir++: `.<name>` beside `cur/new/tmp`).
    fn create_folder(&self, name: &str) {
        let folder = self
            .dir
            .path()
            .join("mail")
            .join(USER)
            .join(format!(".{name}"));
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(folder.join(sub)).unwrap();
        }
        chown_tree(&folder, self.owner);
    }

    /// Messages in a folder ("" for INBOX), read or not.
    fn count(&self, name: &str) -> usize {
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

    fn config(&self, password_file: &Path) -> Vec<(String, String)> {
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

const PLACEHOLDER: &str = "bounces+DELIVERY.MAC@paperboy.example.org";

#[tokio::test]
async fn bounces_and_complaints_in_the_mailbox_suppress_and_unsubscribe_before_the_next_run() {
    let mut imap = Dovecot::start();
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("imap-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let env = imap.config(&password_file);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let day1 = at("2026-12-01T08:00:00Z");
    let (t, _clock) = TestApp::spawn_at(day1, &env).await;
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
    let msgs = t.sink.messages();
    let verp_of = |rcpt: &str| {
        msgs.iter()
            .find(|m| m.to.iter().any(|x| x == rcpt))
            .map(|m| m.from.clone())
            .unwrap()
    };

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
    // A bounce naming a VERP address with a forged mac, a bounce for an
    // address paperboy never mailed, and an ordinary reply.
    imap.deliver(
        &fixture("mailbox", "qmail-failure-notice.eml")
            .replace(PLACEHOLDER, "bounces+1.aaaaaaaaaaaaaaaa@paperboy.test"),
    );
    imap.deliver(&fixture("mailbox", "gmail-hard-5.1.1.eml"));
    imap.deliver(&fixture("mailbox", "not-a-report.eml"));

    let r = mailbox::poll(&t.app).await.unwrap();
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

    // Processed reports are flagged and never read again; the reply that
    // is not a report stays and is counted again.
    let again = mailbox::poll(&t.app).await.unwrap();
    assert_eq!(
        (again.read, again.recorded, again.unparseable),
        (1, 0, 1),
        "{again}"
    );

    let day2 = at("2026-12-02T08:00:00Z");
    let run2 = digest::run(&t.app, &picker, day2).await.unwrap();
    assert_eq!(run2.counts.sent, 2, "{:?}", run2.counts);
    assert_eq!(t.sink.messages_to("gone@example.net").len(), 1);
    assert_eq!(t.sink.messages_to("reader@yahoo.com").len(), 1);
    assert_eq!(t.sink.messages_to("slow@example.com").len(), 2);
    let _ = gone;
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
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (t, _clock) = TestApp::spawn_at(at("2026-12-01T08:00:00Z"), &env).await;
    add_active(&t.app, "gone@example.net", &["rag"], 3).await;
    let err = mailbox::poll(&t.app).await.unwrap_err();
    assert!(matches!(err, mailbox::MailboxError::Login(_)), "{err}");
    assert_eq!(suppression(&t, "gone@example.net").await, None);
    t.stop().await;
}

#[tokio::test]
async fn processed_reports_can_be_moved_to_a_folder_leaving_the_rest_in_place() {
    let mut imap = Dovecot::start();
    imap.create_folder("Processed");
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("imap-password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let mut env = imap.config(&password_file);
    env.push((
        "PAPERBOY__BOUNCES__MAILBOX__PROCESSED_FOLDER".into(),
        "Processed".into(),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (t, _clock) = TestApp::spawn_at(at("2026-12-01T08:00:00Z"), &env).await;
    add_active(&t.app, "gone@example.net", &["rag"], 3).await;
    imap.deliver(&fixture("mailbox", "postfix-hard-5.1.1.eml"));
    imap.deliver(&fixture("mailbox", "not-a-report.eml"));
    let r = mailbox::poll(&t.app).await.unwrap();
    // No VERP token here: matched by the recipient address.
    assert_eq!((r.read, r.recorded, r.unparseable), (2, 1, 1), "{r}");
    assert_eq!(
        suppression(&t, "gone@example.net").await,
        Some(SuppressionReason::HardBounce)
    );
    assert_eq!((imap.count(""), imap.count("Processed")), (1, 1));
    let again = mailbox::poll(&t.app).await.unwrap();
    assert_eq!((again.read, again.recorded), (1, 0), "{again}");
    t.stop().await;
}
