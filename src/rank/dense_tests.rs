//! Tests of the dense side's fusion, on hand-made vectors.

use super::*;
use crate::domain::{Candidate, Paper, PaperId};
use crate::rank::{CandidateIndex, Profile, Synonyms};
use chrono::{DateTime, TimeZone, Utc};
use std::collections::HashSet;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 13, 8, 0, 0).unwrap()
}

fn paper(i: usize, title: &str) -> Candidate {
    let id = PaperId::parse_arxiv(&format!("2606.{:05}", 10000 + i))
        .unwrap()
        .0;
    let mut p = Paper::new(id, title, "An abstract.");
    p.listed_on = Some(now().date_naive());
    Candidate {
        paper: p,
        history: Vec::new(),
    }
}

/// A unit vector at cosine `c` to the axis `e0`, in 4 dimensions, with
/// its other component along `e1 + k` so the vectors differ.
fn at_cos(c: f32, k: usize) -> Vec<f32> {
    let s = (1.0 - c * c).max(0.0).sqrt();
    let mut v = vec![c, 0.0, 0.0, 0.0];
    v[1 + k % 3] = s;
    v
}

/// Candidates with the given titles and cosines to the topic vector e0.
fn index(papers: &[(&str, f32)]) -> (Vec<Candidate>, CandidateIndex) {
    let cands: Vec<Candidate> = papers
        .iter()
        .enumerate()
        .map(|(i, (t, _))| paper(i, t))
        .collect();
    let mut idx = CandidateIndex::build(&cands, &Synonyms::embedded(), now());
    let vecs: HashMap<PaperId, Vec<f32>> = cands
        .iter()
        .zip(papers)
        .enumerate()
        .map(|(i, (c, (_, cos)))| (c.paper.id.clone(), at_cos(*cos, i)))
        .collect();
    idx.attach_vectors(4, HybridParams::default(), |id| {
        vecs.get(id).map(Vec::as_slice)
    });
    (cands, idx)
}

fn titles(idx: &CandidateIndex, cands: &[Candidate], topic: &str) -> Vec<String> {
    idx.add_topic_vector(topic, vec![1.0, 0.0, 0.0, 0.0].into());
    idx.rank(&Profile::topics([topic]), &HashSet::new(), 10)
        .iter()
        .map(|p| cands[p.index].paper.title.clone())
        .collect()
}

/// Twenty unrelated fillers at low cosines around 0.05.
fn crowd() -> Vec<(String, f32)> {
    (0..20)
        .map(|i| (format!("Galaxy survey number {i}"), 0.02 + 0.004 * i as f32))
        .collect()
}

#[test]
fn a_paper_related_by_meaning_alone_is_picked_and_says_so() {
    let mut day: Vec<(String, f32)> = crowd();
    day.push(("Hidden-state steering of language models".into(), 0.62));
    let day: Vec<(&str, f32)> = day.iter().map(|(t, c)| (t.as_str(), *c)).collect();
    let (cands, idx) = index(&day);
    idx.add_topic_vector(
        "representation engineering",
        vec![1.0, 0.0, 0.0, 0.0].into(),
    );
    let picks = idx.rank(
        &Profile::topics(["representation engineering"]),
        &HashSet::new(),
        10,
    );
    assert_eq!(picks.len(), 1, "{picks:?}");
    assert_eq!(
        cands[picks[0].index].paper.title,
        "Hidden-state steering of language models"
    );
    assert!(picks[0].reason.topics[0].by_meaning);
    assert_eq!(
        picks[0].reason.summary(),
        "Related to \"representation engineering\" by meaning"
    );
}

#[test]
fn an_off_topic_day_sends_nothing() {
    // The best of an unrelated crowd neither reaches the floor nor
    // stands out.
    let day = crowd();
    let day: Vec<(&str, f32)> = day.iter().map(|(t, c)| (t.as_str(), *c)).collect();
    let (cands, idx) = index(&day);
    assert!(titles(&idx, &cands, "speculative decoding").is_empty());
}

#[test]
fn a_close_paper_that_does_not_stand_out_from_a_close_crowd_is_not_picked() {
    // Everything sits around 0.35 (a model whose cosines are high for
    // all text): none stands out, so none is picked by meaning.
    let day: Vec<(String, f32)> = (0..20)
        .map(|i| (format!("Galaxy survey number {i}"), 0.34 + 0.001 * i as f32))
        .collect();
    let day: Vec<(&str, f32)> = day.iter().map(|(t, c)| (t.as_str(), *c)).collect();
    let (cands, idx) = index(&day);
    assert!(titles(&idx, &cands, "speculative decoding").is_empty());
}

