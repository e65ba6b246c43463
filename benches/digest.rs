//! End-to-end digest throughput (issue 5): N active subscribers, 2,000
//! candidate papers, a whole `digest::run` (plan, rank, render, seal,
//! store, send over SMTP, record) against a loopback SMTP sink, next to
//! the same sink's ceiling measured with a raw blaster.
//!
//! `cargo bench --bench digest` runs N = 10k, 50k and 100k, each in a
//! fresh child process (this binary re-executed with `--run N PORT`) so
//! each peak RSS (`VmHWM`, reset after setup) is its own, then the blaster
//! (`--blast`), and prints a table. `-- 20000` runs chosen sizes only.
//!
//! The sink is another child process (`--sink`): a single-threaded tokio
//! server that speaks just enough SMTP (EHLO/HELO, MAIL, RCPT, DATA, RSET,
//! NOOP, QUIT; no PIPELINING), accepts everything and counts messages and
//! bytes. Keeping it out of the measured process keeps its CPU time and
//! memory out of the engine's numbers. The blaster sends pre-built
//! messages of the engine's average size through the engine's own SMTP
//! transport (same client stack, same pool) over the same number of
//! connections, so the ratio is the engine's own overhead.
//!
//! Setup (not timed): subscribers are inserted 1,000 per transaction
//! through the store, with 3–5 topics each drawn Zipf-like from the
//! fixture vocabulary (as `benches/rank.rs` does), all due at `NOW`;
//! 2,000 papers synthesised the same way are upserted through the papers
//! store as two Hugging Face fetches a day apart, so each has an upvote
//! history, and the run's one window (every subscriber's first daily
//! digest) is loaded as candidates before the timed run. It is a
//! subscriber's first digest, so nothing was mailed to them before.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use paperboy::app::{App, Overrides};
use paperboy::config::Config;
use paperboy::deliver::{Composed, Transport};
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
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "common/procfs.rs"]
mod procfs;
#[path = "common/world.rs"]
mod world;
use world::World;

