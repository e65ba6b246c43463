//! `cargo bench --bench relevance -- --fit`: fits the send model
//! (`paperboy::rank::calibrate`) on each judged set's (topic, paper)
//! pairs, cross-validates it on the other set, and ranks both sets with
//! each fit (end to end, through the product's picker).
//!
//! The threshold of each fit is the one with the best F1 of "sent" on its
//! training set. `Calibration::default()` holds the set-B fit.

use super::hybrid::{self, Embedded};
use super::{by_kind, load, JudgedSet, Row, K};
use paperboy::digest::RankPicker;
use paperboy::domain::Candidate;
use paperboy::rank::calibrate::{self, Calibration, Evidence, FEATURE_NAMES};
use paperboy::rank::eval::{self, RelevanceSet};
use paperboy::rank::{HybridParams, Profile, Synonyms};
use std::path::Path;

struct Loaded<'a> {
    set: &'a JudgedSet,
    candidates: Vec<Candidate>,
    judged: RelevanceSet,
    emb: Embedded,
}

pub fn run(root: &Path, sets: &[JudgedSet]) {
    let config = hybrid::default_config();
    let synonyms = Synonyms::from_concepts(config.rank.synonyms.clone());
    let mut loaded = Vec::new();
    for set in sets {
        let Some((candidates, judged)) = load(set) else {
            return;
        };
        let Some(emb) = hybrid::embed(root, &candidates, &judged, &synonyms, set.now) else {
            return;
        };
        loaded.push(Loaded {
            set,
            candidates,
            judged,
            emb,
        });
    }
    let examples: Vec<Vec<(Evidence, bool)>> = loaded.iter().map(|l| pairs(l, &config)).collect();
    let mut fits: Vec<(&str, Calibration)> = Vec::new();
    println!("\nsend model: fit on one set, tested on the other (pairs: every topic × paper)");
    println!(
        "{:<8} {:<8} {:>9} {:>10} {:>7} {:>6} {:>6}",
        "fit on", "test on", "threshold", "precision", "recall", "sent", "rel"
    );
    for (train, test) in [(1usize, 0usize), (0, 1)] {
        let weights = calibrate::fit(&examples[train], 1e-3, 1500);
        let threshold = best_threshold(&examples[train], weights);
        let model = Calibration { weights, threshold };
        for (name, on) in [("train", train), ("held out", test)] {
            let (p, r, sent, rel) = sent_quality(&examples[on], &model);
            println!(
                "{:<8} {:<8} {threshold:>9.2} {p:>10.3} {r:>7.3} {sent:>6} {rel:>6}   ({name})",
                loaded[train].set.name, loaded[on].set.name
            );
        }
        let names: Vec<String> = FEATURE_NAMES
            .iter()
            .zip(&weights)
            .map(|(n, w)| format!("{n} {w:.3}"))
            .collect();
        println!(
            "  weights on {}: {}, intercept {:.3}",
            loaded[train].set.name,
            names.join(", "),
            weights[calibrate::FEATURES]
        );
        println!(
            "  const FITTED: [f32; FEATURES + 1] = {:?}; THRESHOLD = {threshold:.2}",
            weights
        );
        fits.push((if train == 1 { "hyb-fit-B" } else { "hyb-fit-A" }, model));
    }
    for l in &loaded {
        type Tune = Box<dyn Fn(&mut HybridParams)>;
        let mut variants: Vec<(&str, bool, Tune)> = vec![
            ("hyb-no-subj", false, Box::new(|_| {})),
            (
                "subj-nogate",
                true,
                Box::new(|p| p.subject_over_papers = -1.0),
            ),
            (
                "subj-gate0",
                true,
                Box::new(|p| p.subject_over_papers = 0.0),
            ),
            (
                "subj-gate.05",
                true,
                Box::new(|p| p.subject_over_papers = 0.05),
            ),
            (
                "subj-gate.1",
                true,
                Box::new(|p| p.subject_over_papers = 0.1),
            ),
            (
                "subj-gate.15",
                true,
                Box::new(|p| p.subject_over_papers = 0.15),
            ),
            ("subj-.5-gate0", true, Box::new(|p| p.subject_floor = 0.5)),
            (
                "subj-.5-gate.1",
                true,
                Box::new(|p| {
                    p.subject_floor = 0.5;
                    p.subject_over_papers = 0.1;
                }),
            ),
        ];
        for (name, w, n) in [
            ("prf-.3-3", 0.3, 3),
            ("prf-.5-3", 0.5, 3),
            ("prf-1-3", 1.0, 3),
            ("prf-.5-1", 0.5, 1),
            ("prf-.5-5", 0.5, 5),
        ] {
            variants.push((
                name,
                true,
                Box::new(move |p: &mut HybridParams| {
                    p.feedback_weight = w;
                    p.feedback_papers = n;
                }),
            ));
        }
        for (name, model) in &fits {
            let model = *model;
            variants.push((name, true, Box::new(move |p| p.calibration = Some(model))));
        }
        let b = fits[0].1;
        for (name, t) in [("fit-B-t.1", 0.1), ("fit-B-t.05", 0.05)] {
            let model = Calibration { threshold: t, ..b };
            variants.push((name, true, Box::new(move |p| p.calibration = Some(model))));
        }
        let pickers: Vec<(&str, RankPicker)> = variants
            .iter()
            .map(|(name, subjects, tune)| {
                let p = hybrid::picker_with(&l.emb, &l.candidates, &config, l.set.now, tune);
                if *subjects {
                    p.index().add_subject_vectors(l.emb.subjects.clone());
                }
                (*name, p)
            })
            .collect();
        let picks = |p: &RankPicker, q: &str| -> Vec<String> {
            p.ranked(&Profile::topics([q]), K)
                .into_iter()
                .map(|p| p.id.as_str().to_string())
                .collect()
        };
        let rows: Vec<Row> = pickers
            .iter()
            .map(|(name, p)| Row::new(name, move |q| picks(p, q)))
            .collect();
        let runs: Vec<_> = rows
            .iter()
            .map(|r| eval::evaluate(&l.judged, K, &r.rank))
            .collect();
        by_kind(l.set.name, &rows, &runs);
    }
}

