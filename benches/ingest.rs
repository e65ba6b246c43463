//! Ingest benchmark: parse and upsert N papers synthesised from the
//! recorded fixtures, as the fetch path does it.
//!
//! Each paper arrives twice: once in a Hugging Face page (100 items per
//! page, one transaction per page, upvote observation recorded) and once
//! in an arXiv RSS feed (1,000 items per document, one transaction per
//! document), so the second pass exercises the merge. Input generation is
//! not timed, and only one page/document exists at a time, as in a real
//! fetch.
//!
//! Run: `cargo bench --bench ingest` (sizes 1k, 10k, 100k) or
//! `cargo bench --bench ingest -- 1000 5000`. Each size runs in a fresh
//! child process so peak RSS (`VmHWM`) is per size. The pool size is the
//! default config's (`BENCH_MAX_CONNECTIONS` overrides it).

#[path = "common/procfs.rs"]
mod procfs;

use chrono::{TimeZone, Utc};
use paperboy::domain::SourceKind;
use paperboy::sources::{parse_arxiv_rss, parse_hf};
use paperboy::store::papers::PaperBatch;
use paperboy::store::Store;
use paperboy::store::StoreOptions;
use serde_json::Value;
use std::process::Command;
use std::time::{Duration, Instant};

const HF_PAGE: usize = 100;
const FEED_DOC: usize = 1000;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Unique new-style ids: `2101.00001`, … (five-digit numbers, yymm ≥ 1501).
fn synthetic_id(i: usize) -> String {
    format!("{}.{:05}", 2101 + i / 99_999, i % 99_999 + 1)
}

struct Templates {
    hf: Vec<Value>,
    rss_head: String,
    rss_items: Vec<(String, String)>, // (item text, its versioned id)
    rss_tail: String,
}

fn templates() -> Templates {
    let hf: Vec<Value> =
        serde_json::from_slice(&fixture("hf_daily_papers_2026-06-12.json")).unwrap();
    let rss = String::from_utf8(fixture("arxiv_rss_multi-archive_2024-11-28.trimmed.xml")).unwrap();
    let first = rss.find("<item>").unwrap();
    let last = rss.rfind("</item>").unwrap() + "</item>".len();
    let rss_items = rss[first..last]
        .split_inclusive("</item>")
        .map(|it| {
            let it = it.trim().to_string();
            let g = it.find("oai:arXiv.org:").unwrap() + "oai:arXiv.org:".len();
            let end = it[g..].find('<').unwrap();
            let vid = it[g..g + end].to_string();
            (it, vid)
        })
        .collect();
    Templates {
        hf,
        rss_head: rss[..first].to_string(),
        rss_items,
        rss_tail: rss[last..].to_string(),
    }
}

fn hf_page(t: &Templates, start: usize, n: usize) -> Vec<u8> {
    let items: Vec<Value> = (start..start + n)
        .map(|i| {
            let mut v = t.hf[i % t.hf.len()].clone();
            v["paper"]["id"] = Value::String(synthetic_id(i));
            v["paper"]["upvotes"] = Value::from((i * 7919) % 300);
            v
        })
        .collect();
    serde_json::to_vec(&items).unwrap()
}

fn rss_doc(t: &Templates, start: usize, n: usize) -> Vec<u8> {
    let mut s = t.rss_head.clone();
    for i in start..start + n {
        let (item, vid) = &t.rss_items[i % t.rss_items.len()];
        let (old, _) = vid.split_once('v').unwrap();
        let new = synthetic_id(i);
        s.push_str(&item.replace(old, &new));
        s.push('\n');
    }
    s.push_str(&t.rss_tail);
    s.into_bytes()
}

/// The pool size of `config/default.toml`, or `BENCH_MAX_CONNECTIONS`.
fn max_connections() -> u32 {
    std::env::var("BENCH_MAX_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            paperboy::config::Config::load_with_env(None, std::iter::empty())
                .unwrap()
                .database
                .max_connections
        })
}