#[test]
fn an_exact_match_the_model_finds_unrelated_is_never_dropped() {
    let mut day = crowd();
    // Exact match, but the model finds it unrelated.
    day.push(("Speculative decoding for galaxies".into(), 0.01));
    day.push(("Draft models accelerate LLM inference".into(), 0.69));
    let day: Vec<(&str, f32)> = day.iter().map(|(t, c)| (t.as_str(), *c)).collect();
    let (cands, idx) = index(&day);
    assert_eq!(
        titles(&idx, &cands, "speculative decoding"),
        [
            "Speculative decoding for galaxies",
            "Draft models accelerate LLM inference"
        ]
    );
}

#[test]
fn a_partial_word_match_the_model_finds_unrelated_is_dropped() {
    let mut day = crowd();
    day.push(("Software engineering of compilers".into(), 0.05));
    day.push(("Representation editing steers models".into(), 0.60));
    let day: Vec<(&str, f32)> = day.iter().map(|(t, c)| (t.as_str(), *c)).collect();
    let (cands, idx) = index(&day);
    // Lexically, "engineering" alone would match (coverage over half).
    let lexical = CandidateIndex::build(&cands, &Synonyms::embedded(), now());
    let lex: Vec<String> = lexical
        .rank(
            &Profile::topics(["representation engineering"]),
            &HashSet::new(),
            10,
        )
        .iter()
        .map(|p| cands[p.index].paper.title.clone())
        .collect();
    let hybrid = titles(&idx, &cands, "representation engineering");
    assert!(
        !hybrid.contains(&"Software engineering of compilers".to_string()),
        "lexical {lex:?}, hybrid {hybrid:?}"
    );
    assert!(hybrid.contains(&"Representation editing steers models".to_string()));
}

#[test]
fn every_topic_word_scattered_is_kept_unless_the_model_puts_it_below_average() {
    let mut day = crowd();
    // Both words, not as a phrase; the model finds it only weakly
    // related (below the floor, above the day's mean).
    day.push(("Diffusion priors make image models faster".into(), 0.15));
    // Both words, but the model puts it below the day's average.
    day.push(("Models of heat diffusion in rods".into(), 0.0));
    let day: Vec<(&str, f32)> = day.iter().map(|(t, c)| (t.as_str(), *c)).collect();
    let (cands, idx) = index(&day);
    assert_eq!(
        titles(&idx, &cands, "diffusion models"),
        ["Diffusion priors make image models faster"]
    );
}

#[test]
fn without_a_topic_vector_ranking_is_exactly_lexical() {
    let mut day = crowd();
    day.push(("Speculative decoding in practice".into(), 0.2));
    day.push(("Draft models accelerate LLM inference".into(), 0.69));
    let day: Vec<(&str, f32)> = day.iter().map(|(t, c)| (t.as_str(), *c)).collect();
    let (cands, idx) = index(&day);
    let lexical = CandidateIndex::build(&cands, &Synonyms::embedded(), now());
    let profile = Profile::topics(["speculative decoding"]);
    assert_eq!(
        idx.rank(&profile, &HashSet::new(), 10),
        lexical.rank(&profile, &HashSet::new(), 10)
    );
}

#[test]
fn the_dense_text_spells_out_abbreviations() {
    let (_, idx) = index(&[("A paper", 0.1)]);
    assert_eq!(
        idx.dense_text("RAG"),
        "RAG (retrieval-augmented generation)"
    );
    assert_eq!(idx.dense_text("loss spikes"), "loss spikes");
}

/// A day of `index` whose papers carry arXiv categories, with a
/// two-entry taxonomy: `q-bio.NC` along e0 (the topic's axis) and
/// `astro-ph` orthogonal to it.
fn with_fields(papers: &[(&str, f32, &[&str])]) -> (Vec<Candidate>, CandidateIndex) {
    let mut cands: Vec<Candidate> = papers
        .iter()
        .enumerate()
        .map(|(i, (t, _, _))| paper(i, t))
        .collect();
    for (c, (_, _, cats)) in cands.iter_mut().zip(papers) {
        c.paper.categories = cats.iter().map(|c| c.to_string()).collect();
    }
    let mut idx = CandidateIndex::build(&cands, &Synonyms::embedded(), now());
    let vecs: HashMap<PaperId, Vec<f32>> = cands
        .iter()
        .zip(papers)
        .enumerate()
        .map(|(i, (c, (_, cos, _)))| (c.paper.id.clone(), at_cos(*cos, i)))
        .collect();
    idx.attach_vectors(4, HybridParams::default(), |id| {
        vecs.get(id).map(Vec::as_slice)
    });
    idx.add_subject_vectors(vec![
        ("q-bio.NC".into(), vec![1.0, 0.0, 0.0, 0.0].into()),
        ("astro-ph".into(), vec![0.0, 0.0, 0.0, 1.0].into()),
    ]);
    (cands, idx)
}

