//! The adaptive profile: a reader's topics plus their feedback.
//!
//! Rocchio over paper vectors ([`super::vectors::PaperSpace`]): the
//! liked and saved papers' weighted centroid pulls similar papers up, the
//! not-for-me papers' centroid pushes similar ones down. Each piece of
//! feedback decays with age (a half-life in days, `now` a parameter). The
//! words space (TF-IDF over the day's candidate index) is always there;
//! when the index carries embeddings and the feedback papers have them,
//! the meaning space is used instead.
//!
//! Contracts:
//! - no feedback: exactly [`CandidateIndex::rank`] (same picks, scores,
//!   reasons);
//! - feedback adds at most `weight` (positive) or removes at most
//!   `negative_weight` from a paper's relevance before the trending
//!   factor, so it reorders and can add a close neighbour of a liked
//!   paper, but excluded words, the category filter and papers already
//!   sent still apply;
//! - at most `max_per_seed` picks of one digest are pulled up by the same
//!   liked paper (feedback gives at least a quarter of their score), so
//!   one click never floods a digest with near-duplicates; further
//!   neighbours compete on their score without the boost;
//! - a pick that feedback raised names the liked paper most similar to
//!   it in its reason: `Similar to “…”, which you liked`.

use super::vectors::{DenseSpace, LexicalSpace, PaperSpace};
use super::{CandidateIndex, Pick, Prepared, Profile};
use crate::domain::{FeedbackAction, FeedbackEntry, Paper, PaperId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

/// Tuning of the feedback model.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackParams {
    /// Largest relevance a liked paper's neighbours gain (a perfect topic
    /// match is 1).
    pub weight: f64,
    /// Largest relevance a not-for-me paper's neighbours lose.
    pub negative_weight: f64,
    /// Feedback this many days old counts half.
    pub half_life_days: f64,
    /// Cosine similarity counted as zero in the words space.
    pub lexical_floor: f32,
    /// Cosine similarity counted as zero in the meaning space.
    pub dense_floor: f32,
    /// Picks per digest that one liked paper may pull up.
    pub max_per_seed: usize,
    /// Only the most recent this many pieces of feedback are used.
    pub max_papers: usize,
}

impl Default for FeedbackParams {
    fn default() -> Self {
        FeedbackParams {
            // Chosen on the simulated readers (`cargo bench --bench
            // feedback`): a strong "not for me" also buried the relevant
            // papers that share the topic's words with the rejected ones.
            weight: 0.6,
            negative_weight: 0.2,
            half_life_days: 60.0,
            lexical_floor: 0.02,
            dense_floor: 0.35,
            max_per_seed: 3,
            max_papers: 200,
        }
    }
}

/// One paper the reader gave feedback on.
#[derive(Debug, Clone)]
pub struct FeedbackItem {
    pub paper: Arc<Paper>,
    pub action: FeedbackAction,
    pub at: DateTime<Utc>,
    /// The paper's unit embedding, when a model is loaded.
    pub embedding: Option<Arc<[f32]>>,
}

/// Everything a ranking needs about a reader's feedback.
#[derive(Debug, Clone)]
pub struct ReaderFeedback {
    /// Any order; the newest `max_papers` are used.
    pub items: Vec<FeedbackItem>,
    /// The time feedback ages against.
    pub now: DateTime<Utc>,
}

impl ReaderFeedback {
    pub fn none(now: DateTime<Utc>) -> ReaderFeedback {
        ReaderFeedback {
            items: Vec::new(),
            now,
        }
    }

    /// From stored feedback and its papers (no embeddings).
    pub fn from_entries(
        entries: impl IntoIterator<Item = (FeedbackEntry, Arc<Paper>)>,
        now: DateTime<Utc>,
    ) -> ReaderFeedback {
        ReaderFeedback {
            items: entries
                .into_iter()
                .map(|(e, paper)| FeedbackItem {
                    paper,
                    action: e.action,
                    at: e.at,
                    embedding: None,
                })
                .collect(),
            now,
        }
    }
}

