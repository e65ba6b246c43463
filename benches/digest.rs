//! End-to-end digest throughput and memory (issues 5 and 12): N active
//! subscribers, 500 candidate papers, a whole `digest::run` (plan, rank,
//! render, seal, store, send over SMTP, record) against an SMTP sink in
//! another process, next to postfix's `smtp-source` → `smtp-sink` at the
//! same message size, message count and connection count.
//!
//! `cargo bench --bench digest` runs N = 10k, 50k and 100k, each in a
//! fresh child process (this binary re-executed with `--run N PORT`) so
//! each peak RSS (`VmHWM`, reset after setup) is its own, and prints a
//! table. `-- 1000000` runs chosen sizes only; `-- 100000 --idle 120` also
//! starts the real `paperboy serve` on the database the run left (everyone
//! planned, nobody due) and reports its CPU seconds per minute over 120 s.
//! Every row says how busy the whole machine was meanwhile (cores busy,
//! from `/proc/stat`), since the bench shares it.
//!
//! The postfix ceiling needs `smtp-source` and `smtp-sink` (Debian package
//! `postfix`: `apt-get install -y postfix`); the bench installs nothing
//! and skips that column when they are missing. `smtp-source -d` keeps
//! each connection for many messages, as the engine's pool does.
//!
//! The engine's sink is another child process (`--sink`): a
//! single-threaded tokio server that speaks just enough SMTP (EHLO/HELO,
//! MAIL, RCPT, DATA, RSET, NOOP, QUIT; no PIPELINING), accepts everything
//! and counts messages and bytes, so the bench checks that every
//! subscriber's message arrived. `smtp-source` is also run into that sink,
//! which shows how the two sinks compare.
//!
//! Setup (not timed): subscribers are inserted 1,000 per transaction
//! through the store, with 3–5 topics each drawn Zipf-like from the
//! fixture vocabulary (as `benches/rank.rs` does), all due at `NOW`, all
//! with the trending fallback (so everyone gets a digest); the candidates,
//! synthesised the same way, are upserted through the papers store as two
//! Hugging Face fetches a day apart, so each has an upvote history, and
//! the run's one window (every subscriber's first daily digest) is loaded
//! as candidates before the timed run. It is a subscriber's first digest,
//! so nothing was mailed to them before.
//!
//! `--features system-alloc` builds the same with the system allocator
//! instead of mimalloc.
//!
//! `-- --model` (the MiniLM folder from `PAPERBOY_TEST_MODEL_DIR`, or
//! `--model DIR`) runs each size twice, lexical and with
//! `rank.semantic.model_dir` set, same subscribers and candidates, and
//! prints both rows. The model row first embeds the 500 candidates as the
//! pass after a fetch does (its own columns: `emb_s`, `emb_cpu`,
//! `emb_MB` peak), then times the run, which embeds every subscriber's
//! topic (all new: a fresh database) before ranking. `peak_MB` is the
//! run's peak; `PAPERBOY_BENCH_PHASES=1` prints RSS at each phase
//! boundary on stderr.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use paperboy::app::{App, Overrides};
use paperboy::config::Config;
use paperboy::digest::{self, Picker, WindowPickers};
use paperboy::domain::{EmailAddress, Frequency, Paper, Preferences, SourceKind, SubscriberState};
use paperboy::store::papers::PaperBatch;
use paperboy::store::subscribers::{ConsentInput, ConsentMethod};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// The daemon's allocator (see `src/main.rs`), so the numbers are its own.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "common/procfs.rs"]
mod procfs;
#[path = "common/ranking.rs"]
mod ranking;
#[path = "common/world.rs"]
mod world;
use ranking::Ranking;
use world::World;

const CANDIDATES: usize = 500;
/// Parallel sends and SMTP connections, for the engine and the blaster.
const CONNECTIONS: u32 = 16;
/// No child may outlive this, whatever happens.
const WATCHDOG: std::time::Duration = std::time::Duration::from_secs(45 * 60);

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 13, 8, 0, 0).unwrap()
}

