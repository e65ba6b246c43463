//! Which text of a paper the dense side should embed: pure-dense quality
//! of several paper representations on the judged set (`--dense-study`).
//!
//! Per representation: mean nDCG@10 of ranking by cosine alone (topics
//! with relevant papers), and two separability measures of a threshold:
//! the pooled AUC of raw cosines over every (topic, paper) pair (can one
//! global cosine floor separate relevant from not?) and the pooled AUC of
//! per-topic z-scores (can a floor relative to the day's distribution?).

use paperboy::domain::{Candidate, Paper};
use paperboy::embed::{Encoder, Side};
use paperboy::rank::eval::{ndcg_at, RelevanceSet};
use std::path::Path;

type Repr = (&'static str, fn(&Paper) -> String);
/// A named cosine of (paper index, topic vector).
type Combo<'a> = (String, Box<dyn Fn(usize, &[f32]) -> f32 + 'a>);

fn title(p: &Paper) -> String {
    p.title.trim().to_string()
}

fn full(p: &Paper) -> String {
    paperboy::embed::paper_text(p)
}

fn lead(p: &Paper) -> String {
    // Title, the AI summary and keywords (short, dense), then the abstract.
    let mut s = p.title.trim().to_string();
    s.push_str(". ");
    if let Some(sum) = p.ai_summary.as_deref() {
        s.push_str(sum.trim());
        s.push(' ');
    }
    if !p.ai_keywords.is_empty() {
        s.push_str(&p.ai_keywords.join(", "));
        s.push_str(". ");
    }
    s.push_str(p.abstract_text.trim());
    let subjects = paperboy::domain::subject_names(&p.categories);
    if !subjects.is_empty() {
        s.push_str(" Subjects: ");
        s.push_str(&subjects.join("; "));
    }
    s
}

fn subjects_first(p: &Paper) -> String {
    let subjects = paperboy::domain::subject_names(&p.categories);
    let mut s = p.title.trim().to_string();
    if !subjects.is_empty() {
        s.push_str(" (");
        s.push_str(&subjects.join("; "));
        s.push(')');
    }
    s.push_str(". ");
    s.push_str(&lead(p)[p.title.trim().len() + 2..]);
    s
}

pub fn run(
    root: &Path,
    encoder: &Encoder,
    candidates: &[Candidate],
    set: &RelevanceSet,
    topic_vectors: &std::collections::HashMap<String, Vec<f32>>,
) {
    let reprs: [Repr; 4] = [
        ("full", full),
        ("title", title),
        ("lead", lead),
        ("subjects", subjects_first),
    ];
    let mut vecs: Vec<Vec<Vec<f32>>> = Vec::new();
    for (name, f) in reprs {
        let texts: Vec<String> = candidates.iter().map(|c| f(&c.paper)).collect();
        vecs.push(super::hybrid::cached(root, encoder, &texts, Side::Passage));
        eprintln!("embedded {name}");
    }
    let combos: Vec<Combo> = vec![
        ("full".into(), Box::new(|d, q| dot(q, &vecs[0][d]))),
        ("title".into(), Box::new(|d, q| dot(q, &vecs[1][d]))),
        ("lead".into(), Box::new(|d, q| dot(q, &vecs[2][d]))),
        ("subjects".into(), Box::new(|d, q| dot(q, &vecs[3][d]))),
        (
            "max(title,full)".into(),
            Box::new(|d, q| dot(q, &vecs[1][d]).max(dot(q, &vecs[0][d]))),
        ),
        (
            "mean(title,full)".into(),
            Box::new(|d, q| 0.5 * (dot(q, &vecs[1][d]) + dot(q, &vecs[0][d]))),
        ),
        (
            "mean(title,subjects)".into(),
            Box::new(|d, q| 0.5 * (dot(q, &vecs[1][d]) + dot(q, &vecs[3][d]))),
        ),
        (
            "max(title,subjects)".into(),
            Box::new(|d, q| dot(q, &vecs[1][d]).max(dot(q, &vecs[3][d]))),
        ),
    ];
    println!(
        "{:<22} {:>8} {:>9} {:>9}",
        "representation", "nDCG@10", "AUC cos", "AUC z"
    );
    for (name, score) in &combos {
        let mut ndcg = 0.0;
        let mut n = 0;
        let mut pos: Vec<(f32, f32)> = Vec::new();
        let mut neg: Vec<(f32, f32)> = Vec::new();
        for t in &set.topic {
            let q = &topic_vectors[&t.query];
            let sims: Vec<f32> = (0..candidates.len()).map(|d| score(d, q)).collect();
            let m = sims.iter().sum::<f32>() / sims.len() as f32;
            let sd = (sims.iter().map(|s| (s - m).powi(2)).sum::<f32>() / sims.len() as f32).sqrt();
            for (d, s) in sims.iter().enumerate() {
                let rel = t
                    .relevant
                    .get(candidates[d].paper.id.as_str())
                    .is_some_and(|&g| g >= 2);
                let z = (s - m) / sd.max(1e-6);
                if rel {
                    pos.push((*s, z));
                } else {
                    neg.push((*s, z));
                }
            }
            if t.expects_nothing() {
                continue;
            }
            let mut order: Vec<usize> = (0..candidates.len()).collect();
            order.sort_by(|&a, &b| sims[b].total_cmp(&sims[a]));
            let ids: Vec<&str> = order
                .iter()
                .take(10)
                .map(|&d| candidates[d].paper.id.as_str())
                .collect();
            ndcg += ndcg_at(&ids, &t.relevant, 10);
            n += 1;
        }
        println!(
            "{:<22} {:>8.3} {:>9.3} {:>9.3}",
            name,
            ndcg / n as f64,
            auc(&pos, &neg, |x| x.0),
            auc(&pos, &neg, |x| x.1)
        );
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    paperboy::embed::dot(a, b)
}

fn auc(pos: &[(f32, f32)], neg: &[(f32, f32)], key: impl Fn(&(f32, f32)) -> f32) -> f64 {
    let mut negs: Vec<f32> = neg.iter().map(&key).collect();
    negs.sort_by(f32::total_cmp);
    let mut wins = 0f64;
    for p in pos {
        let v = key(p);
        let below = negs.partition_point(|&x| x < v);
        wins += below as f64;
    }
    wins / (pos.len() as f64 * negs.len() as f64)
}