impl ReaderFeedback {
    /// Gives each item without a vector its paper's vector from `vectors`
    /// (stored vectors of the loaded model, by paper id).
    pub fn attach_vectors(&mut self, vectors: &std::collections::HashMap<PaperId, Vec<f32>>) {
        for i in self.items.iter_mut().filter(|i| i.embedding.is_none()) {
            i.embedding = vectors.get(&i.paper.id).map(|v| Arc::from(v.as_slice()));
        }
    }
}

/// The liked or saved paper a pick is similar to, for its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimilarTo {
    pub id: PaperId,
    pub title: String,
    pub action: FeedbackAction,
}

/// Longest title quoted in a reason, in characters.
const QUOTED_TITLE_CHARS: usize = 40;

impl SimilarTo {
    /// `Similar to “Judge Decoding…”, which you liked`.
    pub fn summary(&self) -> String {
        format!(
            "Similar to “{}”, which you {}",
            shorten(&self.title, QUOTED_TITLE_CHARS),
            self.action.past_tense()
        )
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max).collect();
    let cut = match cut.rfind(' ') {
        Some(i) if i > max / 2 => &cut[..i],
        _ => cut.as_str(),
    };
    format!("{}…", cut.trim_end_matches([',', ';', ':', '.', ' ', '-']))
}

/// Per document: what feedback adds and removes (before the trending
/// factor), and whether positive feedback touched it.
struct Adjust {
    pos: Vec<f64>,
    neg: Vec<f64>,
}

/// What a boosted pick owes to the reader's liked papers.
enum Seed {
    /// Similar to none of them.
    Unrelated,
    /// Most similar to this one, which may still pull picks up.
    Liked(super::SimilarTo),
    /// Its liked paper has pulled up as many picks as it may today.
    Capped,
}

/// A candidate in the selection heap: score, then id (ascending) on ties.
struct Entry<'a> {
    score: f64,
    doc: u32,
    id: &'a PaperId,
    boosted: bool,
}

impl PartialEq for Entry<'_> {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == std::cmp::Ordering::Equal
    }
}
impl Eq for Entry<'_> {}
impl PartialOrd for Entry<'_> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry<'_> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.score
            .total_cmp(&o.score)
            .then_with(|| o.id.cmp(self.id))
    }
}

