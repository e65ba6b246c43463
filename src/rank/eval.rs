//! Offline evaluation of rankers, pure: a judged relevance set, nDCG@k,
//! the precision of what a digest would carry, and a plain BM25 baseline
//! (one field, no stemming, synonyms or phrases) to compare against.
//!
//! Reading the set and the recorded papers is the caller's job
//! (`benches/relevance.rs`, the tests; [`crate::fixtures`] reads the
//! recorded upstream responses). A ranker is evaluated through what it
//! sends for each topic ([`evaluate`]), so the lexical ranker, the
//! baseline and any later ranker are rows of the same table.

use super::{CandidateIndex, Profile};
use crate::domain::Candidate;
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
    /// How the topic is phrased (absent in sets that do not say).
    #[serde(default)]
    pub kind: Option<Kind>,
    /// Which round of judging added the topic (1: the original set).
    #[serde(default = "first_round")]
    pub round: u32,
    /// Empty: nothing in the corpus fits, so the right digest is none.
    #[serde(default)]
    pub relevant: BTreeMap<String, u8>,
    #[serde(default)]
    pub note: Option<String>,
}

/// The kind of a judged topic: how a reader phrased it, which decides
/// what a ranker must do to find its papers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The specialist's term ("gravitational wave detection").
    Jargon,
    /// How people type it ("spotting fake photos").
    Natural,
    /// A broad field ("chemistry"): every paper of the field is relevant.
    Field,
    /// Nothing in the corpus fits: the right digest is none.
    Nothing,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Jargon, Kind::Natural, Kind::Field, Kind::Nothing];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Jargon => "jargon",
            Kind::Natural => "natural",
            Kind::Field => "field",
            Kind::Nothing => "nothing",
        }
    }
}

fn first_round() -> u32 {
    1
}

impl Judged {
    /// Whether no paper fits the topic (a digest should send nothing).
    pub fn expects_nothing(&self) -> bool {
        !self.relevant.values().any(|&g| g > 0)
    }
}

impl RelevanceSet {
    /// Reads a set; a topic whose `kind` contradicts its judgements (kind
    /// "nothing" with relevant papers, or no relevant paper under another
    /// kind) is an error naming the topic.
    pub fn parse(text: &str) -> Result<RelevanceSet, String> {
        let set: RelevanceSet = toml::from_str(text).map_err(|e| e.to_string())?;
        for t in &set.topic {
            match (t.kind, t.expects_nothing()) {
                (Some(Kind::Nothing), false) => {
                    return Err(format!(
                        "topic {:?} is of kind \"nothing\" but lists relevant papers",
                        t.query
                    ))
                }
                (Some(k), true) if k != Kind::Nothing => {
                    return Err(format!(
                    "topic {:?} lists no relevant paper, so its kind must be \"nothing\", not {:?}",
                    t.query,
                    k.name()
                ))
                }
                _ => {}
            }
        }
        Ok(set)
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
    // `+ 0.0` turns the -0.0 of an empty sum into 0.
    dcg / idcg + 0.0
}

/// How one ranker did on one topic, from the picks it would send.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicRun {
    pub query: String,
    pub kind: Option<Kind>,
    pub round: u32,
    pub ndcg: f64,
    /// Judged relevant among the picks sent / the most that `k` picks can
    /// hold (`min(k, judged relevant)`); `None` when nothing fits.
    pub recall: Option<f64>,
    /// Picks sent (at most `k`).
    pub sent: usize,
    /// Of those, judged relevant (grade ≥ 1).
    pub relevant_sent: usize,
    /// The set says nothing fits this topic.
    pub expects_nothing: bool,
}

/// Judges what was sent for one topic: the first `k` of `sent`.
pub fn judge(topic: &Judged, sent: &[&str], k: usize) -> TopicRun {
    let sent = &sent[..sent.len().min(k)];
    let relevant_sent = sent
        .iter()
        .filter(|id| topic.relevant.get(**id).is_some_and(|&g| g > 0))
        .count();
    let judged = topic.relevant.values().filter(|&&g| g > 0).count();
    TopicRun {
        query: topic.query.clone(),
        kind: topic.kind,
        round: topic.round,
        ndcg: ndcg_at(sent, &topic.relevant, k),
        recall: (judged > 0).then(|| relevant_sent as f64 / judged.min(k) as f64),
        sent: sent.len(),
        relevant_sent,
        expects_nothing: topic.expects_nothing(),
    }
}