// As the daemon does, before anything allocates.
paperboy::tune_mimalloc_at_load!();

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| -> u64 { args[i].parse().expect("number") };
    match args.get(1).map(String::as_str) {
        Some("--sink") => return sink(),
        Some("--run") => {
            let ranking = Ranking::decode(&args[5]);
            return run(arg(2), arg(3) as u16, arg(4), ranking);
        }
        _ => {}
    }
    // `cargo bench` passes `--bench`; any other numbers are sizes.
    let idle = args.iter().position(|a| a == "--idle").map_or(0, |i| {
        args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(120)
    });
    let model = Ranking::from_args(&args);
    let mut sizes: Vec<u64> = args[1..]
        .iter()
        .enumerate()
        .filter(|(i, _)| idle == 0 || args[*i] != "--idle")
        .filter_map(|(_, a)| a.parse().ok())
        .collect();
    let mut rankings = vec![Ranking::Lexical];
    rankings.extend(model);
    if sizes.is_empty() {
        sizes = vec![10_000, 50_000, 100_000];
    }
    let exe = std::env::current_exe().expect("own path");
    let postfix = Postfix::find();
    if postfix.is_none() {
        println!(
            "postfix's smtp-source/smtp-sink not found (apt-get install -y postfix): no ceiling"
        );
    }
    println!(
        "{:>8} {:>7} | {:>7} {:>8} {:>8} {:>7} {:>7} | {:>8} {:>8} {:>7} | {:>6} {:>7} {:>6} | {:>6} | {:>9} {:>6} {:>9} | {:>9}",
        "subs",
        "ranking",
        "sent",
        "wall_s",
        "cpu_s",
        "µs/msg",
        "msgs/s",
        "setup_MB",
        "peak_MB",
        "avg_KB",
        "emb_s",
        "emb_cpu",
        "emb_MB",
        "busy",
        "postfix/s",
        "ratio",
        "src→own/s",
        "idle_cpu/min"
    );
    for n in sizes {
        for ranking in &rankings {
            one_size(&exe, n, idle, ranking, postfix.as_ref());
        }
    }
}