impl CandidateIndex {
    /// [`CandidateIndex::rank`] with the reader's feedback (see the module
    /// documentation for the contracts). With no feedback, exactly `rank`.
    pub fn rank_with_feedback(
        &self,
        profile: &Profile,
        already_sent: &HashSet<PaperId>,
        k: usize,
        feedback: &ReaderFeedback,
    ) -> Vec<Pick> {
        let fp = &self.params.feedback;
        let mut items: Vec<&FeedbackItem> = feedback.items.iter().collect();
        items.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.paper.id.cmp(&b.paper.id)));
        items.truncate(fp.max_papers);
        if k == 0 || items.is_empty() {
            return self.rank(profile, already_sent, k);
        }
        let weights: Vec<f32> = items
            .iter()
            .map(|i| {
                let age = (feedback.now - i.at).num_seconds().max(0) as f64 / 86_400.0;
                0.5f64.powf(age / fp.half_life_days.max(1e-3)) as f32
            })
            .collect();
        // Meaning when every feedback paper has a vector: its own, or the
        // candidate's when it is one of today's candidates.
        let dense_items: Option<Vec<Option<Arc<[f32]>>>> = self.dense.as_ref().and_then(|docs| {
            let by_id = &self.lexical_vectors().by_id;
            items
                .iter()
                .map(|i| {
                    i.embedding
                        .clone()
                        .or_else(|| docs[*by_id.get(&i.paper.id)? as usize].clone())
                        .map(Some)
                })
                .collect()
        });
        if let Some(dense_items) = dense_items {
            let space = DenseSpace {
                docs: self.dense.as_deref().unwrap_or(&[]),
                items: dense_items,
                floor: fp.dense_floor,
            };
            self.rank_in(&space, profile, already_sent, k, &items, &weights)
        } else {
            let vectors = self.lexical_vectors();
            let space = LexicalSpace {
                vectors,
                items: items
                    .iter()
                    .map(|i| match vectors.by_id.get(&i.paper.id) {
                        Some(&d) => vectors.docs[d as usize].clone(),
                        None => {
                            let mut v = self.text_vector(&i.paper);
                            super::vectors::normalise(&mut v);
                            v
                        }
                    })
                    .collect(),
                vocab_len: self.vocab_len(),
                floor: fp.lexical_floor,
            };
            self.rank_in(&space, profile, already_sent, k, &items, &weights)
        }
    }

    fn adjust(&self, space: &impl PaperSpace, items: &[&FeedbackItem], weights: &[f32]) -> Adjust {
        let fp = &self.params.feedback;
        let n = self.docs.len();
        let side = |positive: bool, scale: f64| -> Vec<f64> {
            let chosen: Vec<(usize, f32)> = (0..items.len())
                .filter(|&i| items[i].action.is_positive() == positive)
                .map(|i| (i, weights[i]))
                .collect();
            // One fresh click is full strength; old ones fade.
            let strength = chosen.iter().map(|c| c.1 as f64).sum::<f64>().min(1.0);
            let Some(c) = space.centroid(&chosen) else {
                return vec![0.0; n];
            };
            (0..n as u32)
                .map(|d| scale * strength * rescale(space.doc_centroid(d, &c), space.floor()))
                .collect()
        };
        Adjust {
            pos: side(true, fp.weight),
            neg: side(false, fp.negative_weight),
        }
    }

    /// The liked or saved item a document is most similar to (weighted by
    /// recency), if any is above the space's floor.
    fn seed(
        &self,
        space: &impl PaperSpace,
        doc: u32,
        items: &[&FeedbackItem],
        weights: &[f32],
    ) -> Option<usize> {
        (0..items.len())
            .filter(|&i| items[i].action.is_positive())
            .map(|i| {
                (
                    i,
                    weights[i] as f64 * rescale(space.doc_item(doc, i), space.floor()),
                )
            })
            .filter(|&(_, s)| s > 0.0)
            .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
            .map(|(i, _)| i)
    }

    fn rank_in(
        &self,
        space: &impl PaperSpace,
        profile: &Profile,
        already_sent: &HashSet<PaperId>,
        k: usize,
        items: &[&FeedbackItem],
        weights: &[f32],
    ) -> Vec<Pick> {
        let q: Prepared = self.prepare(profile);
        let mut base: Vec<Option<f64>> = vec![None; self.docs.len()];
        for (s, d) in self.scores(&q) {
            base[d as usize] = Some(s);
        }
        let adj = self.adjust(space, items, weights);
        let mut heap = self.feedback_heap(&base, &adj);
        let mut per_seed: HashMap<usize, usize> = HashMap::new();
        let mut picks = Vec::new();
        while let Some(e) = heap.pop() {
            if picks.len() == k {
                break;
            }
            if !self.allowed(e.doc, profile, &q, already_sent) {
                continue;
            }
            let d = e.doc as usize;
            // Feedback "pulled" this pick up when it gives a good share of
            // the score: only such picks count against the liked paper's cap.
            let pulled = e.boosted
                && (base[d].is_none()
                    || adj.pos[d] * self.trend_factor(e.doc) >= PULLED_SHARE * e.score);
            let seed = if e.boosted {
                self.seed_of(space, e.doc, pulled, items, weights, &mut per_seed)
            } else {
                Seed::Unrelated
            };
            let similar_to = match seed {
                Seed::Capped => {
                    // This liked paper has pulled up enough today:
                    // compete without its boost.
                    let score = base[d].unwrap_or(0.0) - adj.neg[d] * self.trend_factor(e.doc);
                    if base[d].is_some() && score > 0.0 {
                        heap.push(Entry {
                            score,
                            boosted: false,
                            ..e
                        });
                    }
                    continue;
                }
                Seed::Liked(s) => Some(s),
                Seed::Unrelated => None,
            };
            let mut reason = self.reason(e.doc, profile, &q, false);
            reason.similar_to = similar_to;
            picks.push(self.pick(e.doc, e.score, reason));
        }
        if picks.is_empty() && profile.fallback_trending {
            picks = self.trending_fallback(profile, &q, already_sent, k);
        }
        picks
    }

    /// Every paper with a positive score after feedback: relevant papers
    /// moved by it, and papers feedback alone lifts.
    fn feedback_heap(&self, base: &[Option<f64>], adj: &Adjust) -> BinaryHeap<Entry<'_>> {
        let mut heap = BinaryHeap::new();
        for doc in 0..self.docs.len() as u32 {
            let d = doc as usize;
            let f = self.trend_factor(doc);
            let b = base[d].unwrap_or(0.0);
            let (score, boosted) = if adj.pos[d] > 0.0 {
                (b + (adj.pos[d] - adj.neg[d]) * f, true)
            } else {
                (b - adj.neg[d] * f, false)
            };
            if score > 0.0 && (base[d].is_some() || boosted) {
                heap.push(Entry {
                    score,
                    doc,
                    id: &self.docs[d].id,
                    boosted,
                });
            }
        }
        heap
    }

    /// The liked paper a boosted pick is most similar to. A pick feedback
    /// `pulled` up counts against that paper's cap, and is `Capped` once
    /// the paper has pulled up `max_per_seed` today.
    fn seed_of(
        &self,
        space: &impl PaperSpace,
        doc: u32,
        pulled: bool,
        items: &[&FeedbackItem],
        weights: &[f32],
        per_seed: &mut HashMap<usize, usize>,
    ) -> Seed {
        let Some(s) = self.seed(space, doc, items, weights) else {
            return Seed::Unrelated;
        };
        if pulled {
            let n = per_seed.entry(s).or_default();
            if *n >= self.params.feedback.max_per_seed {
                return Seed::Capped;
            }
            *n += 1;
        }
        let p = &items[s].paper;
        Seed::Liked(super::SimilarTo {
            id: p.id.clone(),
            title: p.title.clone(),
            action: items[s].action,
        })
    }
}

