//! Relevance of paperboy's rankers on the judged set in
//! `tests/relevance/judgements.toml`, over the papers of the recorded
//! fixtures in `tests/fixtures/`: per ranker, mean nDCG@10 and the
//! precision of what a digest would carry, from one run.
//!
//! `cargo bench --bench relevance` prints the tables;
//! `cargo bench --bench relevance -- --show "topic"` prints the rankings
//! of one topic; `-- --dump` lists the corpus; `-- --sweep` adds a sweep
//! of the hybrid ranker's fusion weight, floor and stand-out margin. The
//! `hybrid` row needs the MiniLM weights (scripts/test installs them).
//!
//! A ranker is one [`Row`]: a name and "topic → ids of the papers the
//! digest would carry, best first". Adding a ranker is adding a row.

use chrono::{DateTime, TimeZone, Utc};
use paperboy::domain::Candidate;
use paperboy::rank::eval::{self, Bm25Baseline, RelevanceSet, Summary, TopicRun};
use paperboy::rank::{CandidateIndex, Profile, RankParams, Synonyms};
use std::collections::HashSet;
use std::path::Path;

#[path = "common/dense_study.rs"]
mod dense_study;
#[path = "common/hybrid.rs"]
mod hybrid;

/// Picks a digest carries for one topic.
const K: usize = 10;

/// Topic → ids of the papers a digest would carry, best first.
type Ranker<'a> = Box<dyn Fn(&str) -> Vec<String> + 'a>;

/// One ranker of the table.
struct Row<'a> {
    name: &'static str,
    rank: Ranker<'a>,
}