const CANDIDATES: usize = 2_000;
/// Parallel sends and SMTP connections, for the engine and the blaster.
const CONNECTIONS: u32 = 16;
/// Messages the blaster sends.
const BLAST: u64 = 50_000;
/// No child may outlive this, whatever happens.
const WATCHDOG: std::time::Duration = std::time::Duration::from_secs(20 * 60);

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 13, 8, 0, 0).unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| -> u64 { args[i].parse().expect("number") };
    match args.get(1).map(String::as_str) {
        Some("--sink") => return sink(),
        Some("--run") => return run(arg(2), arg(3) as u16),
        Some("--blast") => return blast(arg(2) as u16, arg(3), arg(4) as usize),
        _ => {}
    }
    // `cargo bench` passes `--bench`; any numbers are sizes.
    let mut sizes: Vec<u64> = args[1..].iter().filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![10_000, 50_000, 100_000];
    }
    let exe = std::env::current_exe().expect("own path");
    println!(
        "{:>8} | {:>7} {:>7} {:>8} {:>8} {:>8} {:>7} {:>6} | {:>8} {:>8} | {:>7}",
        "subs",
        "sent",
        "skipped",
        "index_s",
        "run_s",
        "cpu_s",
        "msgs/s",
        "cpu/%",
        "setup_MB",
        "peak_MB",
        "avg_KB"
    );
    let mut avg_bytes = 0;
    let mut best_rate = 0f64;
    for n in sizes {
        let sink = Sink::start(&exe);
        let out = Command::new(&exe)
            .args(["--run", &n.to_string(), &sink.port.to_string()])
            .stderr(Stdio::inherit())
            .output()
            .expect("child runs");
        let (received, bytes) = sink.stop();
        let (line, f) = numbers(&out.stdout);
        if !out.status.success() || f.len() != 8 {
            println!("{n:>8} | failed: {}", line.trim());
            continue;
        }
        let [sent, skipped, index_s, run_s, cpu_s, setup_kb, peak_kb, _] = f[..] else {
            unreachable!()
        };
        assert_eq!(
            received as f64, sent,
            "the sink received every sent message"
        );
        avg_bytes = bytes / received.max(1);
        let rate = sent / (index_s + run_s);
        best_rate = best_rate.max(rate);
        println!(
            "{:>8} | {:>7} {:>7} {:>8.2} {:>8.2} {:>8.2} {:>7.0} {:>6.0} | {:>8.0} {:>8.0} | {:>7.1}",
            n,
            sent,
            skipped,
            index_s,
            run_s,
            cpu_s,
            rate,
            cpu_s * 100.0 / (index_s + run_s),
            setup_kb / 1024.0,
            peak_kb / 1024.0,
            avg_bytes as f64 / 1024.0
        );
    }
    if avg_bytes == 0 {
        return;
    }
    let sink = Sink::start(&exe);
    let out = Command::new(&exe)
        .args([
            "--blast",
            &sink.port.to_string(),
            &BLAST.to_string(),
            &avg_bytes.to_string(),
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("blaster runs");
    let (received, _) = sink.stop();
    let (line, f) = numbers(&out.stdout);
    if f.len() != 2 {
        println!("blaster failed: {}", line.trim());
        return;
    }
    let rate = received as f64 / f[0];
    println!(
        "raw ceiling: {received} messages of {:.1} KB over {CONNECTIONS} connections in {:.2} s \
         (cpu {:.2} s) = {rate:.0} msgs/s; best engine run is {:.2}x slower",
        avg_bytes as f64 / 1024.0,
        f[0],
        f[1],
        rate / best_rate
    );
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

fn config(dir: &std::path::Path, port: u16) -> Config {
    let conns = CONNECTIONS.to_string();
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
    Config::load_with_env(
        None,
        env.into_iter().map(|(k, v)| (format!("PAPERBOY__{k}"), v)),
    )
    .expect("bench config is valid")
}

/// One size, in this process: prints `sent skipped index_s run_s cpu_s
/// setup_kb peak_kb 0`.
fn run(n: u64, port: u16) {
    watchdog();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let app = App::build(config(dir.path(), port), Overrides::default())
            .await
            .unwrap();
        let mut rng = StdRng::seed_from_u64(42);
        let world = World::from_fixtures();
        let authors = store_papers(&app, &world, &mut rng).await;
        store_subscribers(&app, &world, &authors, n, &mut rng).await;
        drop(world);
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
        // index is built here, as the run would on first use.
        let picker = WindowPickers::new(&app.synonyms, now());
        let window = paperboy::domain::window(
            Frequency::Daily,
            None,
            now().date_naive(),
            app.config.window_limits(),
        );
        picker.load(window, app.store.candidates_in(&window).await.unwrap());
        let index_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let report = digest::run(&app, &picker, now()).await.unwrap();
        let run_s = t1.elapsed().as_secs_f64();
        let cpu_s = procfs::cpu_secs() - cpu0;
        let peak_kb = procfs::status_kb("VmHWM:");
        assert_eq!(report.counts.planned, n, "{report:?}");
        assert_eq!(report.state, digest::RunState::Done, "{report:?}");
        println!(
            "{} {} {index_s:.3} {run_s:.3} {cpu_s:.2} {setup_kb} {peak_kb} 0",
            report.counts.sent, report.counts.skipped
        );
        app.transport.shutdown().await;
    });
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
                    categories: vec![],
                    digest_size: 10,
                    frequency: Frequency::Daily,
                    send_time: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
                    time_zone: chrono_tz::UTC,
                    fallback_trending: rng.gen_bool(0.3),
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

/// The raw ceiling: `count` pre-built messages of about `size` bytes
/// through the engine's own SMTP transport, `CONNECTIONS` at a time.
/// Prints `wall_s cpu_s`.
fn blast(port: u16, count: u64, size: usize) {
    watchdog();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let transport = Arc::new(Transport::from_config(&config(dir.path(), port)).unwrap());
        let mut bytes = b"From: paperboy <digest@paperboy.example>\r\n\
            To: reader@example.org\r\nSubject: raw ceiling\r\n\
            MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            .to_vec();
        while bytes.len() < size {
            bytes.extend_from_slice(&[b'x'; 76]);
            bytes.extend_from_slice(b"\r\n");
        }
        let bytes = Arc::new(bytes);
        let cpu0 = procfs::cpu_secs();
        let t0 = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for c in 0..CONNECTIONS as u64 {
            let (transport, bytes) = (transport.clone(), bytes.clone());
            tasks.spawn(async move {
                for k in (c..count).step_by(CONNECTIONS as usize) {
                    let m = Composed {
                        envelope: lettre::address::Envelope::new(
                            Some("digest@paperboy.example".parse().unwrap()),
                            vec![format!("reader{k}@example.org").parse().unwrap()],
                        )
                        .unwrap(),
                        bytes: bytes.to_vec(),
                        message_id: String::new(),
                    };
                    transport.send(&m).await.unwrap();
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        println!(
            "{:.3} {:.2}",
            t0.elapsed().as_secs_f64(),
            procfs::cpu_secs() - cpu0
        );
        transport.shutdown().await;
    });
}
