//! nDCG@10 of paperboy's ranker against a plain BM25 baseline on the
//! judged set in `tests/relevance/judgements.toml`, over the papers of the
//! recorded fixtures in `tests/fixtures/`.
//!
//! `cargo bench --bench relevance` prints the table;
//! `cargo bench --bench relevance -- --show "topic"` prints both rankings
//! of one topic; `-- --dump` lists the corpus.

use chrono::{TimeZone, Utc};
use paperboy::rank::eval::{self, Bm25Baseline, RelevanceSet};
use paperboy::rank::{CandidateIndex, Profile, RankParams, Synonyms};
use std::collections::HashSet;
use std::path::Path;

#[path = "common/hybrid.rs"]
mod hybrid;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let now = Utc.with_ymd_and_hms(2026, 6, 14, 8, 0, 0).unwrap();
    let candidates = corpus(root, now);
    let set_text = std::fs::read_to_string(root.join("tests/relevance/judgements.toml"))
        .expect("tests/relevance/judgements.toml");
    let set = RelevanceSet::parse(&set_text).expect("valid judgements");
    let synonyms = Synonyms::embedded();
    let args: Vec<String> = std::env::args().collect();

    if args.iter().any(|a| a == "--dump") {
        for c in &candidates {
            println!(
                "{} | {} | {:?}",
                c.paper.id, c.paper.title, c.paper.categories
            );
        }
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--show") {
        let q = &args[i + 1];
        let index = CandidateIndex::build(&candidates, &synonyms, now);
        println!("ranker:");
        for p in index.rank(&Profile::topics([q.as_str()]), &HashSet::new(), 10) {
            let t = &candidates[p.index].paper.title;
            println!("  {:.3} {} {} | {}", p.score, p.id, t, p.reason.summary());
        }
        println!("bm25:");
        for d in Bm25Baseline::new(&candidates).search(q, 10) {
            println!("  {} {}", candidates[d].paper.id, candidates[d].paper.title);
        }
        return;
    }

    let k = 10;
    let full = eval::evaluate(&candidates, &set, &synonyms, RankParams::default(), now, k);
    let relevance_only = eval::evaluate(
        &candidates,
        &set,
        &synonyms,
        RankParams {
            trending_weight: 0.0,
            ..RankParams::default()
        },
        now,
        k,
    );
    let no_synonyms = eval::evaluate(
        &candidates,
        &set,
        &Synonyms::none(),
        RankParams::default(),
        now,
        k,
    );
    println!(
        "{} papers, {} judged topics, nDCG@{k}",
        candidates.len(),
        set.topic.len()
    );
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>8}",
        "topic", "bm25", "ranker", "no-trend", "no-syn"
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    for (((a, b), c), j) in full
        .iter()
        .zip(&relevance_only)
        .zip(&no_synonyms)
        .zip(&set.topic)
    {
        println!(
            "{:<44} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
            j.query, a.baseline, a.ranker, b.ranker, c.ranker
        );
    }
    let col = |v: &[eval::TopicScore], f: fn(&eval::TopicScore) -> f64| {
        mean(&v.iter().map(f).collect::<Vec<_>>())
    };
    println!(
        "{:<44} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
        "MEAN",
        col(&full, |s| s.baseline),
        col(&full, |s| s.ranker),
        col(&relevance_only, |s| s.ranker),
        col(&no_synonyms, |s| s.ranker)
    );
    hybrid::report(root, &candidates, &set, &synonyms, now);
}

/// Every paper of the HF and arXiv fixtures, first occurrence of an id kept.
fn corpus(root: &Path, now: chrono::DateTime<Utc>) -> Vec<paperboy::domain::Candidate> {
    eval::fixture_candidates(&root.join("tests/fixtures"), now)
}