#[test]
fn a_field_topic_covers_its_subjects_papers_below_the_papers_with_its_words() {
    let mut day: Vec<(String, f32, &[&str])> = crowd()
        .into_iter()
        .map(|(t, c)| (t, c, &["astro-ph.GA"][..]))
        .collect();
    day.push(("Synaptic plasticity in cortex".into(), 0.2, &["q-bio.NC"]));
    day.push((
        "Spiking models, cross-listed".into(),
        0.25,
        &["cs.NE", "q-bio.NC"],
    ));
    day.push(("A neuroscience survey".into(), 0.1, &["cs.LG"]));
    let day: Vec<(&str, f32, &[&str])> = day.iter().map(|(t, c, k)| (t.as_str(), *c, *k)).collect();
    let (cands, idx) = with_fields(&day);
    assert_eq!(
        titles(&idx, &cands, "neuroscience"),
        [
            "A neuroscience survey",
            "Synaptic plasticity in cortex",
            "Spiking models, cross-listed"
        ],
        "words first, then primary before cross-listed"
    );
}

#[test]
fn a_paper_without_subjects_is_ranked_by_its_text_alone() {
    let mut day: Vec<(String, f32, &[&str])> = crowd()
        .into_iter()
        .map(|(t, c)| (t, c, &["astro-ph.GA"][..]))
        .collect();
    day.push(("Synaptic plasticity in cortex".into(), 0.2, &[]));
    day.push(("Dendrites compute".into(), 0.2, &["q-bio.NC"]));
    let day: Vec<(&str, f32, &[&str])> = day.iter().map(|(t, c, k)| (t.as_str(), *c, *k)).collect();
    let (cands, idx) = with_fields(&day);
    assert_eq!(titles(&idx, &cands, "neuroscience"), ["Dendrites compute"]);
}

#[test]
fn a_topic_a_paper_fits_better_than_any_subject_takes_no_subject_papers() {
    let mut day: Vec<(String, f32, &[&str])> = crowd()
        .into_iter()
        .map(|(t, c)| (t, c, &["astro-ph.GA"][..]))
        .collect();
    // Fits the topic (0.9) better than the subject does (1.0 − 0.1
    // margin): the topic is narrower than q-bio.NC.
    day.push(("Grid cells map space".into(), 0.95, &["q-bio.NC"]));
    day.push(("Dendrites compute".into(), 0.2, &["q-bio.NC"]));
    let day: Vec<(&str, f32, &[&str])> = day.iter().map(|(t, c, k)| (t.as_str(), *c, *k)).collect();
    let (cands, idx) = with_fields(&day);
    assert_eq!(titles(&idx, &cands, "grid cells"), ["Grid cells map space"]);
}

#[test]
fn feedback_moves_a_topic_toward_its_confident_paper_and_never_on_an_off_topic_day() {
    let on = HybridParams {
        feedback_weight: 1.0,
        feedback_papers: 1,
        ..HybridParams::default()
    };
    let with = |day: &[(&str, f32)]| {
        let (cands, mut idx) = index(day);
        let vecs: HashMap<PaperId, Vec<f32>> = cands
            .iter()
            .zip(day)
            .enumerate()
            .map(|(i, (c, (_, cos)))| (c.paper.id.clone(), at_cos(*cos, i)))
            .collect();
        idx.attach_vectors(4, on.clone(), |id| vecs.get(id).map(Vec::as_slice));
        (cands, idx)
    };
    // Nothing confident: the topic is not moved toward the crowd.
    let crowd = crowd();
    let day: Vec<(&str, f32)> = crowd.iter().map(|(t, c)| (t.as_str(), *c)).collect();
    let (cands, idx) = with(&day);
    assert!(titles(&idx, &cands, "speculative decoding").is_empty());
    // One confident paper: its own direction (e1 + k) now counts, so
    // the paper sharing it rises above the crowd.
    let (_, idx) = with(&[("Draft models", 0.7), ("Galaxy", 0.05)]);
    idx.add_topic_vector("speculative decoding", vec![1.0, 0.0, 0.0, 0.0].into());
    let dense = &idx.semantic;
    let sims = [0.7, 0.05];
    let moved = dense.expanded(&[1.0, 0.0, 0.0, 0.0], &sims, 0.375, 0.325);
    assert!(moved.is_none(), "0.7 is not 2.5 sd above a mean of 0.375");
    let moved = dense
        .expanded(&[1.0, 0.0, 0.0, 0.0], &sims, 0.1, 0.1)
        .unwrap();
    assert!(moved[1] > 0.0 && moved[0] < 1.0, "{moved:?}");
}

#[test]
fn paper_vectors_are_reachable_by_candidate_index() {
    let (_, idx) = index(&[("A paper", 0.5), ("Another", 0.9)]);
    assert_eq!(idx.vector_dims(), Some(4));
    assert_eq!(idx.vectors_attached(), 2);
    let v = idx.paper_vector(1).unwrap();
    assert!((v[0] - 0.9).abs() < 1e-6);
    assert!(idx.paper_vector(2).is_none());
}