/// One child run of `n` subscribers, and its row.
fn one_size(
    exe: &std::path::Path,
    n: u64,
    idle: u64,
    ranking: &Ranking,
    postfix: Option<&Postfix>,
) {
    let sink = Sink::start(exe);
    let m0 = procfs::machine_ticks();
    let out = Command::new(exe)
        .args([
            "--run",
            &n.to_string(),
            &sink.port.to_string(),
            &idle.to_string(),
            &ranking.encode(),
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("child runs");
    let m1 = procfs::machine_ticks();
    let (received, bytes) = sink.stop();
    let (line, f) = numbers(&out.stdout);
    if !out.status.success() || f.len() != 11 {
        println!("{n:>8} {:>7} | failed: {}", ranking.name(), line.trim());
        return;
    }
    let [sent, _skipped, index_s, run_s, cpu_s, setup_kb, peak_kb, idle_cpu, emb_s, emb_cpu, emb_kb] =
        f[..]
    else {
        unreachable!()
    };
    assert_eq!(
        received as f64, sent,
        "the sink received every sent message"
    );
    assert_eq!(received, n, "every subscriber's digest arrived");
    let avg_bytes = bytes / received.max(1);
    let wall = index_s + run_s;
    let rate = sent / wall;
    // The ceiling does not depend on ranking: measured on the first row only.
    let postfix = postfix.filter(|_| matches!(ranking, Ranking::Lexical));
    let ceiling = postfix.map(|p| p.ceiling(n, avg_bytes as usize));
    let own = postfix.map(|p| {
        let sink = Sink::start(exe);
        let r = p.source_into(sink.port, n, avg_bytes as usize);
        let (got, _) = sink.stop();
        assert_eq!(got, n, "smtp-source delivered everything to the bench sink");
        r
    });
    let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    let model = matches!(ranking, Ranking::Model(_));
    let shown = |v: f64, digits: usize| {
        if model {
            format!("{v:.digits$}")
        } else {
            "-".into()
        }
    };
    println!(
            "{:>8} {:>7} | {:>7} {:>8.1} {:>8.1} {:>7.0} {:>7.0} | {:>8.0} {:>8.0} {:>7.1} | {:>6} {:>7} {:>6} | {:>6.2} | {:>9} {:>6} {:>9} | {:>9}",
            n,
            ranking.name(),
            sent,
            wall,
            cpu_s,
            cpu_s * 1e6 / sent,
            rate,
            setup_kb / 1024.0,
            peak_kb / 1024.0,
            avg_bytes as f64 / 1024.0,
            shown(emb_s, 1),
            shown(emb_cpu, 1),
            shown(emb_kb / 1024.0, 0),
            procfs::busy_cores(m0, m1),
            show(ceiling.map(|c| c.rate)),
            ceiling.map_or("-".into(), |c| format!("{:.0}%", rate * 100.0 / c.rate)),
            show(own.map(|c| c.rate)),
            if idle > 0 { format!("{idle_cpu:.2}") } else { "-".into() },
        );
    if let Some(c) = ceiling {
        println!(
            "{:>8}   postfix: {n} messages of {:.1} KB over {CONNECTIONS} connections in {:.1} s; \
                 smtp-source {:.1} CPU-s, smtp-sink {:.1} CPU-s, {} received",
            "",
            avg_bytes as f64 / 1024.0,
            c.wall,
            c.cpu_source,
            c.cpu_sink,
            c.received
        );
    }
}

/// Postfix's test tools, found on the usual paths.
struct Postfix {
    source: std::path::PathBuf,
    sink: std::path::PathBuf,
}

/// One `smtp-source` run.
#[derive(Clone, Copy)]
struct Ceiling {
    rate: f64,
    wall: f64,
    cpu_source: f64,
    cpu_sink: f64,
    received: u64,
}

impl Postfix {
    fn find() -> Option<Postfix> {
        let find = |name: &str| {
            ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
                .iter()
                .map(|d| std::path::Path::new(d).join(name))
                .find(|p| p.exists())
        };
        Some(Postfix {
            source: find("smtp-source")?,
            sink: find("smtp-sink")?,
        })
    }

    /// `smtp-source` → `smtp-sink`: `count` messages of about `size`
    /// bytes over `CONNECTIONS` connections.
    fn ceiling(&self, count: u64, size: usize) -> Ceiling {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut cmd = Command::new(&self.sink);
        cmd.arg("-c");
        if procfs::status_kb("Uid:") == 0 {
            // smtp-sink refuses to run as root without a user to become.
            cmd.args(["-u", "nobody"]);
        }
        let out = tempfile::NamedTempFile::new().unwrap();
        let mut sink = cmd
            .args([format!("127.0.0.1:{port}"), "1024".into()])
            .stdout(out.reopen().unwrap())
            .spawn()
            .expect("smtp-sink starts");
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let mut c = self.source_into(port, count, size);
        c.cpu_sink = procfs::pid_cpu_secs(sink.id());
        sink.kill().ok();
        sink.wait().ok();
        // `-c` keeps rewriting "sess=… quit=… mesg=N" on one line.
        let text = std::fs::read_to_string(out.path()).unwrap_or_default();
        c.received = text
            .rsplit("mesg=")
            .next()
            .and_then(|t| t.split(|ch: char| !ch.is_ascii_digit()).next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        c
    }

    /// `smtp-source -d` (sessions kept for many messages) into `port`.
    fn source_into(&self, port: u16, count: u64, size: usize) -> Ceiling {
        let cpu0 = procfs::children_cpu_secs();
        let t0 = Instant::now();
        let status = Command::new(&self.source)
            .args(["-d", "-l", &size.to_string(), "-m", &count.to_string()])
            .args(["-s", &CONNECTIONS.to_string()])
            .args(["-f", "digest@paperboy.example", "-t", "reader@example.org"])
            .arg(format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .status()
            .expect("smtp-source runs");
        let wall = t0.elapsed().as_secs_f64();
        assert!(status.success(), "smtp-source failed");
        Ceiling {
            rate: count as f64 / wall,
            wall,
            cpu_source: procfs::children_cpu_secs() - cpu0,
            cpu_sink: 0.0,
            received: count,
        }
    }
}

/// A child's one output line, and the numbers in it.
fn numbers(stdout: &[u8]) -> (String, Vec<f64>) {
    let line = String::from_utf8_lossy(stdout).into_owned();
    let f = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    (line, f)
}

/// The sink child process: its port, and its stdin to stop it.
struct Sink {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
    port: u16,
}

impl Sink {
    fn start(exe: &std::path::Path) -> Sink {
        let mut child = Command::new(exe)
            .arg("--sink")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sink starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let port = line.trim().parse().expect("sink prints its port");
        Sink {
            child,
            stdout,
            port,
        }
    }

    /// Closes the sink's stdin; it answers with (messages, bytes).
    fn stop(mut self) -> (u64, u64) {
        drop(self.child.stdin.take());
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        self.child.wait().unwrap();
        let mut f = line.split_whitespace().map(|v| v.parse().unwrap_or(0));
        (f.next().unwrap_or(0), f.next().unwrap_or(0))
    }
}

fn watchdog() {
    std::thread::spawn(|| {
        std::thread::sleep(WATCHDOG);
        eprintln!("watchdog: giving up after {WATCHDOG:?}");
        std::process::exit(2);
    });
}

#[derive(Default)]
struct SinkStats {
    messages: AtomicU64,
    bytes: AtomicU64,
}

fn sink() {
    watchdog();
    let stats = Arc::new(SinkStats::default());
    {
        let stats = stats.clone();
        std::thread::spawn(move || {
            // The parent closes our stdin when it is done.
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            println!(
                "{} {}",
                stats.messages.load(Ordering::Relaxed),
                stats.bytes.load(Ordering::Relaxed)
            );
            std::process::exit(0);
        });
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap().port());
        std::io::stdout().flush().unwrap();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).ok();
            tokio::spawn(smtp_session(stream, stats.clone()));
        }
    });
}

