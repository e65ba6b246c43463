//! The hybrid ranker (lexical + MiniLM sentence embeddings) for the
//! relevance bench: the product's [`RankPicker`] with the corpus's and the
//! judged topics' vectors attached ([`product_picker`]), an index with
//! chosen fusion parameters ([`index`]) and a sweep of them.
//!
//! The model comes from `PAPERBOY_TEST_MODEL_DIR` (scripts/test extracts
//! the MiniLM weights into `target/test-model/all-MiniLM-L6-v2`); it is
//! loaded with the default config's model settings, as the daemon loads it.

use chrono::{DateTime, Utc};
use paperboy::config::Config;
use paperboy::digest::RankPicker;
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
    pub topics: HashMap<String, Vec<f32>>,
    /// arXiv's taxonomy (code, vector), embedded as the product embeds it.
    pub subjects: Vec<(String, std::sync::Arc<[f32]>)>,
    pub encoder: Encoder,
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
    let cfg = default_config().rank.semantic;
    let encoder = Encoder::load(
        &dir,
        "sentence-transformers/all-MiniLM-L6-v2",
        cfg.prefixes,
        cfg.max_tokens,
    )
    .expect("MiniLM loads");
    let texts: Vec<String> = candidates
        .iter()
        .map(|c| paperboy::embed::paper_text(&c.paper))
        .collect();
    let index = CandidateIndex::build(candidates, synonyms, now);
    let queries: Vec<String> = set
        .topic
        .iter()
        .map(|t| index.dense_text(&t.query))
        .collect();
    let vectors = cached(root, &encoder, &texts, Side::Passage);
    let topic_vectors = cached(root, &encoder, &queries, Side::Query);
    let taxonomy = paperboy::domain::taxonomy();
    let subject_texts: Vec<String> = taxonomy.iter().map(|t| t.1.clone()).collect();
    let subject_vectors = cached(root, &encoder, &subject_texts, Side::Query);
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
        subjects: taxonomy
            .iter()
            .map(|t| t.0.to_string())
            .zip(subject_vectors.into_iter().map(Into::into))
            .collect(),
        dims: encoder.dims(),
        family: encoder.family(),
        encoder,
    })
}

/// Embeds `texts`, or reads the vectors a previous run of the same
/// model on the same texts left in `target/relevance-cache/` (embedding
/// the corpus is most of a run's time; the cache only saves time, the
/// vectors are the encoder's own).
pub fn cached(root: &Path, encoder: &Encoder, texts: &[String], side: Side) -> Vec<Vec<f32>> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(encoder.identity().as_bytes());
    h.update([side as u8]);
    for t in texts {
        h.update(t.as_bytes());
        h.update([0]);
    }
    let key: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let path = root
        .join("target/relevance-cache")
        .join(format!("{key}.json"));
    if let Some(v) = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<Vec<f32>>>(&b).ok())
        .filter(|v| v.len() == texts.len())
    {
        return v;
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let v = encoder.encode(&refs, side).expect("texts embed");
    let _ = std::fs::create_dir_all(path.parent().expect("cache dir"));
    let _ = std::fs::write(&path, serde_json::to_vec(&v).expect("vectors serialise"));
    v
}

/// Per topic: where the judged papers' cosines sit in the day's
/// distribution (mean, sd, each relevant paper's cosine and z-score, the
/// best unjudged cosines), to see what a threshold can separate.
pub fn cosines(emb: &Embedded, candidates: &[Candidate], set: &RelevanceSet) {
    for t in &set.topic {
        let q = &emb.topics[&t.query];
        let mut sims: Vec<(f32, &Candidate)> = candidates
            .iter()
            .filter_map(|c| {
                let v = emb.papers.get(&c.paper.id)?;
                Some((paperboy::embed::dot(q, v), c))
            })
            .collect();
        let n = sims.len() as f32;
        let mean = sims.iter().map(|s| s.0).sum::<f32>() / n;
        let sd = (sims.iter().map(|s| (s.0 - mean).powi(2)).sum::<f32>() / n).sqrt();
        sims.sort_by(|a, b| b.0.total_cmp(&a.0));
        println!("\n{} (mean {mean:.3}, sd {sd:.3})", t.query);
        for (rank, (cos, c)) in sims.iter().enumerate().take(12) {
            let g = t.relevant.get(c.paper.id.as_str()).copied().unwrap_or(0);
            let title: String = c.paper.title.chars().take(70).collect();
            println!(
                "  #{:<2} {cos:.3} z {:>5.2} g{g} {title}",
                rank + 1,
                (cos - mean) / sd
            );
        }
        for (rank, (cos, c)) in sims.iter().enumerate().skip(12) {
            if let Some(g) = t.relevant.get(c.paper.id.as_str()).filter(|&&g| g > 0) {
                let title: String = c.paper.title.chars().take(70).collect();
                println!(
                    "  #{:<2} {cos:.3} z {:>5.2} g{g} {title}",
                    rank + 1,
                    (cos - mean) / sd
                );
            }
        }
    }
}

