//! Feedback: quality by simulated readers on the judged set, and cost.
//!
//! `cargo bench --bench feedback` prints, for the lexical ranker (and the
//! hybrid one when embeddings are available to this build), nDCG@10 and
//! precision@10 after 0, 1, 3 and 5 days of simulated feedback, with and
//! without feedback on the same residual collection (see
//! `paperboy::rank::simulated`), and a day-0 row per ranker where each
//! reader starts with three liked example papers (*papers like these*;
//! `simulate_examples`) against the same readers without them. Then the cost of ranking with feedback:
//! 2,000 synthetic candidates, subscribers with 0 / 20 / 200 pieces of
//! feedback, single-threaded, wall and CPU seconds.

use chrono::{Duration, TimeZone, Utc};
use paperboy::domain::FeedbackAction;
use paperboy::rank::eval::RelevanceSet;
use paperboy::rank::simulated::{simulate, simulate_examples, simulate_on, Simulation};
use paperboy::rank::{CandidateIndex, FeedbackItem, Profile, RankParams, ReaderFeedback, Synonyms};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

#[allow(dead_code)]
#[path = "common/hybrid.rs"]
mod hybrid;
#[path = "common/procfs.rs"]
mod procfs;
#[path = "common/world.rs"]
mod world;

fn main() {
    quality();
    cost();
}

fn quality() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let now = Utc.with_ymd_and_hms(2026, 6, 14, 8, 0, 0).unwrap();
    let candidates = paperboy::fixtures::recorded_candidates(&root.join("tests/fixtures"), now)
        .expect("tests/fixtures");
    let text = std::fs::read_to_string(root.join("tests/relevance/judgements.toml"))
        .expect("tests/relevance/judgements.toml");
    let set = RelevanceSet::parse(&text).expect("valid judgements");
    let sim = Simulation {
        params: RankParams::default(),
        now,
        digest_size: 5,
        k: 10,
        days: vec![0, 1, 3, 5],
        embeddings: None,
    };
    println!(
        "simulated readers: {} papers, {} judged topics, digests of {}, metrics @{} on the residual collection",
        candidates.len(),
        set.topic.len(),
        sim.digest_size,
        sim.k
    );
    println!(
        "{:<8} {:>4} {:>7} {:>11} {:>11} {:>11} {:>11}",
        "ranker", "day", "topics", "nDCG none", "nDCG fb", "P@10 none", "P@10 fb"
    );
    let row = |name: &str, d: &paperboy::rank::simulated::DayScore| {
        println!(
            "{:<8} {:>4} {:>7} {:>11.3} {:>11.3} {:>11.3} {:>11.3}",
            name,
            d.day,
            d.topics,
            d.ndcg_none,
            d.ndcg_feedback,
            d.precision_none,
            d.precision_feedback
        );
    };
    // Day 0 with three liked example papers: "without" is the same
    // readers, the examples left out of both residual collections.
    let examples = |name: &str, d: &paperboy::rank::simulated::DayScore| {
        println!(
            "{:<8} {:>4} {:>7} {:>11.3} {:>11.3} {:>11.3} {:>11.3}   (3 liked examples, day 0)",
            name,
            "ex3",
            d.topics,
            d.ndcg_none,
            d.ndcg_feedback,
            d.precision_none,
            d.precision_feedback
        );
    };
    let synonyms = Synonyms::embedded();
    for d in simulate(&candidates, &set, &synonyms, &sim) {
        row("lexical", &d);
    }
    let lexical = CandidateIndex::build_with(&candidates, &synonyms, now, sim.params.clone());
    examples(
        "lexical",
        &simulate_examples(&lexical, &candidates, &set, &sim, 3),
    );
    // The hybrid ranker: paper and topic vectors attached, feedback by
    // Rocchio over the embeddings.
    match hybrid::embed(root, &candidates, &set, &synonyms, now) {
        Some(e) => {
            let params = paperboy::rank::HybridParams::for_family(e.family);
            let index = hybrid::index(&e, &candidates, &synonyms, now, params);
            for d in simulate_on(&index, &candidates, &set, &sim) {
                row("hybrid", &d);
            }
            examples(
                "hybrid",
                &simulate_examples(&index, &candidates, &set, &sim, 3),
            );
        }
        None => println!("hybrid: not measured (no MiniLM weights)"),
    }
}

fn cost() {
    let now = Utc.with_ymd_and_hms(2026, 6, 14, 8, 0, 0).unwrap();
    let world = world::World::from_fixtures();
    let mut rng = StdRng::seed_from_u64(11);
    let candidates = world.candidates(2_000, now, &mut rng);
    let index = CandidateIndex::build(&candidates, &Synonyms::embedded(), now);
    let subscribers = 2_000;
    println!(
        "\ncost: {} candidates, {subscribers} subscribers × 5 topics, k = 10",
        candidates.len()
    );
    println!(
        "{:>10} {:>10} {:>10} {:>14}",
        "feedback", "wall s", "cpu s", "µs/subscriber"
    );
    for n_fb in [0usize, 20, 200] {
        let mut rng = StdRng::seed_from_u64(7);
        let profiles: Vec<(Profile, ReaderFeedback)> = (0..subscribers)
            .map(|_| {
                let topics: Vec<String> = (0..5)
                    .map(|_| world.zipf_topic(&mut rng).to_string())
                    .collect();
                let items = (0..n_fb)
                    .map(|j| FeedbackItem {
                        paper: Arc::new(
                            candidates[rng.gen_range(0..candidates.len())].paper.clone(),
                        ),
                        action: if j % 3 == 2 {
                            FeedbackAction::NotForMe
                        } else {
                            FeedbackAction::More
                        },
                        at: now - Duration::days(rng.gen_range(0..90)),
                        embedding: None,
                    })
                    .collect();
                (Profile::topics(topics), ReaderFeedback { items, now })
            })
            .collect();
        let sent = HashSet::new();
        // The words space is built once per run, on first use; include it.
        let (wall0, cpu0) = (Instant::now(), procfs::cpu_secs());
        let mut picked = 0;
        for (p, fb) in &profiles {
            picked += index.rank_with_feedback(p, &sent, 10, fb).len();
        }
        let (wall, cpu) = (wall0.elapsed().as_secs_f64(), procfs::cpu_secs() - cpu0);
        assert!(picked > 0);
        println!(
            "{:>10} {:>10.2} {:>10.2} {:>14.0}",
            n_fb,
            wall,
            cpu,
            wall * 1e6 / subscribers as f64
        );
    }
    println!("peak RSS {} MiB", procfs::status_kb("VmHWM:") / 1024);
}
