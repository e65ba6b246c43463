//! Database size over 30 simulated days with and without retention.
//!
//! `cargo bench --bench retention` simulates N = 100,000 active
//! subscribers (`-- 20000` for another size) for 30 days, through the
//! real store statements and nothing else (no ranking, rendering or SMTP:
//! those do not change what is stored): each day 500 papers are listed
//! by four Hugging Face fetches (upvote observations, fetch-log rows);
//! every subscriber's digest is planned, claimed, prepared (a sealed
//! message of 7 KB, the compressed size of a 20 KB digest) and recorded
//! sent with 10 papers; then the housekeeping job's `Store::prune` runs
//! with the default `[retention]` ages. The same days are simulated once
//! more with retention off. Every 5 days it prints the file size (after a
//! WAL checkpoint; SQLite reuses freed pages rather than shrinking the
//! file) and the live data (pages in use), rows per table, and the
//! seconds the prune took.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use paperboy::app::{App, Overrides};
use paperboy::config::Config;
use paperboy::domain::{EmailAddress, Paper, PaperId, Preferences, SourceKind};
use paperboy::domain::{SubscriberId, SubscriberState};
use paperboy::store::deliveries::{Prepared, SentDelivery};
use paperboy::store::papers::{FetchLogEntry, PaperBatch};
use paperboy::store::subscribers::{ConsentInput, ConsentMethod};
use std::time::Instant;

const DAYS: u32 = 30;
const PAPERS_PER_DAY: u32 = 500;
const PER_DIGEST: usize = 10;
const SEALED_BYTES: usize = 7 * 1024;

fn day(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 10, 1, 8, 0, 0).unwrap() + Duration::days(d as i64)
}

fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for retention in [true, false] {
            simulate(n, retention).await;
        }
    });
}

async fn simulate(n: u64, retention: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.sqlite");
    let config = Config::load_with_env(
        None,
        [
            (
                "PAPERBOY__DATABASE__PATH".to_string(),
                path.display().to_string(),
            ),
            (
                "PAPERBOY__SOURCES__HUGGINGFACE__ENABLED".into(),
                "false".into(),
            ),
        ],
    )
    .unwrap();
    let policy = config.retention;
    let app = App::build(config, Overrides::default()).await.unwrap();
    let subs = add_subscribers(&app, n).await;
    println!(
        "{n} subscribers, retention {}:",
        if retention { "on (defaults)" } else { "off" }
    );
    println!(
        "{:>4} | {:>9} {:>9} | {:>10} {:>11} {:>9} {:>8} | {:>7}",
        "day", "file_MB", "live_MB", "deliveries", "sent_papers", "upvotes", "fetches", "prune_s"
    );
    let t0 = Instant::now();
    for d in 0..DAYS {
        let papers = list_papers(&app, d).await;
        send_day(&app, &subs, d, &papers).await;
        let mut prune_s = 0.0;
        if retention {
            let t = Instant::now();
            app.store
                .prune(&policy, day(d) + Duration::hours(1))
                .await
                .unwrap();
            prune_s = t.elapsed().as_secs_f64();
        }
        if (d + 1) % 5 == 0 {
            report(&app, &path, d + 1, prune_s).await;
        }
    }
    println!("({:.0} s)", t0.elapsed().as_secs_f64());
}

async fn add_subscribers(app: &App, n: u64) -> Vec<SubscriberId> {
    let links = app.links.clone();
    let hash = move |id, g| links.manage_token_hash(id, g);
    let consent = ConsentInput {
        method: ConsentMethod::OperatorImport,
        source: "bench".into(),
        consent_text_hash: "bench".into(),
        ip: None,
    };
    let mut ids = Vec::new();
    let mut i = 0;
    while i < n {
        let page: Vec<(EmailAddress, Preferences)> = (i..(i + 1000).min(n))
            .map(|k| {
                let prefs = Preferences {
                    topics: vec!["agents".into(), "retrieval".into(), "RAG".into()],
                    fallback_trending: true,
                    ..Preferences::new(
                        PER_DIGEST as u8,
                        NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
                        chrono_tz::UTC,
                    )
                };
                (
                    EmailAddress::parse(&format!("reader{k}@example.org")).unwrap(),
                    prefs,
                )
            })
            .collect();
        ids.extend(
            app.store
                .add_subscribers(&page, SubscriberState::Active, &consent, &hash, day(0))
                .await
                .unwrap(),
        );
        i += page.len() as u64;
    }
    ids
}

