//! Cost of embedding papers with the real MiniLM-L6 weights: papers per
//! second (and per core), CPU seconds and peak RSS, for a day of papers.
//!
//! `cargo bench --bench embed` runs each configuration in a fresh child
//! process (this binary re-executed with `--child N TOKENS`) so each peak
//! RSS (`VmHWM`) is its own. `-- --only N TOKENS` runs one.
//!
//! Papers are the recorded fixtures' titles and abstracts (and HF AI
//! summaries and keywords), cycled to N papers with a numbered suffix so
//! no two texts are equal. The model comes from `PAPERBOY_TEST_MODEL_DIR`
//! or `target/test-model/all-MiniLM-L6-v2` (scripts/test installs it).

use chrono::{TimeZone, Utc};
use paperboy::embed::{Encoder, Family, Side};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

#[path = "common/procfs.rs"]
mod procfs;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let n = |j: usize| args[i + j].parse::<usize>().expect("number");
        child(n(1), n(2));
        return;
    }
    let configs: Vec<(usize, usize)> = if let Some(i) = args.iter().position(|a| a == "--only") {
        let n = |j: usize| args[i + j].parse::<usize>().expect("number");
        vec![(n(1), n(2))]
    } else {
        vec![(200, 128), (200, 256), (2_000, 256)]
    };
    println!(
        "{:>6} {:>6} | {:>8} {:>8} {:>8} {:>10} {:>12} | {:>8} {:>8}",
        "papers",
        "tokens",
        "load_s",
        "wall_s",
        "cpu_s",
        "papers/s",
        "papers/cpu-s",
        "rss_MB",
        "peak_MB"
    );
    let exe = std::env::current_exe().expect("own path");
    for (n, tokens) in configs {
        let out = Command::new(&exe)
            .args(["--child", &n.to_string(), &tokens.to_string()])
            .output()
            .expect("child runs");
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        }
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
}

fn child(n: usize, tokens: usize) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::var_os("PAPERBOY_TEST_MODEL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target/test-model/all-MiniLM-L6-v2"));
    let now = Utc.with_ymd_and_hms(2026, 6, 14, 8, 0, 0).unwrap();
    let corpus = paperboy::fixtures::recorded_candidates(&root.join("tests/fixtures"), now)
        .expect("tests/fixtures");
    let texts: Vec<String> = (0..n)
        .map(|i| {
            let p = &corpus[i % corpus.len()].paper;
            format!("{} ({i})", paperboy::embed::paper_text(p))
        })
        .collect();
    let cpu0 = procfs::cpu_secs();
    let t0 = Instant::now();
    let enc = Encoder::load(
        &dir,
        "sentence-transformers/all-MiniLM-L6-v2",
        Family::Auto,
        tokens,
    )
    .unwrap_or_else(|e| panic!("{e} (run scripts/test once to install the MiniLM weights)"));
    let load = t0.elapsed().as_secs_f64();
    let cpu1 = procfs::cpu_secs();
    let t1 = Instant::now();
    // As the background pass does.
    let mut dims = 0;
    for chunk in texts.chunks(paperboy::embed::PAPER_BATCH) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        dims += enc.encode(&refs, Side::Passage).expect("encodes").len();
    }
    std::hint::black_box(dims);
    let wall = t1.elapsed().as_secs_f64();
    let cpu = procfs::cpu_secs() - cpu1;
    let _ = cpu0;
    println!(
        "{:>6} {:>6} | {:>8.2} {:>8.1} {:>8.1} {:>10.1} {:>12.2} | {:>8.0} {:>8.0}",
        n,
        tokens,
        load,
        wall,
        cpu,
        n as f64 / wall,
        n as f64 / cpu,
        procfs::status_kb("VmRSS:") as f64 / 1024.0,
        procfs::status_kb("VmHWM:") as f64 / 1024.0
    );
}