/// Share of a pick's score that feedback must provide for the pick to
/// count as pulled up by a liked paper.
const PULLED_SHARE: f64 = 0.25;

/// Cosine above `floor`, rescaled to `[0, 1]`.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn rescale(cos: f32, floor: f32) -> f64 {
    if cos.is_nan() || cos <= floor {
        return 0.0;
    }
    (((cos - floor) / (1.0 - floor)) as f64).min(1.0)
}

/// Authors who recur among the papers a reader liked or saved (at least
/// `min_papers` of them) and whom the reader does not follow yet: the
/// settings page offers them, nothing follows them automatically. Most
/// frequent first, then by name; names as the papers print them.
pub fn suggest_authors(
    liked: &[&Paper],
    followed: &[String],
    min_papers: usize,
    limit: usize,
) -> Vec<(String, usize)> {
    use super::authors::AuthorKey;
    let followed: Vec<AuthorKey> = followed
        .iter()
        .filter_map(|f| AuthorKey::parse(f))
        .collect();
    // (key, printed name, papers)
    let mut seen: Vec<(AuthorKey, String, HashSet<&PaperId>)> = Vec::new();
    for p in liked {
        for a in &p.authors {
            let Some(key) = AuthorKey::parse(a) else {
                continue;
            };
            match seen.iter_mut().find(|s| s.0.matches(&key)) {
                Some(s) => {
                    s.2.insert(&p.id);
                    // Prefer the fuller spelling ("Yann LeCun" over "Y. LeCun").
                    if a.chars().count() > s.1.chars().count() {
                        s.1 = a.clone();
                    }
                }
                None => seen.push((key, a.clone(), HashSet::from([&p.id]))),
            }
        }
    }
    let mut out: Vec<(String, usize)> = seen
        .into_iter()
        .filter(|s| s.2.len() >= min_papers.max(1))
        .filter(|s| !followed.iter().any(|f| f.matches(&s.0)))
        .map(|s| (s.1, s.2.len()))
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out.truncate(limit);
    out
}

#[cfg(test)]
mod tests;
