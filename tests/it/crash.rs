//! Crash recovery (R54), graceful shutdown (R58) and the dry run, against
//! the real binary as a child process. The test process hosts the SMTP
//! sink; each child gets its own temp directory, database and ports.

use crate::support::{free_port, test_config, SmtpSink};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use paperboy::domain::{EmailAddress, SourceKind};
use paperboy::store::papers::PaperBatch;
use paperboy::store::Store;
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Instant;

const HF_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/hf_daily_papers_2026-06-12.json"
);
/// The fixture's listing day is 2026-06-12; the default send time is
/// 08:00 UTC, so this run is due and the papers are candidates.
const RUN_AT: &str = "2026-06-12T08:05:00Z";
const LEASE_SECS: i64 = 10;
/// What `std::process::abort` dies of on Linux.
const SIGABRT: i32 = 6;

/// Three subscribers, each with a topic some fixture paper matches.
const SUBSCRIBERS: [(&str, &str); 3] = [
    ("ada@example.org", "web agents"),
    ("bob@example.org", "robot manipulation"),
    ("cy@example.org", "LLM evaluation"),
];

/// One paperboy installation in a temp directory, mailing to `sink`.
struct Install {
    dir: tempfile::TempDir,
    sink: SmtpSink,
    env: Vec<(String, String)>,
}

