//! The hybrid ranker (lexical + MiniLM sentence embeddings) for the
//! relevance bench: an index with the corpus's and the judged topics'
//! vectors attached, and a sweep of the fusion parameters.
//!
//! The model comes from `PAPERBOY_TEST_MODEL_DIR` (scripts/test extracts
//! the MiniLM weights into `target/test-model/all-MiniLM-L6-v2`).

use chrono::{DateTime, Utc};
use paperboy::domain::{Candidate, PaperId};
use paperboy::embed::{Encoder, Family, Side};
use paperboy::rank::eval::{self, RelevanceSet};
use paperboy::rank::{CandidateIndex, HybridParams, Synonyms};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where the MiniLM weights are, if installed.
pub fn model_dir(root: &Path) -> Option<PathBuf> {
    let dir = std::env::var_os("PAPERBOY_TEST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/test-model/all-MiniLM-L6-v2"));
    dir.join("model.safetensors").is_file().then_some(dir)
}

/// The corpus's and the set's topic vectors, embedded once.
pub struct Embedded {
    papers: HashMap<PaperId, Vec<f32>>,
    topics: HashMap<String, Vec<f32>>,
    dims: usize,
    pub family: Family,
}

/// Embeds the corpus and every judged topic (as the dense side sees it);
/// `None` without the weights.
pub fn embed(
    root: &Path,
    candidates: &[Candidate],
    set: &RelevanceSet,
    synonyms: &Synonyms,
    now: DateTime<Utc>,
) -> Option<Embedded> {
    let Some(dir) = model_dir(root) else {
        println!("hybrid: no MiniLM weights (run scripts/test once to install them); skipped");
        return None;
    };
    let started = std::time::Instant::now();
    let encoder = Encoder::load(
        &dir,
        "sentence-transformers/all-MiniLM-L6-v2",
        Family::Auto,
        256,
    )
    .expect("MiniLM loads");
    let texts: Vec<String> = candidates
        .iter()
        .map(|c| paperboy::embed::paper_text(&c.paper))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = encoder.encode(&refs, Side::Passage).expect("corpus embeds");
    let index = CandidateIndex::build(candidates, synonyms, now);
    let queries: Vec<String> = set
        .topic
        .iter()
        .map(|t| index.dense_text(&t.query))
        .collect();
    let refs: Vec<&str> = queries.iter().map(String::as_str).collect();
    let topic_vectors = encoder.encode(&refs, Side::Query).expect("topics embed");
    eprintln!(
        "hybrid: {} papers and {} topics embedded in {:.1} s",
        candidates.len(),
        queries.len(),
        started.elapsed().as_secs_f64()
    );
    Some(Embedded {
        papers: candidates
            .iter()
            .map(|c| c.paper.id.clone())
            .zip(vectors)
            .collect(),
        topics: set
            .topic
            .iter()
            .map(|t| t.query.clone())
            .zip(topic_vectors)
            .collect(),
        dims: encoder.dims(),
        family: encoder.family(),
    })
}

/// The production ranker with the dense side on.
pub fn index(
    emb: &Embedded,
    candidates: &[Candidate],
    synonyms: &Synonyms,
    now: DateTime<Utc>,
    params: HybridParams,
) -> CandidateIndex {
    let mut index = CandidateIndex::build(candidates, synonyms, now);
    index.attach_vectors(emb.dims, params, |id| emb.papers.get(id).map(Vec::as_slice));
    for (q, v) in &emb.topics {
        index.add_topic_vector(q, v.clone().into());
    }
    index
}

/// nDCG@k and pooled precision over fusion weights, floors and
/// stand-out margins, to choose the defaults (printed, one line each).
pub fn sweep(
    emb: &Embedded,
    candidates: &[Candidate],
    set: &RelevanceSet,
    synonyms: &Synonyms,
    now: DateTime<Utc>,
    k: usize,
) {
    println!();
    println!("hybrid sweep (all rounds): weight, floor, stand-out sd → nDCG@{k}, precision, sent, missed, empty-sent");
    let base = HybridParams::for_family(emb.family);
    for w in [0.3, 0.5, 0.7] {
        for floor in [0.25, 0.30, 0.35] {
            for stand_out in [1.5, 2.0, 2.5] {
                let p = HybridParams {
                    dense_weight: w,
                    floor,
                    stand_out,
                    ..base.clone()
                };
                let idx = index(emb, candidates, synonyms, now, p);
                let runs = eval::evaluate(set, k, |q| eval::lexical_picks(&idx, q, k));
                let s = eval::summarise(&runs);
                println!(
                    "w {w:.1} floor {floor:.2} sd {stand_out:.1} → {:.3} {} {} {} {}/{}",
                    s.ndcg,
                    s.precision.map_or("-".into(), |p| format!("{p:.3}")),
                    s.picks_sent,
                    s.missed_topics,
                    s.expect_nothing_sent,
                    s.expect_nothing
                );
            }
        }
    }
}