/// One SMTP session: every command succeeds; a message is counted when
/// its DATA ends.
async fn smtp_session(stream: tokio::net::TcpStream, stats: Arc<SinkStats>) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = tokio::io::BufReader::with_capacity(64 * 1024, r);
    let mut line = Vec::with_capacity(1024);
    w.write_all(b"220 sink.test ESMTP\r\n").await?;
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or(b"").to_ascii_uppercase();
        let reply: &[u8] = match &verb[..] {
            b"EHLO" => b"250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            b"HELO" | b"MAIL" | b"RCPT" | b"RSET" | b"NOOP" => b"250 2.0.0 OK\r\n",
            b"DATA" => {
                w.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut bytes = 0;
                loop {
                    line.clear();
                    if r.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" {
                        break;
                    }
                    bytes += line.len() as u64;
                }
                stats.messages.fetch_add(1, Ordering::Relaxed);
                stats.bytes.fetch_add(bytes, Ordering::Relaxed);
                b"250 2.0.0 queued\r\n"
            }
            b"QUIT" => {
                w.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 5.5.2 not implemented\r\n",
        };
        w.write_all(reply).await?;
    }
}

/// The bench configuration, as `PAPERBOY__…` environment variables (the
/// idle `serve` gets the same ones).
fn env_vars(dir: &std::path::Path, port: u16, ranking: &Ranking) -> Vec<(String, String)> {
    let conns = CONNECTIONS.to_string();
    let model: Vec<(&str, String)> = match ranking {
        Ranking::Lexical => vec![("RANK__SEMANTIC__ENABLED", "false".into())],
        Ranking::Model(d) => vec![
            ("RANK__SEMANTIC__ENABLED", "true".into()),
            ("RANK__SEMANTIC__MODEL_DIR", d.display().to_string()),
        ],
    };
    let env = [
        (
            "DATABASE__PATH",
            dir.join("bench.sqlite").display().to_string(),
        ),
        ("SERVER__BASE_URL", "https://paperboy.example".into()),
        ("MAIL__FROM", "paperboy <digest@paperboy.example>".into()),
        ("MAIL__TRANSPORT", "smtp".into()),
        ("MAIL__SMTP__HOST", "127.0.0.1".into()),
        ("MAIL__SMTP__PORT", port.to_string()),
        ("MAIL__SMTP__TLS", "none".into()),
        ("MAIL__SMTP__POOL_SIZE", conns.clone()),
        ("DIGEST__CONCURRENCY", conns),
        // High enough never to pace.
        ("DIGEST__MAX_PER_SECOND", "1000000".into()),
        ("SOURCES__HUGGINGFACE__ENABLED", "false".into()),
    ];
    env.into_iter()
        .chain(model)
        .map(|(k, v)| (format!("PAPERBOY__{k}"), v))
        .collect()
}

fn config(dir: &std::path::Path, port: u16, ranking: &Ranking) -> Config {
    Config::load_with_env(None, env_vars(dir, port, ranking)).expect("bench config is valid")
}

