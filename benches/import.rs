//! `subscribers import` throughput and memory (targets:
//! 100k rows ≤ 5 s, 1M rows ≤ 60 s, memory flat in file size).
//!
//! `cargo bench --bench import` writes CSV files of 100k and 1M rows (not
//! timed: email, 3 topics, send time, time zone; every row valid) and
//! imports each into a fresh database in a child process (this binary
//! re-executed with `--run FILE DIR`), through the same code path as
//! `paperboy subscribers import FILE --confirmed`: the validation pass,
//! then the batched load. The child reports wall and CPU seconds and its
//! peak RSS (`VmHWM`). `-- 20000` runs chosen sizes only.

use paperboy::cli::{Command as Cli, DataFormat, SubscribersCommand};
use paperboy::config::Config;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The daemon's allocator (see `src/main.rs`), so the numbers are its own.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "common/procfs.rs"]
mod procfs;

const TOPICS: [&str; 8] = [
    "speculative decoding",
    "retrieval augmented generation",
    "emergent misalignment",
    "robot manipulation",
    "web agents",
    "LLM evaluation",
    "diffusion models",
    "graph neural networks",
];

// As the daemon does, before anything allocates.
paperboy::tune_mimalloc_at_load!();

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--run") {
        return run(&args[2], &args[3]);
    }
    let mut sizes: Vec<u64> = args[1..].iter().filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![100_000, 1_000_000];
    }
    let exe = std::env::current_exe().expect("own path");
    println!(
        "{:>9} | {:>9} {:>8} {:>8} {:>9} {:>8} | {:>8}",
        "rows", "imported", "wall_s", "cpu_s", "rows/s", "peak_MB", "file_MB"
    );
    for n in sizes {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("import.csv");
        write_file(&file, n);
        let file_mb = std::fs::metadata(&file).map_or(0, |m| m.len()) as f64 / 1e6;
        let out = Command::new(&exe)
            .args([
                "--run",
                &file.display().to_string(),
                &dir.path().display().to_string(),
            ])
            .stderr(Stdio::inherit())
            .output()
            .expect("child runs");
        // The last line is the child's numbers (the import's summary is
        // printed before it).
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = stdout.lines().last().unwrap_or("").to_string();
        let f: Vec<f64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        let [imported, wall, cpu, peak_kb] = f[..] else {
            println!("{n:>9} | failed: {}", line.trim());
            continue;
        };
        println!(
            "{n:>9} | {imported:>9} {wall:>8.2} {cpu:>8.2} {:>9.0} {:>8.0} | {file_mb:>8.1}",
            imported / wall,
            peak_kb / 1024.0
        );
    }
}

fn write_file(path: &std::path::Path, n: u64) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).expect("file"));
    writeln!(w, "email,topics,send_time,time_zone").unwrap();
    for i in 0..n {
        let t = |k: u64| TOPICS[((i * 7 + k * 3) % TOPICS.len() as u64) as usize];
        writeln!(
            w,
            "reader{i}@lab{}.example.org,{}; {}; {},{:02}:{:02},Europe/Berlin",
            i % 97,
            t(0),
            t(1),
            t(2),
            i % 24,
            (i * 5) % 60
        )
        .unwrap();
    }
    w.flush().unwrap();
}

/// The child: one import, then its numbers on one line.
fn run(file: &str, dir: &str) {
    let dir = std::path::Path::new(dir);
    let env = [
        ("PAPERBOY__DATABASE__PATH", dir.join("db.sqlite")),
        ("PAPERBOY__MAIL__OUTBOX_DIR", dir.join("outbox")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.display().to_string()))
    .chain([("PAPERBOY__LOGGING__LEVEL".into(), "warn".into())]);
    let config = Config::load_with_env(None, env).expect("config");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let started = Instant::now();
    let cpu0 = procfs::cpu_secs();
    rt.block_on(paperboy::cli::run(
        Cli::Subscribers {
            command: SubscribersCommand::Import {
                file: file.into(),
                format: DataFormat::Csv,
                confirmed: true,
                skip_invalid: false,
            },
        },
        config.clone(),
    ))
    .expect("import succeeds");
    let wall = started.elapsed().as_secs_f64();
    let cpu = procfs::cpu_secs() - cpu0;
    let imported: i64 = rt.block_on(async {
        let store = paperboy::store::Store::open(&config.database)
            .await
            .unwrap();
        let n = sqlx::query_scalar("SELECT count(*) FROM subscribers")
            .fetch_one(store.pool())
            .await
            .unwrap();
        store.close().await;
        n
    });
    println!(
        "{imported} {wall:.3} {cpu:.3} {}",
        procfs::status_kb("VmHWM:")
    );
}
