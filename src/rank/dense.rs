//! The dense (meaning) side of ranking: precomputed unit vectors of the
//! candidates and of topics, fused with the lexical scores.
//!
//! Pure like the rest of `rank`: the vectors are computed elsewhere
//! by the embedding side and handed in. Without paper vectors, or for a topic
//! without a vector, ranking is exactly the lexical one.
//!
//! Fusion, per topic, over the day's candidates:
//! - `dense = clamp((cos − floor) / (high − floor), 0, 1)`: cosine
//!   similarity rescaled between the model's "unrelated" floor and a
//!   cosine that clearly means "on topic", so it is comparable to the
//!   lexical relevance (already in `[0, 1]`) whatever the day;
//! - `fused = (1 − w)·lexical + w·dense`;
//! - a paper that matches the topic's words exactly (every word, as a
//!   phrase for a multi-word topic; any wording of a synonym) always
//!   qualifies, and is lifted: `rel = (fused + b) / (1 + b)` with
//!   `b = exact_bonus`, others `rel = fused / (1 + b)`;
//! - a paper with every word of the topic, not as a phrase, qualifies
//!   unless the model puts it below the day's mean cosine;
//! - a partial lexical match qualifies only if the model agrees: its
//!   cosine reaches `partial_floor` and stands half a standard deviation
//!   above the day's mean (sharing the word "engineering" is not enough
//!   for "representation engineering");
//! - a paper matched by meaning alone qualifies only if its cosine reaches
//!   the floor *and* stands out from the day's similarity distribution
//!   (`mean + stand_out · sd`): on a day with nothing on the topic, the
//!   best of a uniformly unrelated crowd does not stand out, so the topic
//!   gets nothing rather than padding;
//! - a topic that means a broad field maps to arXiv subjects (its cosine
//!   to a subject's description reaches `subject_floor`, and beats the
//!   day's best paper by `subject_over_papers`; see `fields.rs`): a paper
//!   listed in one of them qualifies, ranked primary before cross-listed
//!   and by cosine, always below every paper with any of the topic's
//!   words;
//! - with `calibration` set, a logistic model of the pair's evidence
//!   (`calibrate.rs`) decides which papers without an exact match qualify,
//!   in place of the floors (off by default: README).
//!
//! Papers without a vector (not embedded yet) keep their lexical score
//! and rules.

use super::calibrate::{Calibration, Evidence};
use super::doc::Doc;
use super::fields::{membership, Membership, Subjects};
use super::hits::{Hit, TopicHits, PHRASE_BIT};
use crate::domain::embedding::{dot, Family};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Tuning of the fusion. `Default` is calibrated for MiniLM-style models
/// (sentence-transformers); [`HybridParams::for_family`] gives the other
/// families' cosine scales.
#[derive(Debug, Clone, PartialEq)]
pub struct HybridParams {
    /// Weight of the dense score in the fusion, in `[0, 1]`.
    pub dense_weight: f32,
    /// Cosine below which a paper is unrelated to a topic.
    pub floor: f32,
    /// Cosine at which the dense score saturates at 1.
    pub high: f32,
    /// A meaning-only match must exceed the day's mean cosine by this
    /// many standard deviations.
    pub stand_out: f32,
    /// A partial word match (some of the topic's words) must reach this
    /// cosine and exceed the day's mean cosine by `partial_stand_out`
    /// standard deviations: the model must agree that the shared words
    /// mean the topic. Lower than `floor`: the words are evidence too.
    pub partial_floor: f32,
    /// The stand-out margin of a partial word match (see `partial_floor`).
    pub partial_stand_out: f32,
    /// How far an exact match of the topic's words is lifted: ranking
    /// uses `(fused + exact_bonus · exact) / (1 + exact_bonus)`, so 1
    /// ranks every exact match above every other paper and 0 lets the
    /// fused score alone decide the order.
    pub exact_bonus: f32,
    /// Cosine of a topic to an arXiv subject's description at which the
    /// topic means that subject (a broad field: "neuroscience" is
    /// q-bio.NC); below it, a topic maps to no subject.
    pub subject_floor: f32,
    /// Subjects within this cosine of the topic's best subject are mapped
    /// too ("economics": econ and q-fin.EC).
    pub subject_margin: f32,
    /// Ceiling of the relevance of a paper picked only for being listed
    /// in a mapped subject (it never outranks a paper with the topic's
    /// words, whatever this is).
    pub subject_weight: f32,
    /// A topic maps to subjects only when its best subject's cosine
    /// exceeds the day's best paper's by this much: a field is broader
    /// than any one paper, a narrow topic is fitted better by its papers.
    pub subject_over_papers: f32,
    /// Pseudo-relevance feedback: how far the topic vector moves toward
    /// the mean of its confident papers of the day (0: not at all).
    pub feedback_weight: f32,
    /// At most this many confident papers move it.
    pub feedback_papers: usize,
    /// The send model ([`Calibration`]): when set, it decides which
    /// papers without an exact match are sent, instead of the floors
    /// above (which then only order the papers).
    pub calibration: Option<Calibration>,
}