/// One size, in this process; prints one machine-readable line.
fn child(n: usize) {
    // The daemon's runtime (`#[tokio::main]`): fetch jobs run on it.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("bench.sqlite");
        let store = Store::open(StoreOptions {
            path: db.clone(),
            busy_timeout: std::time::Duration::from_secs(10),
            max_connections: max_connections(),
            synchronous: paperboy::domain::Synchronous::Normal,
        })
        .await
        .unwrap();
        let t = templates();
        let at = Utc.with_ymd_and_hms(2026, 6, 12, 9, 0, 0).unwrap();
        let (mut parse, mut upsert) = (Duration::ZERO, Duration::ZERO);
        let mut stored = 0u64;
        let wall = Instant::now();
        for start in (0..n).step_by(HF_PAGE) {
            let body = hf_page(&t, start, HF_PAGE.min(n - start));
            let t0 = Instant::now();
            let papers = parse_hf(&body, None).unwrap();
            parse += t0.elapsed();
            let t1 = Instant::now();
            let s = store
                .upsert_papers(PaperBatch {
                    source: SourceKind::HuggingFace,
                    papers: &papers,
                    observed_at: at,
                    validators: &[],
                })
                .await
                .unwrap();
            upsert += t1.elapsed();
            stored += s.inserted;
        }
        for start in (0..n).step_by(FEED_DOC) {
            let body = rss_doc(&t, start, FEED_DOC.min(n - start));
            let t0 = Instant::now();
            let feed = parse_arxiv_rss(&body).unwrap();
            parse += t0.elapsed();
            let papers: Vec<_> = feed.items.into_iter().map(|i| i.paper).collect();
            let t1 = Instant::now();
            let s = store
                .upsert_papers(PaperBatch {
                    source: SourceKind::ArxivFeed,
                    papers: &papers,
                    observed_at: at,
                    validators: &[],
                })
                .await
                .unwrap();
            upsert += t1.elapsed();
            assert_eq!(s.inserted, 0, "arXiv records must merge into the HF rows");
        }
        let timed = parse + upsert;
        let wall = wall.elapsed();
        assert_eq!(stored as usize, n);
        store.checkpoint().await.unwrap();
        let db_bytes = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
        println!(
            "RESULT {n} {} {} {} {} {} {}",
            parse.as_millis(),
            upsert.as_millis(),
            timed.as_millis(),
            wall.as_millis(),
            procfs::status_kb("VmHWM:"),
            db_bytes
        );
    });
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--bench"))
        .collect();
    if let [flag, n] = args.as_slice() {
        if flag == "--child" {
            return child(n.parse().expect("size"));
        }
    }
    let sizes: Vec<usize> = {
        let given: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
        if given.is_empty() {
            vec![1_000, 10_000, 100_000]
        } else {
            given
        }
    };
    let exe = std::env::current_exe().unwrap();
    println!("pool: {} connections", max_connections());
    println!("ingest: parse + upsert, each paper once from HF (pages of {HF_PAGE}) and once from arXiv RSS (docs of {FEED_DOC})");
    println!(
        "{:>8} {:>10} {:>10} {:>10} {:>10} {:>12} {:>12} {:>10}",
        "papers",
        "parse ms",
        "upsert ms",
        "timed ms",
        "wall ms",
        "papers/s",
        "peak RSS MiB",
        "db MiB"
    );
    for n in sizes {
        let out = Command::new(&exe)
            .args(["--child", &n.to_string()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(line) = text.lines().find_map(|l| l.strip_prefix("RESULT ")) else {
            eprintln!("size {n} failed: {}", String::from_utf8_lossy(&out.stderr));
            continue;
        };
        let f: Vec<u64> = line
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        let per_sec = f[0] as f64 / (f[3].max(1) as f64 / 1000.0);
        println!(
            "{:>8} {:>10} {:>10} {:>10} {:>10} {:>12.0} {:>12.1} {:>10.1}",
            f[0],
            f[1],
            f[2],
            f[3],
            f[4],
            per_sec,
            f[5] as f64 / 1024.0,
            f[6] as f64 / 1048576.0
        );
    }
}
