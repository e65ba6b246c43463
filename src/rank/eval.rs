//! Offline evaluation of the ranker: a judged relevance set, nDCG@k, and
//! a plain BM25 baseline (one field, no stemming, synonyms or phrases) to
//! compare against. Used by `benches/relevance.rs` and the tests; the
//! minimal fixture readers here only feed evaluation (the `sources`
//! module owns real parsing).

use super::{CandidateIndex, Profile, RankParams, Synonyms};
use crate::domain::{Candidate, Paper};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Topics with graded judgements: paper id → grade (3 exactly on topic,
/// 2 substantially, 1 partly; absent means not relevant).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelevanceSet {
    pub topic: Vec<Judged>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Judged {
    pub query: String,
    #[serde(default)]
    pub relevant: BTreeMap<String, u8>,
    #[serde(default)]
    pub note: Option<String>,
}

impl RelevanceSet {
    pub fn parse(text: &str) -> Result<RelevanceSet, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

/// Normalised discounted cumulative gain of a ranking at `k`, with gain
/// `2^grade - 1`. A topic with no relevant paper scores 1 for an empty
/// ranking and 0 otherwise.
pub fn ndcg_at(ranked: &[&str], judged: &BTreeMap<String, u8>, k: usize) -> f64 {
    let gain = |g: u8| 2f64.powi(g as i32) - 1.0;
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, id)| gain(judged.get(*id).copied().unwrap_or(0)) / ((i + 2) as f64).log2())
        .sum();
    let mut ideal: Vec<u8> = judged.values().copied().filter(|&g| g > 0).collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, &g)| gain(g) / ((i + 2) as f64).log2())
        .sum();
    if idcg == 0.0 {
        return if ranked.is_empty() { 1.0 } else { 0.0 };
    }
    dcg / idcg
}

/// Textbook Okapi BM25 (k1 = 1.2, b = 0.75) over title, abstract and
/// keywords concatenated into one field; lower-cased alphanumeric tokens,
/// no stemming, stop words, synonyms or phrases.
pub struct Bm25Baseline {
    postings: HashMap<String, Vec<(usize, u32)>>,
    lens: Vec<u32>,
    avg: f64,
}

impl Bm25Baseline {
    pub fn new(candidates: &[Candidate]) -> Bm25Baseline {
        let mut postings: HashMap<String, Vec<(usize, u32)>> = HashMap::new();
        let mut lens = Vec::new();
        for (i, c) in candidates.iter().enumerate() {
            let text = format!(
                "{} {} {}",
                c.paper.title,
                c.paper.abstract_text,
                c.paper.ai_keywords.join(" ")
            );
            let mut tf: HashMap<String, u32> = HashMap::new();
            let mut n = 0;
            super::text::for_each_token(&text, |t, _| {
                *tf.entry(t.to_string()).or_default() += 1;
                n += 1;
            });
            lens.push(n);
            for (t, f) in tf {
                postings.entry(t).or_default().push((i, f));
            }
        }
        let avg = lens.iter().map(|&l| l as f64).sum::<f64>() / lens.len().max(1) as f64;
        Bm25Baseline {
            postings,
            lens,
            avg,
        }
    }

    /// Indices of the best `k` candidates with a positive score.
    pub fn search(&self, query: &str, k: usize) -> Vec<usize> {
        let n = self.lens.len() as f64;
        let mut terms = Vec::new();
        super::text::for_each_token(query, |t, _| terms.push(t.to_string()));
        terms.sort();
        terms.dedup();
        let mut acc: HashMap<usize, f64> = HashMap::new();
        for t in &terms {
            let Some(list) = self.postings.get(t) else {
                continue;
            };
            let df = list.len() as f64;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(d, f) in list {
                let f = f as f64;
                let norm = 1.2 * (1.0 - 0.75 + 0.75 * self.lens[d] as f64 / self.avg);
                *acc.entry(d).or_default() += idf * f * 2.2 / (f + norm);
            }
        }
        let mut v: Vec<(usize, f64)> = acc.into_iter().collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v.into_iter().take(k).map(|(d, _)| d).collect()
    }
}

/// nDCG@k of one topic for the ranker and for the baseline.
#[derive(Debug, Clone)]
pub struct TopicScore {
    pub query: String,
    pub ranker: f64,
    pub baseline: f64,
}

/// Evaluates the ranker (with `params`) and the BM25 baseline on a set.
pub fn evaluate(
    candidates: &[Candidate],
    set: &RelevanceSet,
    synonyms: &Synonyms,
    params: RankParams,
    now: DateTime<Utc>,
    k: usize,
) -> Vec<TopicScore> {
    let index = CandidateIndex::build_with(candidates, synonyms, now, params);
    let baseline = Bm25Baseline::new(candidates);
    let none = HashSet::new();
    set.topic
        .iter()
        .map(|j| {
            let picks = index.rank(&Profile::topics([j.query.as_str()]), &none, k);
            let ours: Vec<&str> = picks.iter().map(|p| p.id.as_str()).collect();
            let base: Vec<&str> = baseline
                .search(&j.query, k)
                .into_iter()
                .map(|i| candidates[i].paper.id.as_str())
                .collect();
            TopicScore {
                query: j.query.clone(),
                ranker: ndcg_at(&ours, &j.relevant, k),
                baseline: ndcg_at(&base, &j.relevant, k),
            }
        })
        .collect()
}

/// Every paper in the recorded fixtures of `dir` (Hugging Face lists,
/// arXiv feeds and export-API responses), parsed with the real `sources`
/// parsers; the first occurrence of an id is kept and papers with upvotes
/// get one observation at `observed`. Files that are not listings (or are
/// error feeds) are skipped.
pub fn fixture_candidates(dir: &std::path::Path, observed: DateTime<Utc>) -> Vec<Candidate> {
    use crate::sources::{parse_arxiv_api, parse_arxiv_rss, parse_hf};
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut out: Vec<Candidate> = Vec::new();
    for path in names {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let papers: Vec<Paper> = if name.starts_with("hf_daily_papers") {
            parse_hf(&bytes, None).unwrap_or_default()
        } else if name.starts_with("arxiv_rss") {
            parse_arxiv_rss(&bytes)
                .map(|l| l.items.into_iter().map(|i| i.paper).collect())
                .unwrap_or_default()
        } else if name.starts_with("arxiv_api") {
            parse_arxiv_api(&bytes)
                .map(|p| p.papers)
                .unwrap_or_default()
        } else {
            continue;
        };
        for paper in papers {
            if out.iter().any(|o| o.paper.id == paper.id) {
                continue;
            }
            let history = paper
                .upvotes
                .map(|u| {
                    vec![crate::domain::UpvoteObservation {
                        at: observed,
                        upvotes: u,
                    }]
                })
                .unwrap_or_default();
            out.push(Candidate { paper, history });
        }
    }
    out
}
