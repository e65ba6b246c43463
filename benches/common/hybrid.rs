//! Lexical vs hybrid (lexical + MiniLM sentence embeddings) on the judged
//! set: nDCG@10 and the precision of what would be sent (judged relevant /
//! sent, over all topics), in the same run, plus a sweep of the fusion
//! weight and the similarity floor.
//!
//! The model comes from `PAPERBOY_TEST_MODEL_DIR` (scripts/test extracts
//! the MiniLM weights into `target/test-model/all-MiniLM-L6-v2`).

use chrono::{DateTime, Utc};
use paperboy::domain::{Candidate, PaperId};
use paperboy::embed::{Encoder, Family, Side};
use paperboy::rank::eval::{ndcg_at, RelevanceSet};
use paperboy::rank::{CandidateIndex, HybridParams, Profile, Synonyms};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Where the MiniLM weights are, if installed.
pub fn model_dir(root: &Path) -> Option<PathBuf> {
    let dir = std::env::var_os("PAPERBOY_TEST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/test-model/all-MiniLM-L6-v2"));
    dir.join("model.safetensors").is_file().then_some(dir)
}

/// One configuration's scores over the set.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scores {
    pub ndcg: f64,
    pub sent: usize,
    pub relevant_sent: usize,
    /// Topics with relevant papers that got nothing.
    pub empty: usize,
}

impl Scores {
    pub fn precision(&self) -> f64 {
        if self.sent == 0 {
            1.0
        } else {
            self.relevant_sent as f64 / self.sent as f64
        }
    }
}

/// The corpus and topic vectors, embedded once.
pub struct Embedded {
    papers: HashMap<PaperId, Vec<f32>>,
    dims: usize,
    family: Family,
    encoder: Encoder,
}

pub fn embed(dir: &Path, candidates: &[Candidate]) -> Embedded {
    let encoder = Encoder::load(
        dir,
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
    Embedded {
        papers: candidates
            .iter()
            .map(|c| c.paper.id.clone())
            .zip(vectors)
            .collect(),
        dims: encoder.dims(),
        family: encoder.family(),
        encoder,
    }
}

/// Scores the ranker on `set`: lexical when `hybrid` is `None`.
pub fn score(
    candidates: &[Candidate],
    set: &RelevanceSet,
    synonyms: &Synonyms,
    now: DateTime<Utc>,
    emb: &Embedded,
    hybrid: Option<HybridParams>,
    k: usize,
) -> (Scores, Vec<f64>) {
    let mut index = CandidateIndex::build(candidates, synonyms, now);
    if let Some(p) = hybrid {
        index.attach_vectors(emb.dims, p, |id| emb.papers.get(id).map(Vec::as_slice));
        let texts: Vec<String> = set
            .topic
            .iter()
            .map(|j| index.dense_text(&j.query))
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = emb
            .encoder
            .encode(&refs, Side::Query)
            .expect("topics embed");
        for (j, v) in set.topic.iter().zip(vectors) {
            index.add_topic_vector(&j.query, v.into());
        }
    }
    let none = HashSet::new();
    let mut s = Scores::default();
    let mut per_topic = Vec::new();
    for j in &set.topic {
        let picks = index.rank(&Profile::topics([j.query.as_str()]), &none, k);
        let ids: Vec<&str> = picks.iter().map(|p| p.id.as_str()).collect();
        let n = ndcg_at(&ids, &j.relevant, k);
        per_topic.push(n);
        s.ndcg += n;
        s.sent += ids.len();
        s.relevant_sent += ids.iter().filter(|i| j.relevant.contains_key(**i)).count();
        if ids.is_empty() && !j.relevant.is_empty() {
            s.empty += 1;
        }
    }
    s.ndcg /= set.topic.len().max(1) as f64;
    (s, per_topic)
}

/// Prints the lexical-vs-hybrid table and the sweep.
pub fn report(
    root: &Path,
    candidates: &[Candidate],
    set: &RelevanceSet,
    synonyms: &Synonyms,
    now: DateTime<Utc>,
) {
    let Some(dir) = model_dir(root) else {
        println!("\nhybrid: no MiniLM weights (run scripts/test once to install them); skipped");
        return;
    };
    let started = std::time::Instant::now();
    let emb = embed(&dir, candidates);
    println!(
        "\nhybrid: {} papers embedded in {:.1} s",
        candidates.len(),
        started.elapsed().as_secs_f64()
    );
    let k = 10;
    let default = HybridParams::for_family(emb.family);
    let (lex, lex_t) = score(candidates, set, synonyms, now, &emb, None, k);
    let (hyb, hyb_t) = score(
        candidates,
        set,
        synonyms,
        now,
        &emb,
        Some(default.clone()),
        k,
    );
    println!("{:<44} {:>8} {:>8}", "topic", "lexical", "hybrid");
    for ((j, a), b) in set.topic.iter().zip(&lex_t).zip(&hyb_t) {
        println!("{:<44} {:>8.3} {:>8.3}", j.query, a, b);
    }
    let row = |name: &str, s: &Scores| {
        println!(
            "{name:<30} nDCG@{k} {:.3}  precision {:.3} ({}/{} sent)  topics with nothing {}",
            s.ndcg,
            s.precision(),
            s.relevant_sent,
            s.sent,
            s.empty
        )
    };
    row("lexical", &lex);
    row("hybrid (default)", &hyb);
    println!("sweep:");
    for w in [0.3, 0.5, 0.7] {
        for floor in [0.25, 0.30, 0.35] {
            for stand_out in [1.5, 2.0, 2.5] {
                let p = HybridParams {
                    dense_weight: w,
                    floor,
                    stand_out,
                    ..default.clone()
                };
                let (s, _) = score(candidates, set, synonyms, now, &emb, Some(p), k);
                row(&format!("w {w} floor {floor} sd {stand_out}"), &s);
            }
        }
    }
}