impl Install {
    fn new(extra: &[(&str, &str)]) -> Install {
        let dir = tempfile::tempdir().unwrap();
        let sink = SmtpSink::start();
        let mut env: Vec<(String, String)> = [
            (
                "PAPERBOY__DATABASE__PATH",
                dir.path().join("paperboy.sqlite").display().to_string(),
            ),
            (
                "PAPERBOY__MAIL__OUTBOX_DIR",
                dir.path().join("outbox").display().to_string(),
            ),
            ("PAPERBOY__SERVER__BASE_URL", "http://127.0.0.1:9".into()),
            (
                "PAPERBOY__MAIL__FROM",
                "paperboy <digest@paperboy.test>".into(),
            ),
            ("PAPERBOY__MAIL__TRANSPORT", "smtp".into()),
            ("PAPERBOY__MAIL__SMTP__HOST", "127.0.0.1".into()),
            ("PAPERBOY__MAIL__SMTP__PORT", sink.addr.port().to_string()),
            ("PAPERBOY__MAIL__SMTP__TLS", "none".into()),
            ("PAPERBOY__MAIL__SMTP__TIMEOUT_SECS", "5".into()),
            ("PAPERBOY__SOURCES__HUGGINGFACE__ENABLED", "false".into()),
            ("PAPERBOY__RANK__SEMANTIC__ENABLED", "false".into()),
            ("PAPERBOY__DIGEST__LEASE_SECS", LEASE_SECS.to_string()),
            // One send at a time, so exactly one delivery is mid-send
            // when a fault point fires.
            ("PAPERBOY__DIGEST__CONCURRENCY", "1".into()),
            ("PAPERBOY__LOGGING__LEVEL", "warn".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Install { dir, sink, env }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_paperboy"));
        c.args(args)
            .current_dir(self.dir.path())
            .env_remove("PAPERBOY_FAULT_INJECT")
            .env_remove("RUST_LOG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        c
    }

    /// Runs a command to completion and insists it succeeded.
    fn run_ok(&self, args: &[&str]) -> String {
        let out = self.command(args).output().unwrap();
        assert!(
            out.status.success(),
            "paperboy {args:?} failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A store on the child's database, opened by the test process.
    async fn store(&self) -> Store {
        let cfg = test_config(
            self.dir.path(),
            Some(self.sink.addr),
            "http://127.0.0.1:9",
            &[],
        );
        Store::open(&cfg.database).await.unwrap()
    }

    /// Stores the Hugging Face fixture's papers, listed on `listed_on`
    /// (the fixture's own day when `None`).
    async fn seed_papers(&self, listed_on: Option<NaiveDate>) {
        let mut papers = paperboy::sources::parse_hf(&std::fs::read(HF_FIXTURE).unwrap(), None)
            .expect("the fixture parses");
        assert!(papers.len() >= 20);
        if let Some(day) = listed_on {
            for p in &mut papers {
                p.listed_on = Some(day);
            }
        }
        let store = self.store().await;
        store
            .upsert_papers(PaperBatch {
                source: SourceKind::HuggingFace,
                papers: &papers,
                observed_at: Utc::now(),
                validators: &[],
            })
            .await
            .unwrap();
        store.close().await;
    }

    fn add_subscribers(&self, send_time: &str) {
        for (email, topic) in SUBSCRIBERS {
            self.run_ok(&[
                "subscribers",
                "add",
                email,
                "--topic",
                topic,
                "--confirmed",
                "--send-time",
                send_time,
                "--time-zone",
                "UTC",
            ]);
        }
    }

    /// Every delivery state of each subscriber, read after the child exits.
    async fn states(&self) -> BTreeMap<&'static str, Vec<String>> {
        let store = self.store().await;
        let mut out = BTreeMap::new();
        for (email, _) in SUBSCRIBERS {
            let sub = store
                .subscriber_by_email(&EmailAddress::parse(email).unwrap())
                .await
                .unwrap()
                .expect("subscriber exists");
            let states = store.deliveries_for(sub.id).await.unwrap();
            out.insert(email, states.into_iter().map(|(_, s, _)| s).collect());
        }
        store.close().await;
        out
    }

    /// Messages received per subscriber.
    fn counts(&self) -> BTreeMap<&'static str, usize> {
        SUBSCRIBERS
            .iter()
            .map(|(e, _)| (*e, self.sink.messages_to(e).len()))
            .collect()
    }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn expect_states(
    got: &BTreeMap<&'static str, Vec<String>>,
    want: &[(&'static str, &str)],
    context: &str,
) {
    let want: BTreeMap<&str, Vec<String>> = want
        .iter()
        .map(|(e, s)| (*e, vec![s.to_string()]))
        .collect();
    assert_eq!(got, &want, "delivery states {context}");
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum After {
    Claim,
    Send,
    Commit,
}

impl After {
    fn name(self) -> &'static str {
        match self {
            After::Claim => "after_claim",
            After::Send => "after_send",
            After::Commit => "after_commit",
        }
    }
}

/// Runs `paperboy digest --now <now>` with the fault injected at `point`
/// and insists it aborted there.
fn crash_at(install: &Install, point: After, now: &str) {
    let crashed: Output = install
        .command(&["digest", "--now", now])
        .env("PAPERBOY_FAULT_INJECT", point.name())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&crashed.stderr);
    assert_eq!(
        crashed.status.signal(),
        Some(SIGABRT),
        "the run must abort at {}; status {}, stderr: {stderr}",
        point.name(),
        crashed.status
    );
    assert!(
        stderr.contains(&format!("aborting at {}", point.name())),
        "{stderr}"
    );
}

/// Crashes a digest run at `point`, restarts after the lease expired, and
/// checks what each recipient got under `policy`.
async fn crash_and_restart(point: After, policy: &str) {
    let install = Install::new(&[("PAPERBOY__DIGEST__UNKNOWN_POLICY", policy)]);
    install.seed_papers(None).await;
    install.add_subscribers("08:00");

    // 1. The run aborts at the fault point, like a power cut.
    crash_at(&install, point, RUN_AT);

    // Before the restart: who got mail, and which delivery was caught.
    let before = install.counts();
    let caught: Vec<&str> = before
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(e, _)| *e)
        .collect();
    let crashed_state = install.states().await;
    match point {
        After::Claim => {
            assert!(
                caught.is_empty(),
                "nothing is sent before the claim's messages are prepared: {before:?}"
            );
            assert!(
                crashed_state.values().all(|s| s == &["sending"]),
                "every due delivery was claimed: {crashed_state:?}"
            );
        }
        After::Send | After::Commit => {
            assert_eq!(
                caught.len(),
                1,
                "exactly one message went out before the crash: {before:?}"
            );
            assert_eq!(before[caught[0]], 1);
            let want = if point == After::Send {
                "sending"
            } else {
                "sent"
            };
            assert_eq!(crashed_state[caught[0]], [want], "{crashed_state:?}");
        }
    }

    // 2. Restart after the lease expired: inside the catch-up window and
    //    the retry age, so everything left is due.
    let restart_at = at(RUN_AT) + Duration::seconds(LEASE_SECS) + Duration::minutes(1);
    let out = install.run_ok(&["digest", "--now", &rfc3339(restart_at)]);

    let after = install.counts();
    let states = install.states().await;
    let others: Vec<&str> = SUBSCRIBERS
        .iter()
        .map(|(e, _)| *e)
        .filter(|e| !caught.contains(e))
        .collect();
    for e in &others {
        assert_eq!(
            after[e], 1,
            "{e} was not mid-send and gets exactly one message: {after:?}"
        );
    }
    let all_sent: Vec<(&str, &str)> = SUBSCRIBERS.iter().map(|(e, _)| (*e, "sent")).collect();
    match (point, policy) {
        (After::Claim, _) | (After::Commit, _) => {
            assert!(
                after.values().all(|n| *n == 1),
                "one message each: {after:?}"
            );
            expect_states(&states, &all_sent, "after the restart");
            assert!(out.contains("unknown 0"), "no unknown outcome: {out}");
        }
        (After::Send, "resend") => {
            let victim = caught[0];
            let got = install.sink.messages_to(victim);
            assert_eq!(
                got.len(),
                2,
                "the unknown outcome is resent exactly once: {after:?}"
            );
            assert_eq!(
                got[0].data, got[1].data,
                "the resend is byte-identical (same Message-ID, Date, body)"
            );
            let id = message_id(&got[0].data).expect("the digest has a Message-ID");
            assert_eq!(message_id(&got[1].data).as_deref(), Some(id.as_str()));
            expect_states(&states, &all_sent, "after the resend");
            assert!(
                out.contains("unknown 1"),
                "the unknown outcome is reported: {out}"
            );
        }
        (After::Send, "skip") => {
            let victim = caught[0];
            assert_eq!(after[victim], 1, "skip never resends: {after:?}");
            let mut want = all_sent.clone();
            want.iter_mut().find(|(e, _)| *e == victim).unwrap().1 = "unknown";
            expect_states(&states, &want, "after the restart under skip");
            assert!(
                out.contains("unknown 1"),
                "the unknown outcome is reported: {out}"
            );
        }
        other => unreachable!("{other:?}"),
    }

    // 3. A third run sends nothing more.
    let later = restart_at + Duration::minutes(5);
    install.run_ok(&["digest", "--now", &rfc3339(later)]);
    assert_eq!(install.counts(), after, "a further run sends nothing");
}

fn message_id(data: &[u8]) -> Option<String> {
    mail_parser::MessageParser::default()
        .parse(data)?
        .message_id()
        .map(str::to_string)
}

#[tokio::test]
async fn a_crash_after_the_claim_resumes_and_sends_each_digest_once_under_resend() {
    crash_and_restart(After::Claim, "resend").await;
}

#[tokio::test]
async fn a_crash_after_the_claim_resumes_and_sends_each_digest_once_under_skip() {
    crash_and_restart(After::Claim, "skip").await;
}

#[tokio::test]
async fn a_crash_after_the_relay_accepted_resends_the_identical_bytes_once_under_resend() {
    crash_and_restart(After::Send, "resend").await;
}

#[tokio::test]
async fn a_crash_after_the_relay_accepted_leaves_it_unknown_and_unsent_under_skip() {
    crash_and_restart(After::Send, "skip").await;
}

#[tokio::test]
async fn a_crash_after_the_outcome_commit_sends_nothing_twice_under_resend() {
    crash_and_restart(After::Commit, "resend").await;
}

#[tokio::test]
async fn a_crash_after_the_outcome_commit_sends_nothing_twice_under_skip() {
    crash_and_restart(After::Commit, "skip").await;
}

/// Two crashes under `resend`: the first after the relay accepted ada's
/// digest, the second at `second` in the run that resends it.
async fn crash_twice(second: After) -> (Install, String, &'static str) {
    let install = Install::new(&[("PAPERBOY__DIGEST__UNKNOWN_POLICY", "resend")]);
    install.seed_papers(None).await;
    install.add_subscribers("08:00");
    crash_at(&install, After::Send, RUN_AT);
    // Whichever digest went out first was the one caught mid-send.
    let caught: Vec<&'static str> = SUBSCRIBERS
        .iter()
        .map(|(e, _)| *e)
        .filter(|e| !install.sink.messages_to(e).is_empty())
        .collect();
    assert_eq!(
        caught.len(),
        1,
        "exactly one digest went out before the crash"
    );
    let victim = caught[0];
    assert_eq!(install.sink.messages_to(victim).len(), 1);

    let lease_plus = Duration::seconds(LEASE_SECS) + Duration::minutes(1);
    let restart = at(RUN_AT) + lease_plus;
    crash_at(&install, second, &rfc3339(restart));
    let out = install.run_ok(&["digest", "--now", &rfc3339(restart + lease_plus)]);
    for (e, _) in SUBSCRIBERS.iter().filter(|(e, _)| *e != victim) {
        assert_eq!(
            install.sink.messages_to(e).len(),
            1,
            "{e}: {:?}",
            install.counts()
        );
    }
    let got = install.sink.messages_to(victim);
    assert_eq!(
        got.len(),
        2,
        "the first copy and one resend: {:?}",
        install.counts()
    );
    assert_eq!(got[0].data, got[1].data, "the resend is byte-identical");
    (install, out, victim)
}

#[tokio::test]
async fn a_crash_during_the_single_resend_never_leads_to_a_third_copy() {
    let (install, out, victim) = crash_twice(After::Send).await;
    let states = install.states().await;
    let want: Vec<(&str, &str)> = SUBSCRIBERS
        .iter()
        .map(|(e, _)| (*e, if *e == victim { "unknown" } else { "sent" }))
        .collect();
    expect_states(&states, &want, "after a crash mid-resend");
    assert!(out.contains("unknown 1"), "{out}");
}

#[tokio::test]
async fn a_crash_before_the_resend_is_handed_over_keeps_the_resend_for_the_next_run() {
    let (install, out, _victim) = crash_twice(After::Claim).await;
    let states = install.states().await;
    let all_sent: Vec<(&str, &str)> = SUBSCRIBERS.iter().map(|(e, _)| (*e, "sent")).collect();
    expect_states(&states, &all_sent, "after the delayed resend");
    assert!(
        out.contains("unknown 1"),
        "the resend is still reported as one: {out}"
    );
}

fn wait_exit(child: &mut Child, within: std::time::Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("paperboy did not exit within {within:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
}

#[tokio::test]
async fn sigterm_during_a_send_finishes_and_records_it_then_exits_zero() {
    let install = Install::new(&[
        ("PAPERBOY__DIGEST__CRON", "* * * * * *"),
        (
            "PAPERBOY__SERVER__BIND",
            &format!("127.0.0.1:{}", free_port()),
        ),
    ]);
    let now = Utc::now();
    install.seed_papers(Some(now.date_naive())).await;
    // Due a minute ago in real time, well inside the catch-up window.
    let send_time = (now - Duration::minutes(1)).format("%H:%M").to_string();
    install.add_subscribers(&send_time);
    install.sink.set_stall(std::time::Duration::from_secs(2));

    let mut child = install
        .command(&["serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first message is inside DATA (its reply stalled).
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    while install.sink.data_ends() == 0 {
        if let Some(s) = child.try_wait().unwrap() {
            panic!("paperboy serve exited early with {s}");
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("no digest reached DATA within 20 s");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = wait_exit(&mut child, std::time::Duration::from_secs(20));
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        status.success(),
        "graceful shutdown exits 0, got {status}: {stderr}"
    );

    let states = install.states().await;
    let counts = install.counts();
    let in_flight: Vec<&str> = counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(e, _)| *e)
        .collect();
    assert_eq!(
        in_flight.len(),
        1,
        "only the in-flight send happened: {counts:?}"
    );
    assert_eq!(counts[in_flight[0]], 1, "{counts:?}");
    assert_eq!(
        states[in_flight[0]],
        ["sent"],
        "the in-flight delivery is recorded: {states:?}"
    );
    assert!(
        states.values().flatten().all(|s| s != "sending"),
        "no delivery left leased: {states:?}"
    );
    for (e, s) in &states {
        if !in_flight.contains(e) {
            assert_eq!(
                s,
                &["pending"],
                "{e}'s delivery waits for the next run: {states:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_dry_run_prints_subscribers_and_papers_but_writes_and_sends_nothing() {
    let install = Install::new(&[]);
    install.seed_papers(None).await;
    install.add_subscribers("08:00");

    let out = install.run_ok(&["digest", "--dry-run", "--now", RUN_AT]);
    for (email, _) in SUBSCRIBERS {
        assert!(out.contains(email), "{email} listed: {out}");
    }
    assert!(
        out.contains("WebChallenger"),
        "a web-agent paper is listed: {out}"
    );
    assert!(out.contains("3 due"), "{out}");
    assert!(out.contains("nothing written or sent"), "{out}");

    let store = install.store().await;
    assert!(
        store.delivery_counts().await.unwrap().is_empty(),
        "no delivery rows"
    );
    assert_eq!(store.setting("last_digest_run").await.unwrap(), None);
    store.close().await;
    assert!(install.sink.messages().is_empty(), "nothing sent");
    assert_eq!(
        install.sink.connections(),
        0,
        "the relay was never contacted"
    );
}