impl Default for HybridParams {
    fn default() -> Self {
        HybridParams {
            // The subject settings were chosen on set B
            // (`cargo bench --bench relevance -- --fit`, README): of the
            // best, one from the middle of the flat region.
            // The others were measured with MiniLM on the judged set
            // (`cargo bench --bench relevance -- --sweep`, README): of the
            // settings that lose no precision against the lexical ranker,
            // one from the middle of a flat region rather than the best
            // corner. The fusion weight and the exact-match lift barely
            // move the metrics (±0.005 nDCG over 0.3–0.7); the floors and
            // the stand-out margin trade recall for precision.
            dense_weight: 0.5,
            floor: 0.30,
            high: 0.70,
            stand_out: 2.5,
            partial_floor: 0.25,
            partial_stand_out: 0.5,
            exact_bonus: 0.25,
            subject_floor: 0.45,
            subject_margin: 0.05,
            subject_weight: 0.2,
            subject_over_papers: 0.1,
            feedback_weight: 0.0,
            feedback_papers: 3,
            // Fitted and cross-validated (`calibrate.rs`, README), not on
            // by default: on the held-out set it trades a third of the
            // recall for precision.
            calibration: None,
        }
    }
}

impl HybridParams {
    /// Scales of the model families: e5 models put nearly everything
    /// between 0.7 and 0.9, bge between 0.4 and 0.9, MiniLM between 0 and
    /// 0.8. Only the MiniLM scale was measured here (README); the others
    /// follow the models' published similarity ranges.
    pub fn for_family(family: Family) -> HybridParams {
        let d = HybridParams::default();
        match family {
            Family::E5 => HybridParams {
                subject_floor: 0.85,
                floor: 0.80,
                partial_floor: 0.78,
                high: 0.90,
                ..d
            },
            Family::Bge => HybridParams {
                subject_floor: 0.65,
                floor: 0.55,
                partial_floor: 0.50,
                high: 0.80,
                ..d
            },
            Family::Auto | Family::Plain => d,
        }
    }

    /// The family's parameters with the operator's fusion weight and, when
    /// above 0, their own similarity floor (`rank.semantic.dense_weight`,
    /// `rank.semantic.min_similarity`).
    pub fn tuned(family: Family, dense_weight: f32, min_similarity: f32) -> HybridParams {
        let mut p = HybridParams::for_family(family);
        p.dense_weight = dense_weight;
        let f = min_similarity;
        if f > 0.0 {
            // The partial-match floor keeps its distance below the floor.
            p.partial_floor = (p.partial_floor + f - p.floor).max(0.0);
            p.floor = f;
            p.high = p.high.max(f + 0.1);
        }
        p
    }
}

/// Unit vectors of the indexed documents, one row per document.
#[derive(Debug)]
pub(super) struct PaperVectors {
    pub(super) dims: usize,
    /// `docs × dims`; rows of documents without a vector are zero.
    pub(super) data: Vec<f32>,
    pub(super) has: Vec<bool>,
    pub(super) count: usize,
}

