//! Throughput and memory of a digest run's ranking: S subscribers × C
//! candidate papers × T topics each, single-threaded.
//!
//! `cargo bench --bench rank` runs every configuration in a fresh child
//! process (this binary re-executed with `--child …`) so each peak RSS
//! (`VmHWM`) is its own, and prints a table. `-- --only S C T MODE` runs
//! one configuration (MODE `zipf` or `distinct`).
//!
//! Candidates are synthesised from the fixtures' vocabulary: words drawn
//! from the fixtures' unigram distribution, with phrases from a topic
//! pool planted in titles, abstracts and keywords. Subscribers draw topics
//! from a pool of about 3,000 phrases with Zipf(1) popularity ("zipf"), or
//! every subscriber gets topics no one else has ("distinct", the worst
//! case for the shared topic cache). 20% exclude a word, 10% follow an
//! author, and each has ~30 already-mailed ids.

use chrono::{TimeZone, Utc};
use paperboy::domain::{Candidate, PaperId};
use paperboy::rank::{CandidateIndex, Profile, Synonyms};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::process::Command;
use std::time::Instant;

#[path = "common/procfs.rs"]
mod procfs;
#[path = "common/world.rs"]
mod world;
use world::World;

const K: usize = 10;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let n = |j: usize| args[i + j].parse::<usize>().expect("number");
        child(n(1), n(2), n(3), &args[i + 4]);
        return;
    }
    let configs: Vec<(usize, usize, usize, &str)> =
        if let Some(i) = args.iter().position(|a| a == "--only") {
            let n = |j: usize| args[i + j].parse::<usize>().expect("number");
            vec![(
                n(1),
                n(2),
                n(3),
                Box::leak(args[i + 4].clone().into_boxed_str()),
            )]
        } else {
            vec![
                (100_000, 2_000, 5, "zipf"),
                (10_000, 2_000, 5, "zipf"),
                (100_000, 500, 5, "zipf"),
                (100_000, 5_000, 5, "zipf"),
                (100_000, 2_000, 1, "zipf"),
                (100_000, 2_000, 10, "zipf"),
                (10_000, 2_000, 5, "distinct"),
                (100_000, 2_000, 5, "distinct"),
                (100_000, 2_000, 5, "zipf+dense"),
                (10_000, 2_000, 5, "distinct+dense"),
            ]
        };
    println!(
        "{:>8} {:>6} {:>3} {:>14} | {:>8} {:>9} {:>9} {:>9} {:>8} {:>8} | {:>8} {:>8}",
        "subs",
        "cands",
        "T",
        "topics",
        "build_ms",
        "rank_ms",
        "total_ms",
        "cpu_ms",
        "us/sub",
        "distinct",
        "input_MB",
        "peak_MB"
    );
    let exe = std::env::current_exe().expect("own path");
    for (s, c, t, mode) in configs {
        let out = Command::new(&exe)
            .args([
                "--child",
                &s.to_string(),
                &c.to_string(),
                &t.to_string(),
                mode,
            ])
            .output()
            .expect("child runs");
        let line = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        }
        print!("{line}");
    }
}