/// Runs `rank` (topic → ids of the papers a digest would carry, best
/// first) on every topic of `set` and judges the first `k` picks.
pub fn evaluate<F>(set: &RelevanceSet, k: usize, mut rank: F) -> Vec<TopicRun>
where
    F: FnMut(&str) -> Vec<String>,
{
    set.topic
        .iter()
        .map(|t| {
            let ids = rank(&t.query);
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            judge(t, &ids, k)
        })
        .collect()
}

/// One ranker over a set of topics.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub topics: usize,
    /// Mean nDCG@k over all topics (an empty-expected topic scores 1 when
    /// nothing is sent, else 0).
    pub ndcg: f64,
    /// Judged relevant / sent, over all picks of all topics: a topic
    /// sending nothing adds nothing; an empty-expected topic that sends
    /// adds only misses. `None` when nothing was sent at all.
    pub precision: Option<f64>,
    /// Mean per-topic precision over the topics that sent something.
    pub mean_topic_precision: Option<f64>,
    /// Mean [`TopicRun::recall`] over the topics with relevant papers.
    pub recall: Option<f64>,
    pub picks_sent: usize,
    /// Topics with relevant papers for which nothing was sent.
    pub missed_topics: usize,
    /// Topics the set expects nothing for, and how many of them sent.
    pub expect_nothing: usize,
    pub expect_nothing_sent: usize,
    /// Picks sent for the topics that expect nothing (all of them misses).
    pub expect_nothing_picks: usize,
}

/// Aggregates the runs of one ranker.
pub fn summarise(runs: &[TopicRun]) -> Summary {
    let n = runs.len();
    let picks: usize = runs.iter().map(|r| r.sent).sum();
    let hits: usize = runs.iter().map(|r| r.relevant_sent).sum();
    let sending: Vec<&TopicRun> = runs.iter().filter(|r| r.sent > 0).collect();
    let recalls: Vec<f64> = runs.iter().filter_map(|r| r.recall).collect();
    let nothing = || runs.iter().filter(|r| r.expects_nothing);
    Summary {
        topics: n,
        ndcg: runs.iter().map(|r| r.ndcg).sum::<f64>() / n.max(1) as f64,
        precision: (picks > 0).then(|| hits as f64 / picks as f64),
        mean_topic_precision: (!sending.is_empty()).then(|| {
            sending
                .iter()
                .map(|r| r.relevant_sent as f64 / r.sent as f64)
                .sum::<f64>()
                / sending.len() as f64
        }),
        recall: (!recalls.is_empty()).then(|| recalls.iter().sum::<f64>() / recalls.len() as f64),
        picks_sent: picks,
        missed_topics: runs
            .iter()
            .filter(|r| !r.expects_nothing && r.sent == 0)
            .count(),
        expect_nothing: nothing().count(),
        expect_nothing_sent: nothing().filter(|r| r.sent > 0).count(),
        expect_nothing_picks: nothing().map(|r| r.sent).sum(),
    }
}

/// [`summarise`] of the runs of each kind present (in [`Kind::ALL`]
/// order), then of all runs pooled (`None`).
pub fn summarise_by_kind(runs: &[TopicRun]) -> Vec<(Option<Kind>, Summary)> {
    let mut out: Vec<(Option<Kind>, Summary)> = Kind::ALL
        .iter()
        .filter_map(|&k| {
            let of: Vec<TopicRun> = runs.iter().filter(|r| r.kind == Some(k)).cloned().collect();
            (!of.is_empty()).then(|| (Some(k), summarise(&of)))
        })
        .collect();
    out.push((None, summarise(runs)));
    out
}

/// The lexical ranker as a digest uses it: the ids of the first `k` picks
/// for a profile of this one topic.
pub fn lexical_picks(index: &CandidateIndex, topic: &str, k: usize) -> Vec<String> {
    index
        .rank(&Profile::topics([topic]), &HashSet::new(), k)
        .into_iter()
        .map(|p| p.id.as_str().to_string())
        .collect()
}

/// Textbook Okapi BM25 (k1 = 1.2, b = 0.75) over title, abstract and
/// keywords concatenated into one field; lower-cased alphanumeric tokens,
/// no stemming, stop words, synonyms or phrases.
pub struct Bm25Baseline {
    postings: HashMap<String, Vec<(usize, u32)>>,
    lens: Vec<u32>,
    avg: f64,
    ids: Vec<String>,
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
            ids: candidates
                .iter()
                .map(|c| c.paper.id.as_str().to_string())
                .collect(),
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