/// Every (topic, paper) pair of a set with its evidence and whether the
/// judgements call the paper relevant (grade ≥ 1).
fn pairs(l: &Loaded, config: &paperboy::config::Config) -> Vec<(Evidence, bool)> {
    let picker = hybrid::product_picker(&l.emb, &l.candidates, config, l.set.now);
    l.judged
        .topic
        .iter()
        .flat_map(|t| {
            picker
                .index()
                .evidence(&t.query)
                .into_iter()
                .map(|(id, e)| (e, t.relevant.get(id.as_str()).is_some_and(|&g| g > 0)))
        })
        .collect()
}

/// Precision and recall of "sent" (an exact match, or the model's
/// probability at the threshold), and the counts.
fn sent_quality(examples: &[(Evidence, bool)], model: &Calibration) -> (f64, f64, usize, usize) {
    let sent: Vec<bool> = examples
        .iter()
        .map(|(e, _)| e.exact || model.sends(e))
        .collect();
    let tp = examples
        .iter()
        .zip(&sent)
        .filter(|((_, y), s)| *y && **s)
        .count();
    let n_sent = sent.iter().filter(|s| **s).count();
    let n_rel = examples.iter().filter(|(_, y)| *y).count();
    (
        tp as f64 / n_sent.max(1) as f64,
        tp as f64 / n_rel.max(1) as f64,
        n_sent,
        n_rel,
    )
}

/// The threshold in 0.05 … 0.95 with the best F1 of "sent".
fn best_threshold(examples: &[(Evidence, bool)], weights: [f32; calibrate::FEATURES + 1]) -> f32 {
    (1..20)
        .map(|i| i as f32 * 0.05)
        .map(|threshold| {
            let (p, r, _, _) = sent_quality(examples, &Calibration { weights, threshold });
            let f1 = if p + r > 0.0 {
                2.0 * p * r / (p + r)
            } else {
                0.0
            };
            (f1, threshold)
        })
        .fold((-1.0, 0.5), |best, x| if x.0 > best.0 { x } else { best })
        .1
}