/// The dense state of a [`CandidateIndex`](super::CandidateIndex).
#[derive(Debug, Default)]
pub(crate) struct Dense {
    pub(super) papers: Option<PaperVectors>,
    pub(super) params: HybridParams,
    /// Topic vectors by cache key.
    pub(super) topics: RwLock<HashMap<String, Arc<[f32]>>>,
    /// The taxonomy's vectors, once the embedding side gave them.
    pub(super) subjects: RwLock<Option<Arc<Subjects>>>,
}

/// What the fusion knows about a topic on one day: each document's
/// cosine to it, their spread, and the subjects it maps to.
struct Day {
    sims: Vec<f32>,
    mean: f32,
    sd: f32,
    /// The day's highest cosine to the topic.
    top: f32,
    members: Vec<Membership>,
    subject_fit: f32,
}

/// One document's case for a topic.
struct Case {
    hit: Option<Hit>,
    exact: bool,
    evidence: Evidence,
}

impl Dense {
    /// The lexical hits of a topic (cache key `key`) over `docs` fused
    /// with the dense side (see the module docs); the lexical hits
    /// unchanged without vectors.
    pub(crate) fn fuse(&self, key: &str, lexical: TopicHits, docs: &[Doc]) -> TopicHits {
        let Some((pv, day)) = self.day(key, docs) else {
            return lexical;
        };
        let p = &self.params;
        let meaning_floor = p.floor.max(day.mean + p.stand_out * day.sd);
        let partial_floor = p.partial_floor.max(day.mean + p.partial_stand_out * day.sd);
        let span = (p.high - p.floor).max(1e-3);
        let w = p.dense_weight.clamp(0.0, 1.0);
        let bonus = p.exact_bonus.max(0.0);
        let mut out = Vec::with_capacity(lexical.hits.len());
        let mut by_subject: Vec<(u32, Membership, f32)> = Vec::new();
        for (d, case) in cases(&lexical, &day, docs.len()).enumerate() {
            let d = d as u32;
            let (hit, exact) = (case.hit, case.exact);
            let (rel, keep) = if !pv.has[d as usize] {
                (hit.map_or(0.0, |h| h.rel), hit.is_some())
            } else {
                let cos = day.sims[d as usize];
                let dense = ((cos - p.floor) / span).clamp(0.0, 1.0);
                let lex_rel = hit.map_or(0.0, |h| h.rel);
                let keep = match (&p.calibration, hit) {
                    _ if exact => true,
                    (Some(model), _) => model.sends(&case.evidence),
                    // Every word, not as a phrase: strong evidence; the
                    // model need only not call it below the day's average.
                    (None, Some(_)) if case.evidence.coverage >= 1.0 => cos >= day.mean,
                    (None, Some(_)) => cos >= partial_floor,
                    (None, None) => cos >= meaning_floor,
                };
                let member = day.members.get(d as usize).copied();
                match member {
                    // Listed in a mapped subject and not about the topic by
                    // its words or clearly by meaning: ranked as a subject
                    // match (below).
                    Some(m) if hit.is_none() && cos < meaning_floor && m != Membership::None => {
                        let model_keeps = p.calibration.is_some() && keep;
                        if model_keeps || p.calibration.is_none() {
                            by_subject.push((d, m, cos));
                        }
                        continue;
                    }
                    _ => ((1.0 - w) * lex_rel + w * dense, keep),
                }
            };
            if keep {
                let lift = if exact { bonus } else { 0.0 };
                out.push(Hit {
                    doc: d,
                    rel: (rel + lift) / (1.0 + bonus),
                    mask: hit.map_or(0, |h| h.mask),
                    variant: hit.map_or(0, |h| h.variant),
                });
            }
        }
        self.add_subject_papers(&mut out, by_subject, day.mean);
        TopicHits {
            query: lexical.query,
            hits: out,
        }
    }