    /// Ids of the best `k` candidates: what a digest built on the
    /// baseline would carry (it always fills the slots it can).
    pub fn picks(&self, query: &str, k: usize) -> Vec<String> {
        self.search(query, k)
            .into_iter()
            .map(|d| self.ids[d].clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str) -> RelevanceSet {
        RelevanceSet::parse(text).unwrap()
    }

    #[test]
    fn a_topic_of_kind_nothing_that_lists_papers_is_refused_by_name() {
        let e = RelevanceSet::parse(
            "[[topic]]\nquery = \"plant genomics\"\nkind = \"nothing\"\nrelevant = { \"x\" = 2 }\n",
        )
        .unwrap_err();
        assert!(
            e.contains("\"plant genomics\"") && e.contains("nothing"),
            "{e}"
        );
        let e = RelevanceSet::parse(
            "[[topic]]\nquery = \"chemistry\"\nkind = \"field\"\nrelevant = {}\n",
        )
        .unwrap_err();
        assert!(e.contains("\"chemistry\"") && e.contains("field"), "{e}");
        let e = RelevanceSet::parse("[[topic]]\nquery = \"q\"\nkind = \"vague\"\n").unwrap_err();
        assert!(e.contains("vague"), "{e}");
    }

    #[test]
    fn recall_counts_what_ten_picks_could_hold_and_is_absent_where_nothing_fits() {
        let s = set(r#"
            [[topic]]
            query = "broad"
            kind = "field"
            relevant = { "a" = 2, "b" = 2, "c" = 1, "d" = 1 }
            [[topic]]
            query = "none"
            kind = "nothing"
            "#);
        let runs = evaluate(&s, 2, |q| match q {
            "broad" => vec!["a".into(), "x".into(), "b".into()],
            _ => vec![],
        });
        // Two picks can hold two of the four: one of them was sent.
        assert_eq!(runs[0].recall, Some(0.5));
        assert_eq!(runs[0].kind, Some(Kind::Field));
        assert_eq!(runs[1].recall, None);
    }

    #[test]
    fn summaries_by_kind_pool_each_kind_then_all_and_count_papers_sent_where_nothing_fits() {
        let s = set(r#"
            [[topic]]
            query = "j1"
            kind = "jargon"
            relevant = { "a" = 3 }
            [[topic]]
            query = "j2"
            kind = "jargon"
            relevant = { "b" = 3 }
            [[topic]]
            query = "n1"
            kind = "nothing"
            [[topic]]
            query = "n2"
            kind = "nothing"
            "#);
        let runs = evaluate(&s, 10, |q| match q {
            "j1" => vec!["a".into(), "z".into()],
            "n1" => vec!["a".into(), "b".into(), "c".into()],
            _ => vec![],
        });
        let by = summarise_by_kind(&runs);
        let kinds: Vec<Option<Kind>> = by.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, vec![Some(Kind::Jargon), Some(Kind::Nothing), None]);
        let jargon = &by[0].1;
        assert_eq!(
            (jargon.topics, jargon.picks_sent, jargon.missed_topics),
            (2, 2, 1)
        );
        assert_eq!(jargon.precision, Some(0.5));
        assert_eq!(jargon.recall, Some(0.5));
        let nothing = &by[1].1;
        assert_eq!(
            (
                nothing.expect_nothing,
                nothing.expect_nothing_sent,
                nothing.expect_nothing_picks
            ),
            (2, 1, 3)
        );
        assert_eq!(nothing.ndcg, 0.5);
        let all = &by[2].1;
        assert_eq!(
            (all.topics, all.picks_sent, all.expect_nothing_picks),
            (4, 5, 3)
        );
        assert_eq!(all.precision, Some(0.2));
    }

    #[test]
    fn both_judged_sets_tag_every_topic_with_a_kind_and_set_b_has_eight_of_each() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for (path, least) in [
            ("tests/relevance/judgements.toml", 1),
            ("tests/relevance/set-b/judgements.toml", 8),
        ] {
            let s = set(&std::fs::read_to_string(root.join(path)).unwrap());
            for k in Kind::ALL {
                let n = s.topic.iter().filter(|t| t.kind == Some(k)).count();
                assert!(n >= least, "{path}: {n} topics of kind {}", k.name());
            }
            let untagged: Vec<&str> = s
                .topic
                .iter()
                .filter(|t| t.kind.is_none())
                .map(|t| t.query.as_str())
                .collect();
            assert!(untagged.is_empty(), "{path}: no kind for {untagged:?}");
        }
    }
}
