//! Evaluation of feedback by simulated readers on the judged set
//! (`tests/relevance/judgements.toml`).
//!
//! Each judged topic is a reader who typed that topic. Every day the
//! reader gets a digest (`digest_size` papers, none sent before) from the
//! ranker with their feedback so far, and clicks *More like this* on each
//! paper the judgements call relevant and *Not for me* on every other one.
//! After 0, 1, 3 and 5 days the ranking is measured the standard way for
//! relevance feedback, on the *residual* collection: the papers the reader
//! has not seen yet, against the judgements of those papers (what they
//! already judged is no news). The same residual ranking without feedback
//! is the comparison, so day 0 is identical by construction and later days
//! show what feedback adds. Topics with no relevant paper left in the
//! residual collection drop out of that day's means (their number is
//! reported).

use super::eval::{ndcg_at, Judged, RelevanceSet};
use super::{CandidateIndex, FeedbackItem, Profile, RankParams, ReaderFeedback, Synonyms};
use crate::domain::{Candidate, FeedbackAction, PaperId};
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// Means over the topics still measurable on one day.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DayScore {
    /// Days of feedback given before this measurement.
    pub day: usize,
    /// Topics with relevant papers left to find.
    pub topics: usize,
    pub ndcg_feedback: f64,
    pub ndcg_none: f64,
    /// Precision at k: relevant papers in the top k, over k.
    pub precision_feedback: f64,
    pub precision_none: f64,
}

/// How a simulation is run.
#[derive(Debug, Clone)]
pub struct Simulation {
    pub params: RankParams,
    pub now: DateTime<Utc>,
    /// Papers per daily digest.
    pub digest_size: usize,
    /// Cut-off of nDCG and precision.
    pub k: usize,
    /// Measurement days, ascending (e.g. 0, 1, 3, 5).
    pub days: Vec<usize>,
    /// Unit embeddings per candidate, for the hybrid ranker.
    pub embeddings: Option<Vec<Option<Arc<[f32]>>>>,
}

fn precision(ranked: &[&str], judged: &BTreeMap<String, u8>, k: usize) -> f64 {
    let hits = ranked
        .iter()
        .take(k)
        .filter(|id| judged.get(**id).is_some_and(|&g| g > 0))
        .count();
    hits as f64 / k as f64
}

/// Runs every judged topic's reader and returns one score per
/// measurement day.
pub fn simulate(
    candidates: &[Candidate],
    set: &RelevanceSet,
    synonyms: &Synonyms,
    sim: &Simulation,
) -> Vec<DayScore> {
    let mut index = CandidateIndex::build_with(candidates, synonyms, sim.now, sim.params.clone());
    if let Some(e) = &sim.embeddings {
        index = index.with_embeddings(e);
    }
    simulate_on(&index, candidates, set, sim)
}

/// [`simulate`] on an index built by the caller from `candidates`, e.g.
/// the hybrid ranker's (paper and topic vectors attached); `sim.params`
/// and `sim.embeddings` are then the caller's business. Feedback items
/// carry the paper's vector from `sim.embeddings`, else from the index.
pub fn simulate_on(
    index: &CandidateIndex,
    candidates: &[Candidate],
    set: &RelevanceSet,
    sim: &Simulation,
) -> Vec<DayScore> {
    let by_id: BTreeMap<&str, &Candidate> = candidates
        .iter()
        .map(|c| (c.paper.id.as_str(), c))
        .collect();
    let mut sums = vec![DaySums::default(); sim.days.len()];
    let last = sim.days.iter().copied().max().unwrap_or(0);
    for judged in set
        .topic
        .iter()
        .filter(|j| j.relevant.values().any(|&g| g > 0))
    {
        let mut reader = Reader {
            judged,
            profile: Profile::topics([judged.query.as_str()]),
            seen: HashSet::new(),
            feedback: ReaderFeedback::none(sim.now),
        };
        for day in 0..=last {
            let today = sim.now + Duration::days(day as i64);
            reader.feedback.now = today;
            if let Some(slot) = sim.days.iter().position(|&d| d == day) {
                reader.measure(index, sim.k, &mut sums[slot]);
            }
            if day == last {
                break;
            }
            reader.read_digest(index, &by_id, sim, today);
        }
    }
    sim.days
        .iter()
        .zip(sums)
        .map(|(&day, s)| s.means(day))
        .collect()
}