    /// Each document's evidence for a topic whose lexical hits are
    /// `lexical` (documents without a vector are left out), for fitting
    /// the send model; `None` without vectors for the topic.
    pub(crate) fn evidence(
        &self,
        key: &str,
        lexical: &TopicHits,
        docs: &[Doc],
    ) -> Option<Vec<(u32, Evidence)>> {
        let (pv, day) = self.day(key, docs)?;
        Some(
            cases(lexical, &day, docs.len())
                .enumerate()
                .filter(|(d, _)| pv.has[*d])
                .map(|(d, c)| (d as u32, c.evidence))
                .collect(),
        )
    }

    /// The day's cosines to the topic and the subjects it maps to; `None`
    /// without paper vectors or a topic vector of their length.
    fn day(&self, key: &str, docs: &[Doc]) -> Option<(&PaperVectors, Day)> {
        let pv = self.papers.as_ref().filter(|p| p.count > 0)?;
        let q = self.topics.read().ok().and_then(|m| m.get(key).cloned())?;
        if q.len() != pv.dims {
            return None;
        }
        let mut sims: Vec<f32> = (0..docs.len())
            .map(|d| dot(&q, &pv.data[d * pv.dims..(d + 1) * pv.dims]))
            .collect();
        let (mut mean, mut sd) = mean_sd(sims.iter().zip(&pv.has).filter(|x| *x.1).map(|x| *x.0));
        if let Some(moved) = self.expanded(&q, &sims, mean, sd) {
            sims = (0..docs.len())
                .map(|d| dot(&moved, &pv.data[d * pv.dims..(d + 1) * pv.dims]))
                .collect();
            (mean, sd) = mean_sd(sims.iter().zip(&pv.has).filter(|x| *x.1).map(|x| *x.0));
        }
        let top = sims
            .iter()
            .zip(&pv.has)
            .filter(|x| *x.1)
            .map(|x| *x.0)
            .fold(f32::NEG_INFINITY, f32::max);
        let (members, subject_fit) = self.members(&q, docs, top);
        Some((
            pv,
            Day {
                sims,
                mean,
                sd,
                top,
                members,
                subject_fit,
            },
        ))
    }