/// Per topic: the taxonomy entries nearest to it by cosine (what the
/// subject floor and margin choose from).
pub fn subjects(emb: &Embedded, set: &RelevanceSet) {
    for t in &set.topic {
        let q = &emb.topics[&t.query];
        let mut near: Vec<(f32, &str)> = emb
            .subjects
            .iter()
            .map(|(c, v)| (paperboy::embed::dot(q, v), c.as_str()))
            .collect();
        near.sort_by(|a, b| b.0.total_cmp(&a.0));
        let kind = t.kind.map_or("-", |k| k.name());
        let top: Vec<String> = near
            .iter()
            .take(4)
            .map(|(c, s)| format!("{s} {c:.3}"))
            .collect();
        println!("subjects\t{kind}\t{}\t{}", t.query, top.join("  "));
    }
}

/// The built-in configuration, without the environment: the settings a
/// fresh install ranks with.
pub fn default_config() -> Config {
    Config::load_with_env(None, std::iter::empty()).expect("the default config loads")
}

/// The ranker `paperboy preview` and a digest run use: a [`RankPicker`]
/// over `candidates` with the paper vectors attached under the default
/// config's fusion parameters for the model's family, and the judged
/// topics' vectors registered. Rank with [`RankPicker::ranked`].
pub fn product_picker(
    emb: &Embedded,
    candidates: &[Candidate],
    config: &Config,
    now: DateTime<Utc>,
) -> RankPicker {
    let picker = picker_without_subjects(emb, candidates, config, now);
    picker.index().add_subject_vectors(emb.subjects.clone());
    picker
}

/// [`product_picker`] without arXiv's taxonomy: the hybrid ranker before
/// topics were mapped to subjects by meaning (the baseline row).
pub fn picker_without_subjects(
    emb: &Embedded,
    candidates: &[Candidate],
    config: &Config,
    now: DateTime<Utc>,
) -> RankPicker {
    picker_with(emb, candidates, config, now, |_| {})
}

/// [`picker_without_subjects`] with the fusion parameters changed by
/// `tune` (the fit's and the levers' rows).
pub fn picker_with(
    emb: &Embedded,
    candidates: &[Candidate],
    config: &Config,
    now: DateTime<Utc>,
    tune: impl FnOnce(&mut HybridParams),
) -> RankPicker {
    let synonyms = paperboy::rank::Synonyms::from_concepts(config.rank.synonyms.clone());
    let mut picker = RankPicker::new(candidates.to_vec(), &synonyms, now);
    let s = &config.rank.semantic;
    let mut params = HybridParams::tuned(emb.family, s.dense_weight, s.min_similarity);
    tune(&mut params);
    picker.attach_paper_vectors(emb.dims, params, |id| emb.papers.get(id).map(Vec::as_slice));
    for (q, v) in &emb.topics {
        picker.index().add_topic_vector(q, v.clone().into());
    }
    picker
}

/// An index with the dense side on under `params` (the sweep's, the
/// feedback bench's).
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
    index.add_subject_vectors(emb.subjects.clone());
    index
}

/// nDCG@k and pooled precision over fusion weights, floors, stand-out
/// margins and the exact-match lift, to choose the defaults (printed, one
/// line each, tab-separated for sorting).
pub fn sweep(
    emb: &Embedded,
    candidates: &[Candidate],
    set: &RelevanceSet,
    synonyms: &Synonyms,
    now: DateTime<Utc>,
    k: usize,
) {
    println!();
    println!("hybrid sweep (all rounds): weight floor stand-out partial-floor partial-z exact-bonus → nDCG@{k} precision sent missed empty-sent");
    for p in grid(HybridParams::for_family(emb.family)) {
        let idx = index(emb, candidates, synonyms, now, p.clone());
        let s = eval::summarise(&eval::evaluate(set, k, |q| eval::lexical_picks(&idx, q, k)));
        println!(
            "sweep\t{:.1}\t{:.2}\t{:.1}\t{:.2}\t{:.1}\t{:.2}\t{:.3}\t{}\t{}\t{}\t{}",
            p.dense_weight,
            p.floor,
            p.stand_out,
            p.partial_floor,
            p.partial_stand_out,
            p.exact_bonus,
            s.ndcg,
            s.precision.map_or("-".into(), |p| format!("{p:.3}")),
            s.picks_sent,
            s.missed_topics,
            s.expect_nothing_sent,
        );
    }
}

/// The settings the sweep visits (720), around `base`.
fn grid(base: HybridParams) -> Vec<HybridParams> {
    let mut out = Vec::new();
    for (dense_weight, exact_bonus) in [(0.5, 0.25), (0.5, 1.0), (0.3, 0.25), (0.7, 0.25)] {
        for (floor, stand_out) in cross(&[0.25, 0.30, 0.35], &[2.0, 2.5, 3.0]) {
            let partials = cross(
                &[0.10, 0.15, 0.20, 0.25, 0.30],
                &[f32::NEG_INFINITY, 0.0, 0.5, 1.0],
            );
            for (partial_floor, partial_stand_out) in partials {
                out.push(HybridParams {
                    dense_weight,
                    floor,
                    stand_out,
                    partial_floor,
                    partial_stand_out,
                    exact_bonus,
                    ..base.clone()
                });
            }
        }
    }
    out
}

fn cross(a: &[f32], b: &[f32]) -> Vec<(f32, f32)> {
    a.iter()
        .flat_map(|&x| b.iter().map(move |&y| (x, y)))
        .collect()
}