/// One size, in this process: prints `sent skipped index_s run_s cpu_s
/// setup_kb peak_kb idle_cpu_per_minute embed_s embed_cpu_s embed_peak_kb`
/// (idle 0 without `idle_secs`; the embed numbers 0 when lexical).
fn run(n: u64, port: u16, idle_secs: u64, ranking: Ranking) {
    watchdog();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        // The bench's clock: the embedding window is counted from it.
        let clock = Arc::new(paperboy::clock::ManualClock::new(now()));
        let overrides = Overrides {
            clock: Some(clock),
            ..Overrides::default()
        };
        let app = App::build(config(dir.path(), port, &ranking), overrides)
            .await
            .unwrap();
        let mut rng = StdRng::seed_from_u64(42);
        let world = World::from_fixtures();
        let authors = store_papers(&app, &world, &mut rng).await;
        store_subscribers(&app, &world, &authors, n, &mut rng).await;
        drop(world);
        phase("setup");
        let embed = match ranking {
            Ranking::Lexical => (0.0, 0.0, 0),
            Ranking::Model(_) => embed_papers(&app).await,
        };
        let setup_kb = procfs::status_kb("VmRSS:");
        // Resets VmHWM to the current RSS, so the peak is the run's own.
        std::fs::write("/proc/self/clear_refs", "5").expect("VmHWM reset");
        // Profiling the run alone: `perf record --control fifo:CTL -D -1`
        // with PERF_CTL=CTL starts sampling here, after the setup.
        if let Ok(ctl) = std::env::var("PERF_CTL") {
            std::fs::write(ctl, "enable\n").expect("perf control fifo");
        }

        let cpu0 = procfs::cpu_secs();
        let t0 = Instant::now();
        // Every subscriber's first daily digest shares one window: its
        // index is built here, as the run would on first use
        // (`digest::windows::ensure_loaded`: candidates, then every
        // subscriber's topic vectors when a model is configured).
        let picker = WindowPickers::new();
        let window = paperboy::domain::window(
            Frequency::Daily,
            None,
            now().date_naive(),
            app.config.window_limits(),
        );
        let ranked = digest::RankPicker::for_window(&app, &window, now())
            .await
            .unwrap();
        phase("index");
        ranked.add_active_topics(&app, now()).await;
        phase("topics");
        picker.load(window, ranked);
        let index_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let report = digest::run(&app, &picker, now()).await.unwrap();
        let run_s = t1.elapsed().as_secs_f64();
        let cpu_s = procfs::cpu_secs() - cpu0;
        let peak_kb = procfs::status_kb("VmHWM:");
        phase("sent");
        assert_eq!(report.counts.planned, n, "{report:?}");
        assert_eq!(report.state, digest::RunState::Done, "{report:?}");
        app.transport.shutdown().await;
        let idle = if idle_secs > 0 {
            idle_serve(app, dir.path(), port, idle_secs, &ranking).await
        } else {
            0.0
        };
        println!(
            "{} {} {index_s:.3} {run_s:.3} {cpu_s:.2} {setup_kb} {peak_kb} {idle:.3} {:.3} {:.2} {}",
            report.counts.sent, report.counts.skipped, embed.0, embed.1, embed.2
        );
    });
}

/// The pass a fetch is followed by: loads the model and embeds the stored
/// candidates. Returns its wall seconds, CPU seconds and peak RSS (KiB).
async fn embed_papers(app: &App) -> (f64, f64, u64) {
    std::fs::write("/proc/self/clear_refs", "5").expect("VmHWM reset");
    let (cpu0, t0) = (procfs::cpu_secs(), Instant::now());
    let status = app.semantic.load().await;
    assert_eq!(status.name(), "ready", "{}", status.describe());
    phase("loaded");
    app.embed_papers().await;
    let done = (
        t0.elapsed().as_secs_f64(),
        procfs::cpu_secs() - cpu0,
        procfs::status_kb("VmHWM:"),
    );
    phase("embedded");
    done
}

/// With `PAPERBOY_BENCH_PHASES` set: RSS (anonymous and file-backed) and
/// the peak so far at a phase boundary, on stderr.
fn phase(name: &str) {
    if std::env::var_os("PAPERBOY_BENCH_PHASES").is_none() {
        return;
    }
    let mb = |k: &str| procfs::status_kb(k) as f64 / 1024.0;
    eprintln!(
        "  phase {name:>9}: rss {:6.1} MB (anon {:6.1}, file {:5.1}), peak {:6.1} MB, cpu {:6.2} s",
        mb("VmRSS:"),
        mb("RssAnon:"),
        mb("RssFile:"),
        mb("VmHWM:"),
        procfs::cpu_secs()
    );
}

