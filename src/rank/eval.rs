//! Offline evaluation of the ranker: a judged relevance set, nDCG@k, and
//! a plain BM25 baseline (one field, no stemming, synonyms or phrases) to
//! compare against. Used by `benches/relevance.rs` and the tests; the
//! minimal fixture readers here only feed evaluation (the `sources`
//! module owns real parsing).

use super::{CandidateIndex, Profile, RankParams, Synonyms};
use crate::domain::{Candidate, Paper, PaperId, SourceKind};
use chrono::{DateTime, NaiveDate, Utc};
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

/// Papers of a Hugging Face `/api/daily_papers` response (enough fields
/// for ranking), with a single upvote observation at `observed`.
pub fn candidates_from_hf_json(
    text: &str,
    observed: DateTime<Utc>,
) -> Result<Vec<Candidate>, String> {
    let items: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for it in items {
        let p = &it["paper"];
        let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        let id = PaperId::parse_arxiv(p["id"].as_str().unwrap_or_default())
            .map_err(|e| e.to_string())?
            .0;
        let mut paper = Paper::new(id, &s(&p["title"]), &s(&p["summary"]));
        paper.authors = p["authors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|x| x["hidden"] != serde_json::Value::Bool(true))
                    .map(|x| s(&x["name"]))
                    .collect()
            })
            .unwrap_or_default();
        paper.ai_keywords = p["ai_keywords"]
            .as_array()
            .map(|a| a.iter().map(s).collect())
            .unwrap_or_default();
        paper.upvotes = p["upvotes"].as_i64();
        paper.published = p["publishedAt"].as_str().and_then(|t| t.parse().ok());
        paper.listed_on = p["submittedOnDailyAt"]
            .as_str()
            .or(it["publishedAt"].as_str())
            .and_then(|t| t.parse::<DateTime<Utc>>().ok())
            .map(|t| t.date_naive());
        paper.sources = vec![SourceKind::HuggingFace];
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
    Ok(out)
}

/// Papers of an arXiv RSS feed or export-API Atom response.
pub fn candidates_from_arxiv_xml(text: &str) -> Result<Vec<Candidate>, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().trim_text(true);
    #[derive(Default)]
    struct Item {
        id: String,
        title: String,
        summary: String,
        authors: Vec<String>,
        categories: Vec<String>,
        date: Option<NaiveDate>,
    }
    let mut out = Vec::new();
    let mut item: Option<Item> = None;
    let mut path: Vec<String> = Vec::new();
    loop {
        let ev = reader.read_event().map_err(|e| e.to_string())?;
        match ev {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if name == "item" || name == "entry" {
                    item = Some(Item::default());
                }
                path.push(name);
            }
            Event::Empty(e) => {
                if let (Some(it), b"category") = (item.as_mut(), e.name().as_ref()) {
                    if let Ok(Some(a)) = e.try_get_attribute("term") {
                        it.categories
                            .push(a.unescape_value().map_err(|e| e.to_string())?.into_owned());
                    }
                }
            }
            Event::Text(t) => {
                let (Some(it), Some(el)) = (item.as_mut(), path.last()) else {
                    continue;
                };
                let t = t.unescape().map_err(|e| e.to_string())?;
                let parent = path.len().checked_sub(2).map(|i| path[i].as_str());
                match el.as_str() {
                    "title" => it.title = t.into_owned(),
                    "link" | "id" if it.id.is_empty() => {
                        if let Ok((id, _)) = PaperId::parse_arxiv(&t) {
                            it.id = id.to_string();
                        }
                    }
                    "description" => {
                        it.summary = t.split_once("Abstract:").map_or(&*t, |x| x.1).to_string()
                    }
                    "summary" => it.summary = t.into_owned(),
                    "category" => it.categories.push(t.into_owned()),
                    "dc:creator" => it.authors = t.split(", ").map(str::to_string).collect(),
                    "name" if parent == Some("author") => it.authors.push(t.into_owned()),
                    "published" => {
                        it.date = t.parse::<DateTime<Utc>>().ok().map(|d| d.date_naive())
                    }
                    "pubDate" => {
                        it.date = DateTime::parse_from_rfc2822(&t)
                            .ok()
                            .map(|d| d.with_timezone(&Utc).date_naive())
                    }
                    _ => {}
                }
            }
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                if name == "item" || name == "entry" {
                    if let Some(it) = item.take() {
                        if it.id.is_empty() || it.title.is_empty() {
                            continue;
                        }
                        let mut p = Paper::new(PaperId::from_stored(it.id), &it.title, &it.summary);
                        p.authors = it.authors;
                        p.categories = it.categories;
                        p.listed_on = it.date;
                        p.sources = vec![SourceKind::ArxivFeed];
                        out.push(Candidate {
                            paper: p,
                            history: Vec::new(),
                        });
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}