    /// Pseudo-relevance feedback: the topic vector moved toward the
    /// day's papers it is confidently about (those that would qualify by
    /// meaning alone, at most `feedback_papers`, best first), by
    /// `feedback_weight`. `None` when it is off or no paper is confident:
    /// a topic nothing fits is never moved toward its nearest crowd.
    fn expanded(&self, q: &[f32], sims: &[f32], mean: f32, sd: f32) -> Option<Vec<f32>> {
        let p = &self.params;
        let pv = self.papers.as_ref()?;
        if p.feedback_weight <= 0.0 || p.feedback_papers == 0 {
            return None;
        }
        let confident = p.floor.max(mean + p.stand_out * sd);
        let mut best: Vec<(f32, usize)> = sims
            .iter()
            .enumerate()
            .filter(|(d, &c)| pv.has[*d] && c >= confident)
            .map(|(d, &c)| (c, d))
            .collect();
        if best.is_empty() {
            return None;
        }
        best.sort_by(|a, b| b.0.total_cmp(&a.0));
        best.truncate(p.feedback_papers);
        let mut v: Vec<f32> = q.to_vec();
        let share = p.feedback_weight / best.len() as f32;
        for &(_, d) in &best {
            for (x, y) in v.iter_mut().zip(&pv.data[d * pv.dims..(d + 1) * pv.dims]) {
                *x += share * y;
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        (norm > 0.0).then(|| v.into_iter().map(|x| x / norm).collect())
    }

    /// Each document's standing in the subjects the topic vector `q`
    /// means; empty when it means none (or no taxonomy is attached).
    fn members(&self, q: &[f32], docs: &[Doc], top: f32) -> (Vec<Membership>, f32) {
        let Some(subjects) = self.subjects.read().ok().and_then(|s| s.clone()) else {
            return (Vec::new(), 0.0);
        };
        let p = &self.params;
        let (mapped, best) = subjects.mapped(q, p.subject_floor, p.subject_margin);
        // A topic that some paper of the day fits better than any subject
        // is narrower than a field ("dark matter" in cosmology): its
        // subject's other papers are not about it.
        if mapped.is_empty() || best < top + p.subject_over_papers {
            return (Vec::new(), 0.0);
        }
        let members = docs
            .iter()
            .map(|d| membership(&d.categories, &mapped))
            .collect();
        (members, best)
    }

    /// Adds the papers picked only for their subject to `out`: primary
    /// before cross-listed, each by how central it is to the topic (its
    /// cosine above the day's mean), under `subject_weight`, and scaled
    /// below the lowest paper that has any of the topic's words, so a
    /// subject match alone never outranks a paper about the topic's words.
    fn add_subject_papers(
        &self,
        out: &mut Vec<Hit>,
        by_subject: Vec<(u32, Membership, f32)>,
        mean: f32,
    ) {
        if by_subject.is_empty() {
            return;
        }
        let p = &self.params;
        let reach = (p.high - mean).max(1e-3);
        let raw: Vec<f32> = by_subject
            .iter()
            .map(|&(_, m, cos)| {
                let central = ((cos - mean) / reach).clamp(0.0, 1.0);
                p.subject_weight * (m.weight() + central) / 3.0
            })
            .collect();
        let lowest_word = out
            .iter()
            .filter(|h| h.mask != 0)
            .map(|h| h.rel)
            .fold(f32::INFINITY, f32::min);
        let highest = raw.iter().copied().fold(0.0f32, f32::max);
        let scale = if highest >= lowest_word && highest > 0.0 {
            0.99 * lowest_word / highest
        } else {
            1.0
        };
        for (&(doc, _, _), r) in by_subject.iter().zip(raw) {
            out.push(Hit {
                doc,
                rel: r * scale,
                mask: 0,
                variant: 0,
            });
        }
        out.sort_unstable_by_key(|h| h.doc);
    }
}

/// Each document's case for the topic of `lexical`, in document order.
fn cases<'a>(lexical: &'a TopicHits, day: &'a Day, docs: usize) -> impl Iterator<Item = Case> + 'a {
    let n_terms = lexical.query.terms.len();
    let all_terms = if n_terms >= 32 {
        u32::MAX >> 1
    } else {
        (1u32 << n_terms) - 1
    };
    let multi = lexical.query.sequence.len() > 1;
    let mut lex = lexical.hits.iter().peekable();
    (0..docs as u32).map(move |d| {
        let hit = lex.next_if(|h| h.doc == d).copied();
        let covered = hit.map_or(0, |h| (h.mask & all_terms).count_ones());
        let exact = hit.is_some_and(|h| {
            h.mask & all_terms == all_terms && (!multi || h.mask & PHRASE_BIT != 0)
        });
        let cos = day.sims[d as usize];
        let subject = day
            .members
            .get(d as usize)
            .map_or(0.0, |m| m.weight() / 2.0);
        Case {
            hit,
            exact,
            evidence: Evidence {
                lexical: hit.map_or(0.0, |h| h.rel),
                coverage: covered as f32 / n_terms.max(1) as f32,
                exact,
                cosine: cos,
                z: if day.sd > 0.0 {
                    (cos - day.mean) / day.sd
                } else {
                    0.0
                },
                subject,
                subject_fit: if subject > 0.0 { day.subject_fit } else { 0.0 },
                top: day.top,
            },
        }
    })
}

/// Mean and standard deviation (0 and 0 for no values).
fn mean_sd(values: impl Iterator<Item = f32> + Clone) -> (f32, f32) {
    let (n, sum) = values
        .clone()
        .fold((0usize, 0f64), |(n, s), v| (n + 1, s + v as f64));
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = sum / n as f64;
    let var = values.map(|v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
    (mean as f32, var.sqrt() as f32)
}

#[cfg(test)]
#[path = "dense_tests.rs"]
mod tests;
