//! The real binary as a child process: crash recovery, the single-instance
//! lock and graceful shutdown.

use crate::support::{free_port, SmtpSink};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn daemon(dir: &Path, http_port: u16, smtp_port: u16) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_paperboy"));
    c.arg("serve")
        .current_dir(dir)
        .env("PAPERBOY__SERVER__BIND", format!("127.0.0.1:{http_port}"))
        .env(
            "PAPERBOY__SERVER__BASE_URL",
            format!("http://127.0.0.1:{http_port}"),
        )
        .env("PAPERBOY__MAIL__TRANSPORT", "smtp")
        .env("PAPERBOY__MAIL__SMTP__HOST", "127.0.0.1")
        .env("PAPERBOY__MAIL__SMTP__PORT", smtp_port.to_string())
        .env("PAPERBOY__MAIL__SMTP__TLS", "none")
        .env("PAPERBOY__MAIL__SMTP__TIMEOUT_SECS", "2")
        .env("PAPERBOY__MAIL__FROM", "paperboy <digest@paperboy.test>")
        .env("PAPERBOY__SOURCES__HUGGINGFACE__ENABLED", "false")
        // No model download from a test (the semantic tests load the local weights).
        .env("PAPERBOY__RANK__SEMANTIC__ENABLED", "false")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

async fn wait_healthy(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = crate::support::client();
    loop {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
        {
            if r.status().is_success() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "daemon did not become healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} failed");
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "daemon did not exit");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[tokio::test]
async fn a_confirmation_queued_before_a_kill_is_sent_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    // Nothing listens on the SMTP port yet: the first attempt fails.
    let smtp_port = free_port();
    let mut first = daemon(dir.path(), http, smtp_port).spawn().unwrap();
    wait_healthy(http).await;
    let r = crate::support::client()
        .post(format!("http://127.0.0.1:{http}/subscribe"))
        .form(&[
            ("email", "crash@example.org"),
            ("topics", "RAG"),
            ("send_time", "08:00"),
            ("time_zone", "UTC"),
        ])
        .send()
        .await
        .unwrap();
    // Accepted: answered with a redirect to the "check your inbox" page.
    assert_eq!(r.status(), 303);
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(&first, "-KILL");
    wait_exit(&mut first, Duration::from_secs(10));

    // The relay comes up; the restarted daemon sends the queued mail.
    let sink = SmtpSink::start_on(TcpListener::bind(("127.0.0.1", smtp_port)).unwrap());
    let mut second = daemon(dir.path(), http, smtp_port).spawn().unwrap();
    wait_healthy(http).await;
    sink.wait_for("crash@example.org", 1).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        sink.messages_to("crash@example.org").len(),
        1,
        "sent exactly once"
    );

    signal(&second, "-TERM");
    let status = wait_exit(&mut second, Duration::from_secs(20));
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

#[tokio::test]
async fn a_second_daemon_on_the_same_database_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start();
    let http = free_port();
    let mut first = daemon(dir.path(), http, sink.addr.port()).spawn().unwrap();
    wait_healthy(http).await;

    let out = daemon(dir.path(), free_port(), sink.addr.port())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("another paperboy process"), "{stderr}");

    signal(&first, "-TERM");
    assert!(wait_exit(&mut first, Duration::from_secs(20)).success());
}

#[tokio::test]
async fn an_invalid_config_value_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = daemon(dir.path(), free_port(), 25)
        .env("PAPERBOY__DIGEST__CRON", "every morning")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`digest.cron`"), "{stderr}");
    assert!(
        !dir.path().join("data").exists(),
        "nothing written before validation"
    );
}

#[test]
fn config_check_prints_the_effective_config_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_paperboy"))
        .args(["config", "check"])
        .current_dir(dir.path())
        .env(
            "PAPERBOY__SECURITY__SECRET_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIj",
        )
        .env("PAPERBOY__SERVER__BIND", "127.0.0.1:9999")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("bind = \"127.0.0.1:9999\""));
    assert!(stdout.contains("<redacted>"));
    assert!(!stdout.contains("AAECAwQF"));
}

#[test]
fn subscribers_import_export_and_backup_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_paperboy"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    std::fs::write(
        dir.path().join("in.csv"),
        "email,topics,send_time,time_zone\nrita@example.org,RAG; mixture of experts,07:00,Asia/Tokyo\nnot-an-address,x,08:00,UTC\n",
    )
    .unwrap();
    let imported = run(&["subscribers", "import", "in.csv", "--confirmed"]);
    assert!(!imported.status.success(), "an invalid row is reported");
    assert!(String::from_utf8_lossy(&imported.stderr).contains("line 3"));
    // All or nothing: the valid row waits until the file is fixed, or is
    // imported explicitly without the invalid one.
    let imported = run(&[
        "subscribers",
        "import",
        "in.csv",
        "--confirmed",
        "--skip-invalid",
    ]);
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let add = run(&[
        "subscribers",
        "add",
        "sam@example.org",
        "--topic",
        "RLHF",
        "--confirmed",
    ]);
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );

    let list = run(&["subscribers", "list", "--state", "active"]);
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains("rita@example.org") && listed.contains("Asia/Tokyo"),
        "{listed}"
    );
    assert!(listed.contains("sam@example.org"));

    let export = run(&["subscribers", "export", "--format", "jsonl"]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["topics"], "RAG; mixture of experts");

    let backup = run(&["db", "backup", "copy.sqlite"]);
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    assert!(String::from_utf8_lossy(&backup.stdout).contains("integrity check: ok"));
    assert!(
        !run(&["db", "backup", "copy.sqlite"]).status.success(),
        "never overwrites"
    );

    let removed = run(&["subscribers", "remove", "sam@example.org"]);
    assert!(removed.status.success());
    let again = run(&[
        "subscribers",
        "add",
        "sam@example.org",
        "--topic",
        "RLHF",
        "--confirmed",
    ]);
    assert!(
        !again.status.success(),
        "an operator never lifts a suppression: only the person's own opt-in does"
    );
}

/// Colour codes belong on a terminal: a log file, a pipe or journald
/// gets plain text.
#[tokio::test]
async fn text_logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let sink = SmtpSink::start();
    let http = free_port();
    let child = daemon(dir.path(), http, sink.addr.port()).spawn().unwrap();
    wait_healthy(http).await;
    signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("paperboy serving"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escape codes in a piped log:\n{log:?}"
    );
}