/// The day's papers, listed by four fetches with growing upvotes.
async fn list_papers(app: &App, d: u32) -> Vec<String> {
    let mut papers: Vec<Paper> = (0..PAPERS_PER_DAY)
        .map(|i| {
            let id = format!("2610.{:05}", d * PAPERS_PER_DAY + i);
            let (id, _) = PaperId::parse_arxiv(&id).unwrap();
            let mut p = Paper::new(
                id,
                &format!("Paper {i} of day {d}"),
                &"Abstract words. ".repeat(60),
            );
            p.listed_on = Some(day(d).date_naive());
            p.authors = vec!["Ada Lovelace".into(), "Alan Turing".into()];
            p
        })
        .collect();
    for fetch in 0..4u32 {
        let at = day(d) - Duration::hours(8) + Duration::hours(6 * fetch as i64);
        for p in papers.iter_mut() {
            p.upvotes = Some((fetch * 3) as i64);
        }
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
        app.store
            .record_fetch(&FetchLogEntry {
                source: "huggingface".into(),
                started_at: at,
                finished_at: at,
                ok: true,
                error: None,
                parsed: PAPERS_PER_DAY as u64,
                inserted: 0,
                updated: PAPERS_PER_DAY as u64,
                observations: PAPERS_PER_DAY as u64,
            })
            .await
            .unwrap();
    }
    papers.iter().map(|p| p.id.to_string()).collect()
}

/// Plans, claims, prepares and records every subscriber's digest of day `d`.
async fn send_day(app: &App, subs: &[SubscriberId], d: u32, papers: &[String]) {
    let at = day(d);
    let date = at.date_naive();
    let window = paperboy::domain::Window {
        since: date - Duration::days(3),
        until: date,
    };
    let items: Vec<_> = subs
        .iter()
        .map(|s| paperboy::store::deliveries::PlanItem {
            subscriber: *s,
            digest_date: date,
            due_at: at,
            window,
        })
        .collect();
    for chunk in items.chunks(10_000) {
        app.store.plan_deliveries(chunk, at).await.unwrap();
    }
    let sealed: Vec<u8> = (0..SEALED_BYTES).map(|i| (i * 7919 % 251) as u8).collect();
    loop {
        let claims = app
            .store
            .claim_deliveries(at, at + Duration::minutes(5), 256, false)
            .await
            .unwrap();
        if claims.is_empty() {
            return;
        }
        let picks = |sub: SubscriberId| -> Vec<String> {
            (0..PER_DIGEST)
                .map(|k| papers[(sub.0 as usize * 7 + k * 13) % papers.len()].clone())
                .collect()
        };
        let prepared: Vec<Prepared> = claims
            .iter()
            .map(|c| Prepared {
                id: c.id,
                message_id: format!("<{}.{d}@bench>", c.id),
                encrypted: sealed.clone(),
                papers: picks(c.subscriber_id),
            })
            .collect();
        app.store.prepare_deliveries(&prepared).await.unwrap();
        let ids: Vec<i64> = claims.iter().map(|c| c.id).collect();
        app.store.deliveries_send_started(&ids, at).await.unwrap();
        let sent: Vec<SentDelivery> = claims
            .iter()
            .map(|c| SentDelivery {
                id: c.id,
                subscriber: c.subscriber_id,
                digest_date: c.digest_date,
                papers: picks(c.subscriber_id),
            })
            .collect();
        for chunk in sent.chunks(512) {
            app.store.deliveries_sent(chunk, at).await.unwrap();
        }
    }
}

async fn report(app: &App, path: &std::path::Path, d: u32, prune_s: f64) {
    app.store.checkpoint().await.unwrap();
    let pool = app.store.pool();
    let scalar = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(pool)
            .await
            .unwrap()
    };
    let page_size = scalar("PRAGMA page_size").await;
    let pages = scalar("PRAGMA page_count").await;
    let free = scalar("PRAGMA freelist_count").await;
    let file = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) as f64;
    println!(
        "{:>4} | {:>9.0} {:>9.0} | {:>10} {:>11} {:>9} {:>8} | {:>7.2}",
        d,
        file / 1e6,
        ((pages - free) * page_size) as f64 / 1e6,
        scalar("SELECT count(*) FROM deliveries").await,
        scalar("SELECT count(*) FROM sent_papers").await,
        scalar("SELECT count(*) FROM upvote_observations").await,
        scalar("SELECT count(*) FROM fetch_log").await,
        prune_s
    );
}