/// Runs the real `paperboy serve` on the database a run left, with nobody
/// due, and returns its CPU seconds per minute over `secs` (after a
/// 20-second start-up it is not charged for).
///
/// The run was for the bench's fixed `NOW`; the wall clock is later. So
/// that the daemon's first tick is idle too, every stored next due
/// instant is first moved past the wall clock (what that first tick
/// would do, minus planning), and `serve` gets `catch_up_hours = 0`: the
/// bench subscribers' 08:00 UTC is never caught up, only hit exactly
/// (do not start it a few minutes before 08:00 UTC).
async fn idle_serve(
    app: App,
    dir: &std::path::Path,
    port: u16,
    secs: u64,
    ranking: &Ranking,
) -> f64 {
    let wall = Utc::now();
    let advance = move |t: &paperboy::domain::Timing| paperboy::store::schedule::Evaluation {
        due: None,
        next_due: digest::schedule::next_due_after(t, wall),
    };
    let limits = app.config.window_limits();
    let window_of = move |t: &paperboy::domain::Timing, date, last| {
        paperboy::domain::window(t.frequency, last, date, limits)
    };
    while app
        .store
        .plan_due_page(
            wall,
            10_000,
            chrono_tz::IANA_TZDB_VERSION,
            &advance,
            &window_of,
        )
        .await
        .unwrap()
        .evaluated
        > 0
    {}
    app.store.close().await;
    let bind = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_paperboy"))
        .arg("serve")
        .envs(env_vars(dir, port, ranking))
        .env("PAPERBOY__SERVER__BIND", bind.to_string())
        .env("PAPERBOY__DIGEST__CATCH_UP_HOURS", "0")
        .env("PAPERBOY__LOGGING__LEVEL", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("paperboy serve starts");
    tokio::time::sleep(std::time::Duration::from_secs(20)).await;
    let cpu0 = procfs::pid_cpu_secs(child.id());
    tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
    let cpu1 = procfs::pid_cpu_secs(child.id());
    child.kill().ok();
    child.wait().ok();
    (cpu1 - cpu0) * 60.0 / secs as f64
}

/// Stores the candidates as two Hugging Face fetches (yesterday's and
/// today's upvotes); returns some of their authors for subscribers to
/// follow.
async fn store_papers(app: &App, world: &World, rng: &mut StdRng) -> Vec<String> {
    let candidates = world.candidates(CANDIDATES, now(), rng);
    let mut yesterday: Vec<Paper> = candidates.iter().map(|c| c.paper.clone()).collect();
    for (p, c) in yesterday.iter_mut().zip(&candidates) {
        p.upvotes = Some(c.history[0].upvotes);
    }
    let today: Vec<Paper> = candidates.iter().map(|c| c.paper.clone()).collect();
    for (papers, at) in [
        (&yesterday, now() - Duration::hours(26)),
        (&today, now() - Duration::hours(1)),
    ] {
        for chunk in papers.chunks(100) {
            app.store
                .upsert_papers(PaperBatch {
                    source: SourceKind::HuggingFace,
                    papers: chunk,
                    observed_at: at,
                    validators: &[],
                })
                .await
                .unwrap();
        }
    }
    candidates
        .iter()
        .step_by(10)
        .map(|c| c.paper.authors[0].clone())
        .collect()
}

/// N active subscribers, daily at 08:00 UTC, 1,000 per transaction.
async fn store_subscribers(app: &App, world: &World, authors: &[String], n: u64, rng: &mut StdRng) {
    let links = app.links.clone();
    let hash = move |id, g| links.manage_token_hash(id, g);
    let consent = ConsentInput {
        method: ConsentMethod::OperatorImport,
        source: "bench".into(),
        consent_text_hash: "bench".into(),
        ip: None,
    };
    let mut i = 0;
    while i < n {
        let page: Vec<(EmailAddress, Preferences)> = (i..(i + 1000).min(n))
            .map(|k| {
                let topics = (0..rng.gen_range(3..=5))
                    .map(|_| world.zipf_topic(rng).to_string())
                    .collect();
                let prefs = Preferences {
                    topics,
                    excluded: if rng.gen_bool(0.2) {
                        vec![world.word(rng).to_string()]
                    } else {
                        vec![]
                    },
                    authors: if rng.gen_bool(0.1) {
                        vec![authors[rng.gen_range(0..authors.len())].clone()]
                    } else {
                        vec![]
                    },
                    fallback_trending: true,
                    ..Preferences::new(
                        10,
                        NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
                        chrono_tz::UTC,
                    )
                };
                let email = EmailAddress::parse(&format!("reader{k}@example.org")).unwrap();
                (email, prefs)
            })
            .collect();
        app.store
            .add_subscribers(
                &page,
                SubscriberState::Active,
                &consent,
                &hash,
                now() - Duration::days(30),
            )
            .await
            .unwrap();
        i += page.len() as u64;
    }
}
