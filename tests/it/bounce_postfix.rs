//! The whole loop with mail software nobody here wrote: a digest goes
//! through a real Postfix (Debian's `postfix`, installed by `scripts/test`;
//! started here as its own instance, configuration and queue in a temp
//! directory, SMTP on a free loopback port), which accepts it and then
//! bounces the unknown local user with its own RFC 3464 DSN to the VERP
//! envelope sender; Postfix delivers that DSN into the Maildir a real
//! Dovecot serves over IMAPS; the real `paperboy serve` reads it at
//! start-up and suppresses the reader.

use crate::bounce_mailbox::Dovecot;
use crate::digest::{add_active, papers};
use crate::support::{free_port, test_config};
use paperboy::app::{App, Overrides};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const POSTFIX: &str = "/usr/sbin/postfix";

/// A Postfix instance for one test; stopped on drop.
struct Postfix {
    dir: tempfile::TempDir,
    port: u16,
}

impl Postfix {
    fn conf(&self) -> PathBuf {
        self.dir.path().join("conf")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postfix.log")).unwrap_or_default()
    }

    /// Starts Postfix for the domain `paperboy.test`: it accepts any
    /// recipient over SMTP (`local_recipient_maps` empty) and delivers
    /// locally, `bounces` (and `bounces+…`, `recipient_delimiter = +`) into
    /// `maildir`, `kept` into a Maildir of its own; everyone else is an
    /// unknown user, bounced after acceptance.
    fn start(maildir: &Path) -> Postfix {
        assert!(
            Path::new(POSTFIX).exists(),
            "{POSTFIX} is missing: this test needs Postfix (`apt-get install postfix`; \
             scripts/test installs it)"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["conf", "queue", "data", "kept/cur", "kept/new", "kept/tmp"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Local delivery to files runs as `nobody`; the master's lock file
        // is written as `postfix`.
        run(Command::new("chown")
            .args(["-R", "nobody"])
            .arg(d.join("kept")));
        run(Command::new("chown").arg("postfix").arg(d.join("data")));
        let port = free_port();
        std::fs::write(d.join("conf/main.cf"), main_cf(d)).unwrap();
        std::fs::write(d.join("conf/master.cf"), master_cf(port)).unwrap();
        std::fs::write(
            d.join("conf/aliases"),
            format!(
                "bounces {}/\nkept {}/\n",
                maildir.display(),
                d.join("kept").display()
            ),
        )
        .unwrap();
        let pf = Postfix { dir, port };
        let out = Command::new(POSTFIX)
            .arg("-c")
            .arg(pf.conf())
            .arg("start")
            .output()
            .expect("running postfix");
        assert!(
            out.status.success(),
            "postfix did not start (it runs as root):\n{}",
            pf.log()
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "postfix does not listen:\n{}",
                pf.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        pf
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new(POSTFIX)
            .arg("-c")
            .arg(self.conf())
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn main_cf(d: &Path) -> String {
    format!(
        "compatibility_level = 3.6\n\
         queue_directory = {d}/queue\n\
         data_directory = {d}/data\n\
         command_directory = /usr/sbin\n\
         daemon_directory = /usr/lib/postfix/sbin\n\
         shlib_directory = /usr/lib/postfix\n\
         meta_directory = /etc/postfix\n\
         mail_owner = postfix\n\
         setgid_group = postdrop\n\
         myhostname = mx.paperboy.test\n\
         mydomain = paperboy.test\n\
         myorigin = paperboy.test\n\
         mydestination = paperboy.test\n\
         inet_interfaces = 127.0.0.1\n\
         inet_protocols = ipv4\n\
         mynetworks = 127.0.0.0/8\n\
         local_recipient_maps =\n\
         alias_maps = texthash:{d}/conf/aliases\n\
         alias_database =\n\
         recipient_delimiter = +\n\
         maillog_file = {d}/postfix.log\n\
         maillog_file_prefixes = {d}\n\
         smtp_dns_support_level = disabled\n\
         biff = no\n",
        d = d.display()
    )
}

fn master_cf(port: u16) -> String {
    let services = [
        format!("127.0.0.1:{port} inet n - n - - smtpd"),
        "pickup unix n - n 60 1 pickup".into(),
        "cleanup unix n - n - 0 cleanup".into(),
        "qmgr unix n - n 300 1 qmgr".into(),
        "rewrite unix - - n - - trivial-rewrite".into(),
        "bounce unix - - n - 0 bounce".into(),
        "defer unix - - n - 0 bounce".into(),
        "trace unix - - n - 0 bounce".into(),
        "verify unix - - n - 1 verify".into(),
        "flush unix n - n 1000? 0 flush".into(),
        "proxymap unix - - n - - proxymap".into(),
        "showq unix n - n - - showq".into(),
        "error unix - - n - - error".into(),
        "retry unix - - n - - error".into(),
        "discard unix - - n - - discard".into(),
        "local unix - n n - - local".into(),
        "anvil unix - - n - 1 anvil".into(),
        "scache unix - - n - 1 scache".into(),
        "postlog unix-dgram n - n - 1 postlogd".into(),
    ];
    services.join("\n") + "\n"
}

/// The real `paperboy serve` on the test's database.
fn serve(db: &Path, http: u16, mailbox: &[(String, String)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_paperboy"))
        .arg("serve")
        .current_dir(db.parent().unwrap())
        .env_remove("RUST_LOG")
        .env("PAPERBOY__DATABASE__PATH", db)
        .env("PAPERBOY__SERVER__BIND", format!("127.0.0.1:{http}"))
        .env(
            "PAPERBOY__SERVER__BASE_URL",
            format!("http://127.0.0.1:{http}"),
        )
        .env("PAPERBOY__MAIL__FROM", "paperboy <digest@paperboy.test>")
        .env("PAPERBOY__SOURCES__HUGGINGFACE__ENABLED", "false")
        .env("PAPERBOY__RANK__SEMANTIC__ENABLED", "false")
        .env("PAPERBOY__DIGEST__CRON", "0 0 0 1 1 *")
        .env("PAPERBOY__LOGGING__LEVEL", "warn")
        .envs(mailbox.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn get_json(url: &str) -> Option<serde_json::Value> {
    let r = crate::support::client().get(url).send().await.ok()?;
    r.json().await.ok()
}

#[tokio::test]
async fn a_postfix_bounce_read_from_dovecot_by_serve_at_start_up_suppresses_the_reader() {
    let mut imap = Dovecot::start();
    let postfix = Postfix::start(&imap.maildir());
    let work = tempfile::tempdir().unwrap();
    let password_file = work.path().join("imap-password");
    std::fs::write(&password_file, "imap-test-password\n").unwrap();
    let mailbox = imap.config(&password_file);

    // A digest run through Postfix, VERP on.
    let day = chrono::DateTime::parse_from_rfc3339("2026-12-01T08:00:00Z")
        .unwrap()
        .to_utc();
    let relay: std::net::SocketAddr = ([127, 0, 0, 1], postfix.port).into();
    let config = test_config(
        work.path(),
        Some(relay),
        "http://127.0.0.1:1",
        &[("PAPERBOY__BOUNCES__VERP_ADDRESS", "bounces@paperboy.test")],
    );
    let clock = paperboy::clock::ManualClock::new(day);
    let overrides = Overrides {
        clock: Some(std::sync::Arc::new(clock)),
        ..Default::default()
    };
    let app = App::build(config, overrides).await.unwrap();
    add_active(&app, "gone@paperboy.test", &["rag"], 3).await;
    add_active(&app, "kept@paperboy.test", &["rag"], 3).await;
    let run = paperboy::digest::run(&app, &papers(9), day).await.unwrap();
    assert_eq!(
        run.counts.sent, 2,
        "Postfix accepted both: {:?}",
        run.counts
    );
    app.transport.shutdown().await;
    app.store.close().await;
    drop(app);

    // Postfix bounces the unknown user to the VERP address, into Dovecot.
    let deadline = Instant::now() + Duration::from_secs(30);
    while imap.count("") == 0 {
        assert!(
            Instant::now() < deadline,
            "no DSN reached the mailbox:\n{}",
            postfix.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dsn = std::fs::read_dir(imap.maildir().join("new"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .next()
        .unwrap();
    assert!(
        dsn.contains("X-Postfix-Queue-ID")
            && dsn.contains("Final-Recipient: rfc822; gone@paperboy.test")
            && dsn.contains("Delivered-To: bounces+"),
        "{dsn}"
    );
    imap.deliver(&crate::bounces::fixture("mailbox", "not-a-report.eml"));

    // `serve` reads it at start-up (its cron would not poll for hours).
    let http = free_port();
    let mut daemon = serve(&work.path().join("paperboy.sqlite"), http, &mailbox);
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        let h = get_json(&format!("http://127.0.0.1:{http}/healthz")).await;
        if let Some(h) = h.filter(|h| h["bounce_mailbox"]["state"] != "not_polled_yet") {
            break h;
        }
        if Instant::now() > deadline {
            let _ = daemon.kill();
            panic!("serve did not poll the mailbox at start-up");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let metrics = crate::support::client()
        .get(format!("http://127.0.0.1:{http}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let stopped = daemon.wait().unwrap();
    assert_eq!(
        (
            health["status"].as_str(),
            health["bounce_mailbox"]["state"].as_str()
        ),
        (Some("ok"), Some("ok")),
        "{health}"
    );
    for line in [
        "paperboy_subscribers{state=\"active\"} 1",
        "paperboy_subscribers{state=\"suppressed\"} 1",
        "paperboy_subscribers_suppressed{reason=\"hard_bounce\"} 1",
        "paperboy_bounces_total{type=\"hard\"} 1",
        "paperboy_bounce_reports_ignored_total{reason=\"unparseable\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}\n{metrics}");
    }
    assert!(stopped.success(), "serve exits 0 on SIGTERM: {stopped}");
}