/// Day 0 for readers who start with `examples` liked example papers
/// (*papers like these* on the settings page): each judged topic's
/// `examples` most relevant papers (highest grade, then lowest id: a
/// choice that does not depend on any ranker), given as *More like this*
/// at `sim.now` and treated as already known, so they leave the residual
/// collection of both rankings. Topics with fewer relevant papers, or
/// none left after them, are not measured. `ndcg_none` / `precision_none`
/// are the same readers without the examples.
pub fn simulate_examples(
    index: &CandidateIndex,
    candidates: &[Candidate],
    set: &RelevanceSet,
    sim: &Simulation,
    examples: usize,
) -> DayScore {
    let by_id: BTreeMap<&str, usize> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (c.paper.id.as_str(), i))
        .collect();
    let mut sums = DaySums::default();
    for judged in &set.topic {
        let mut best: Vec<(&String, u8)> = judged
            .relevant
            .iter()
            .filter(|(id, &g)| g > 0 && by_id.contains_key(id.as_str()))
            .map(|(id, &g)| (id, g))
            .collect();
        if best.len() < examples {
            continue;
        }
        best.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let mut reader = Reader {
            judged,
            profile: Profile::topics([judged.query.as_str()]),
            seen: HashSet::new(),
            feedback: ReaderFeedback::none(sim.now),
        };
        for (id, _) in best.into_iter().take(examples) {
            let i = by_id[id.as_str()];
            reader.feedback.items.push(FeedbackItem {
                paper: Arc::new(candidates[i].paper.clone()),
                action: FeedbackAction::More,
                at: sim.now,
                embedding: match &sim.embeddings {
                    Some(e) => e[i].clone(),
                    None => index.paper_vector(i).map(Arc::from),
                },
            });
            reader.seen.insert(candidates[i].paper.id.clone());
        }
        reader.measure(index, sim.k, &mut sums);
    }
    sums.means(0)
}

/// Sums over the topics measured on one day.
#[derive(Debug, Clone, Copy, Default)]
struct DaySums {
    topics: usize,
    ndcg_feedback: f64,
    ndcg_none: f64,
    precision_feedback: f64,
    precision_none: f64,
}

impl DaySums {
    fn means(self, day: usize) -> DayScore {
        let m = |x: f64| {
            if self.topics == 0 {
                0.0
            } else {
                x / self.topics as f64
            }
        };
        DayScore {
            day,
            topics: self.topics,
            ndcg_feedback: m(self.ndcg_feedback),
            ndcg_none: m(self.ndcg_none),
            precision_feedback: m(self.precision_feedback),
            precision_none: m(self.precision_none),
        }
    }
}

/// One judged topic's simulated reader.
struct Reader<'a> {
    judged: &'a Judged,
    profile: Profile,
    /// Papers already mailed to the reader.
    seen: HashSet<PaperId>,
    feedback: ReaderFeedback,
}

impl Reader<'_> {
    /// Adds the residual ranking's scores, with and without feedback, to
    /// the day's sums; a topic with nothing relevant left is not counted.
    fn measure(&self, index: &CandidateIndex, k: usize, sums: &mut DaySums) {
        let residual: BTreeMap<String, u8> = self
            .judged
            .relevant
            .iter()
            .filter(|(id, _)| !self.seen.iter().any(|s| s.as_str() == id.as_str()))
            .map(|(id, g)| (id.clone(), *g))
            .collect();
        if !residual.values().any(|&g| g > 0) {
            return;
        }
        let with = index.rank_with_feedback(&self.profile, &self.seen, k, &self.feedback);
        let none = index.rank(&self.profile, &self.seen, k);
        let ids =
            |p: &[super::Pick]| -> Vec<String> { p.iter().map(|p| p.id.to_string()).collect() };
        let (w, n) = (ids(&with), ids(&none));
        let w: Vec<&str> = w.iter().map(String::as_str).collect();
        let n: Vec<&str> = n.iter().map(String::as_str).collect();
        sums.topics += 1;
        sums.ndcg_feedback += ndcg_at(&w, &residual, k);
        sums.ndcg_none += ndcg_at(&n, &residual, k);
        sums.precision_feedback += precision(&w, &residual, k);
        sums.precision_none += precision(&n, &residual, k);
    }

    /// Today's digest, and the reader's clicks on it: *More like this* on
    /// each relevant paper, *Not for me* on the others.
    fn read_digest(
        &mut self,
        index: &CandidateIndex,
        by_id: &BTreeMap<&str, &Candidate>,
        sim: &Simulation,
        today: DateTime<Utc>,
    ) {
        let digest =
            index.rank_with_feedback(&self.profile, &self.seen, sim.digest_size, &self.feedback);
        for p in digest {
            let relevant = self
                .judged
                .relevant
                .get(p.id.as_str())
                .is_some_and(|&g| g > 0);
            let c = by_id[p.id.as_str()];
            self.feedback.items.push(FeedbackItem {
                paper: Arc::new(c.paper.clone()),
                action: if relevant {
                    FeedbackAction::More
                } else {
                    FeedbackAction::NotForMe
                },
                at: today,
                embedding: match &sim.embeddings {
                    Some(e) => e[p.index].clone(),
                    None => index.paper_vector(p.index).map(Arc::from),
                },
            });
            self.seen.insert(p.id);
        }
    }
}