impl<'a> Row<'a> {
    fn new(name: &'static str, rank: impl Fn(&str) -> Vec<String> + 'a) -> Row<'a> {
        Row {
            name,
            rank: Box::new(rank),
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let now = Utc.with_ymd_and_hms(2026, 6, 14, 8, 0, 0).unwrap();
    let candidates = corpus(root, now);
    let set_text = std::fs::read_to_string(root.join("tests/relevance/judgements.toml"))
        .expect("tests/relevance/judgements.toml");
    let set = RelevanceSet::parse(&set_text).expect("valid judgements");
    let args: Vec<String> = std::env::args().collect();

    let synonyms = Synonyms::embedded();
    let index = |params: RankParams, synonyms: &Synonyms| {
        CandidateIndex::build_with(&candidates, synonyms, now, params)
    };
    let lexical = index(RankParams::default(), &synonyms);
    let no_trend = index(
        RankParams {
            trending_weight: 0.0,
            ..RankParams::default()
        },
        &synonyms,
    );
    let no_syn = index(RankParams::default(), &Synonyms::none());
    let no_forms = index(
        RankParams {
            variant_weight: 0.0,
            ..RankParams::default()
        },
        &synonyms,
    );
    let no_partial = index(
        RankParams {
            partial_min_saturation: 0.0,
            ..RankParams::default()
        },
        &synonyms,
    );
    let bm25 = Bm25Baseline::new(&candidates);
    let embedded = hybrid::embed(root, &candidates, &set, &synonyms, now);
    let hybrid_index = embedded.as_ref().map(|e| {
        let params = paperboy::rank::HybridParams::for_family(e.family);
        hybrid::index(e, &candidates, &synonyms, now, params)
    });
    let mut rows = vec![
        Row::new("bm25", |q| bm25.picks(q, K)),
        Row::new("lexical", |q| eval::lexical_picks(&lexical, q, K)),
        Row::new("lex-no-trend", |q| eval::lexical_picks(&no_trend, q, K)),
        Row::new("lex-no-syn", |q| eval::lexical_picks(&no_syn, q, K)),
        Row::new("lex-no-forms", |q| eval::lexical_picks(&no_forms, q, K)),
        Row::new("lex-no-partial", |q| eval::lexical_picks(&no_partial, q, K)),
    ];
    if let Some(h) = &hybrid_index {
        rows.push(Row::new("hybrid", move |q| eval::lexical_picks(h, q, K)));
    }

    if args.iter().any(|a| a == "--dump") {
        for c in &candidates {
            println!(
                "{} | {} | {:?}",
                c.paper.id, c.paper.title, c.paper.categories
            );
        }
        return;
    }
    if let (Some(e), true) = (&embedded, args.iter().any(|a| a == "--dense-study")) {
        dense_study::run(root, &e.encoder, &candidates, &set, &e.topics);
        return;
    }
    if let (Some(e), true) = (&embedded, args.iter().any(|a| a == "--cosines")) {
        hybrid::cosines(e, &candidates, &set);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--show") {
        show(&args[i + 1], &candidates, &lexical, &rows);
        return;
    }

    let runs: Vec<Vec<TopicRun>> = rows
        .iter()
        .map(|r| eval::evaluate(&set, K, &r.rank))
        .collect();
    per_topic(&set, &rows, &runs);
    let rounds = [
        ("original set (round 1)", Some(1)),
        ("extended set (all rounds)", None),
    ];
    for (title, round) in rounds {
        let chosen: Vec<Summary> = runs
            .iter()
            .map(|r| {
                let r: Vec<TopicRun> = r
                    .iter()
                    .filter(|t| round.is_none_or(|n| t.round == n))
                    .cloned()
                    .collect();
                eval::summarise(&r)
            })
            .collect();
        summary(title, candidates.len(), &rows, &chosen);
    }
    if let Some(e) = &embedded {
        if args.iter().any(|a| a == "--sweep") {
            hybrid::sweep(e, &candidates, &set, &synonyms, now, K);
        }
    }
}

/// nDCG@K and sent/relevant per topic and ranker.
fn per_topic(set: &RelevanceSet, rows: &[Row], runs: &[Vec<TopicRun>]) {
    print!("{:<40} {:>5}", "topic (round)", "judged");
    for r in rows {
        print!(" {:>14}", r.name);
    }
    println!();
    println!("{:<46} {}", "", "  nDCG rel/sent".repeat(rows.len()));
    for (i, t) in set.topic.iter().enumerate() {
        let judged = t.relevant.values().filter(|&&g| g > 0).count();
        let q: String = t.query.chars().take(36).collect();
        print!("{:<36} ({}) {:>6}", q, t.round, judged);
        for run in runs {
            let r = &run[i];
            print!(" {:>6.3} {:>3}/{:<3}", r.ndcg, r.relevant_sent, r.sent);
        }
        println!();
    }
}

fn summary(title: &str, papers: usize, rows: &[Row], sums: &[Summary]) {
    let s0 = &sums[0];
    println!();
    println!(
        "{title}: {} topics ({} expect nothing), {papers} papers, top {K}",
        s0.topics, s0.expect_nothing
    );
    println!(
        "{:<14} {:>8} {:>10} {:>10} {:>7} {:>8} {:>12}",
        "ranker", "nDCG@10", "precision", "P/topic", "sent", "missed", "empty-sent"
    );
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    for (r, s) in rows.iter().zip(sums) {
        println!(
            "{:<14} {:>8.3} {:>10} {:>10} {:>7} {:>8} {:>9}/{:<2}",
            r.name,
            s.ndcg,
            opt(s.precision),
            opt(s.mean_topic_precision),
            s.picks_sent,
            s.missed_topics,
            s.expect_nothing_sent,
            s.expect_nothing
        );
    }
    println!(
        "precision: judged relevant / picks sent, all topics pooled; P/topic: mean over topics that \
         sent; missed: topics with relevant papers that sent nothing; empty-sent: topics that \
         expect nothing but sent something"
    );
}

fn show(q: &str, candidates: &[Candidate], lexical: &CandidateIndex, rows: &[Row]) {
    println!("lexical (with reasons):");
    for p in lexical.rank(&Profile::topics([q]), &HashSet::new(), K) {
        let t = &candidates[p.index].paper.title;
        println!("  {:.3} {} {} | {}", p.score, p.id, t, p.reason.summary());
    }
    for r in rows {
        println!("{}:", r.name);
        for id in (r.rank)(q) {
            let title = candidates
                .iter()
                .find(|c| c.paper.id.as_str() == id)
                .map_or("", |c| c.paper.title.as_str());
            println!("  {id} {title}");
        }
    }
}

/// Every paper of the HF and arXiv fixtures, first occurrence of an id kept.
fn corpus(root: &Path, now: DateTime<Utc>) -> Vec<Candidate> {
    paperboy::fixtures::recorded_candidates(&root.join("tests/fixtures"), now)
        .expect("tests/fixtures")
}