fn child(subs: usize, cands: usize, topics: usize, mode: &str) {
    let mut rng = StdRng::seed_from_u64(42);
    let world = World::from_fixtures();
    let now = Utc.with_ymd_and_hms(2026, 6, 13, 8, 0, 0).unwrap();
    let candidates = world.candidates(cands, now, &mut rng);
    let label = mode;
    let (mode, dense) = match mode.strip_suffix("+dense") {
        Some(m) => (m, true),
        None => (mode, false),
    };
    let profiles = profiles(
        &world,
        subs,
        topics,
        mode == "distinct",
        &candidates,
        &mut rng,
    );
    let sent_pool: Vec<HashSet<PaperId>> = (0..1000)
        .map(|_| {
            (0..30)
                .map(|j| {
                    if rng.gen_bool(0.1) {
                        candidates[rng.gen_range(0..candidates.len())]
                            .paper
                            .id
                            .clone()
                    } else {
                        PaperId::from_stored(format!("2605.{:05}", rng.gen_range(0..99_999) + j))
                    }
                })
                .collect()
        })
        .collect();
    let synonyms = Synonyms::embedded();
    let input_kb = procfs::status_kb("VmRSS:");

    let cpu0 = procfs::cpu_secs();
    let t0 = Instant::now();
    let mut index = CandidateIndex::build(&candidates, &synonyms, now);
    if dense {
        dense_side(&mut index, &candidates, &profiles, &mut rng);
    }
    let build = t0.elapsed();
    let t1 = Instant::now();
    let mut picked = 0usize;
    for (i, p) in profiles.iter().enumerate() {
        picked += index.rank(p, &sent_pool[i % sent_pool.len()], K).len();
    }
    let rank = t1.elapsed();
    let cpu = procfs::cpu_secs() - cpu0;
    std::hint::black_box(picked);
    let peak_kb = procfs::status_kb("VmHWM:");
    let total = build + rank;
    println!(
        "{:>8} {:>6} {:>3} {:>14} | {:>8.0} {:>9.0} {:>9.0} {:>9.0} {:>8.1} {:>8} | {:>8.0} {:>8.0}",
        subs,
        cands,
        topics,
        label,
        build.as_secs_f64() * 1e3,
        rank.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3,
        cpu * 1e3,
        rank.as_secs_f64() * 1e6 / subs as f64,
        index.cached_topics(),
        input_kb as f64 / 1024.0,
        peak_kb as f64 / 1024.0
    );
    eprintln!("picks per subscriber: {:.2}", picked as f64 / subs as f64);
}

/// The dense side with synthetic 384-dimension unit vectors (the cost of
/// fusion does not depend on what the vectors mean): every distinct topic
/// gets a random vector, as if cached from the model, and each paper a
/// vector near one of them, so each topic has a few papers related by
/// meaning. Counted in the build time, like the topic-vector lookups of a
/// real run.
fn dense_side(
    index: &mut CandidateIndex,
    candidates: &[Candidate],
    profiles: &[Profile],
    rng: &mut StdRng,
) {
    const DIMS: usize = 384;
    let unit = |rng: &mut StdRng, near: Option<&[f32]>| -> Vec<f32> {
        let mut v: Vec<f32> = (0..DIMS).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        if let Some(t) = near {
            v.iter_mut()
                .zip(t)
                .for_each(|(x, t)| *x = 0.6 * *x + 0.8 * t);
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= n);
        }
        v
    };
    let mut topics: Vec<&String> = profiles.iter().flat_map(|p| &p.topics).collect();
    topics.sort();
    topics.dedup();
    let topic_vecs: Vec<Vec<f32>> = topics.iter().map(|_| unit(rng, None)).collect();
    let papers: std::collections::HashMap<PaperId, Vec<f32>> = candidates
        .iter()
        .map(|c| {
            let t = &topic_vecs[rng.gen_range(0..topic_vecs.len())];
            (c.paper.id.clone(), unit(rng, Some(t)))
        })
        .collect();
    index.attach_vectors(DIMS, paperboy::rank::HybridParams::default(), |id| {
        papers.get(id).map(Vec::as_slice)
    });
    for (t, v) in topics.iter().zip(topic_vecs) {
        index.add_topic_vector(t, v.into());
    }
}

fn profiles(
    world: &World,
    n: usize,
    topics: usize,
    distinct: bool,
    cands: &[Candidate],
    rng: &mut StdRng,
) -> Vec<Profile> {
    let mut used: HashSet<String> = HashSet::new();
    (0..n)
        .map(|_| {
            let topics: Vec<String> = (0..topics)
                .map(|_| {
                    if distinct {
                        // Two or three words drawn by corpus frequency
                        // (so common, heavily posted words are likely),
                        // redrawn until no one else has the topic.
                        loop {
                            let t = world.text(rng.gen_range(2..4), rng).trim().to_lowercase();
                            if used.insert(t.clone()) {
                                break t;
                            }
                        }
                    } else {
                        world.zipf_topic(rng).to_string()
                    }
                })
                .collect();
            let mut p = Profile::topics(topics);
            p.digest_size = K;
            if rng.gen_bool(0.2) {
                p.excluded = vec![world.word(rng).to_string()];
            }
            if rng.gen_bool(0.1) {
                let c = &cands[rng.gen_range(0..cands.len())];
                p.authors = vec![c.paper.authors[0].clone()];
            }
            p.fallback_trending = rng.gen_bool(0.3);
            p
        })
        .collect()
}
