//! Properties of the ranker, on small hand-made candidates and on the
//! recorded fixtures.

use super::eval::{self, RelevanceSet};
use super::*;
use crate::domain::{Paper, UpvoteObservation};
use chrono::{Duration, TimeZone};
use proptest::prelude::*;
use std::path::Path;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 13, 8, 0, 0).unwrap()
}

fn paper(id: &str, title: &str, abstract_text: &str) -> Candidate {
    let mut p = Paper::new(PaperId::parse_arxiv(id).unwrap().0, title, abstract_text);
    p.listed_on = Some(now().date_naive());
    Candidate {
        paper: p,
        history: Vec::new(),
    }
}

fn with_upvotes(mut c: Candidate, then: i64, now_votes: i64) -> Candidate {
    c.paper.upvotes = Some(now_votes);
    c.history = vec![
        UpvoteObservation {
            at: now() - Duration::hours(24),
            upvotes: then,
        },
        UpvoteObservation {
            at: now(),
            upvotes: now_votes,
        },
    ];
    c
}

fn filler(i: usize) -> Candidate {
    let topics = [
        (
            "Protein folding with graph networks",
            "We predict protein structure from sequence.",
        ),
        (
            "Galaxy rotation curves",
            "Observations of spiral galaxies and their halos.",
        ),
        (
            "A survey of sorting networks",
            "Comparator networks sort inputs in parallel.",
        ),
        (
            "Weather forecasting at scale",
            "Numerical weather prediction meets learned emulators.",
        ),
    ];
    let (t, a) = topics[i % topics.len()];
    paper(&format!("2601.{:05}", 90000 + i), &format!("{t} {i}"), a)
}

fn corpus(extra: Vec<Candidate>) -> Vec<Candidate> {
    let mut v: Vec<Candidate> = (0..12).map(filler).collect();
    v.extend(extra);
    v
}

fn ids(picks: &[Pick]) -> Vec<&str> {
    picks.iter().map(|p| p.id.as_str()).collect()
}

fn rank(cands: &[Candidate], profile: &Profile, k: usize) -> Vec<Pick> {
    CandidateIndex::build(cands, &Synonyms::embedded(), now()).rank(profile, &HashSet::new(), k)
}

#[test]
fn a_phrase_beats_the_same_words_scattered() {
    let cands = corpus(vec![
        paper(
            "2606.00001",
            "Fine-tuning on insecure code",
            "Narrow fine-tuning causes emergent misalignment in chat models.",
        ),
        paper(
            "2606.00002",
            "Fine-tuning on insecure code",
            "Misalignment of rewards is emergent in chat models after narrow fine-tuning.",
        ),
    ]);
    let picks = rank(&cands, &Profile::topics(["emergent misalignment"]), 10);
    assert_eq!(ids(&picks), vec!["2606.00001", "2606.00002"]);
    assert!(picks[0].reason.topics[0].phrase);
    assert!(!picks[1].reason.topics[0].phrase);
}

#[test]
fn abbreviations_and_synonyms_match_both_ways_in_any_case() {
    let cases = [
        ("LLM", "Scaling laws for large language models"),
        ("large language models", "Probing LLMs for facts"),
        ("llm", "What LLMs know"),
        ("VLM", "Robust MLLMs under corruption"),
        ("vision-language models", "Hallucination in LVLMs"),
        ("RAG", "Retrieval-augmented generation for code"),
        ("retrieval augmented generation", "RAG pipelines at scale"),
        ("MoE", "Sparse mixture-of-experts layers"),
        ("mixture of experts", "Routing in MoE transformers"),
        ("T2I", "Text-to-image diffusion alignment"),
        (
            "RLHF",
            "Reinforcement learning from human feedback revisited",
        ),
        ("DPO", "Direct preference optimization without a reference"),
        ("CoT", "Chain-of-thought prompting for arithmetic"),
        ("chain of thought", "Latent CoT traces"),
        (
            "ASR",
            "Automatic speech recognition for low-resource languages",
        ),
    ];
    for (topic, title) in cases {
        let cands = corpus(vec![paper(
            "2606.00001",
            title,
            "An abstract about nothing else.",
        )]);
        let picks = rank(&cands, &Profile::topics([topic]), 10);
        assert_eq!(
            ids(&picks),
            vec!["2606.00001"],
            "topic {topic:?} vs title {title:?}"
        );
    }
}

#[test]
fn a_homonym_does_not_match_the_other_sense() {
    let jailbreak = paper(
        "2606.00001",
        "Compute-aware evaluation of jailbreak robustness",
        "Adversarial evaluations report ASR under fixed budgets; we measure the attack cost.",
    );
    let speech = paper(
        "2606.00002",
        "Streaming ASR for meetings",
        "We cut word error rate of ASR on spoken meeting audio.",
    );
    let cands = corpus(vec![jailbreak, speech]);
    for topic in ["speech recognition", "ASR", "automatic speech recognition"] {
        let picks = rank(&cands, &Profile::topics([topic]), 10);
        assert_eq!(ids(&picks), vec!["2606.00002"], "{topic}");
    }
    let picks = rank(&cands, &Profile::topics(["attack success rate"]), 10);
    assert_eq!(ids(&picks), vec!["2606.00001"]);
    // The topic's own words pick the sense of a bare abbreviation.
    let picks = rank(&cands, &Profile::topics(["ASR jailbreak"]), 10);
    assert_eq!(ids(&picks), vec!["2606.00001"]);
}

#[test]
fn a_synonym_phrase_topic_needs_the_phrase_or_its_abbreviation() {
    let cands = corpus(vec![
        paper(
            "2606.00001",
            "Drafting faster",
            "Speculative decoding with a small drafter.",
        ),
        paper(
            "2606.00002",
            "Drafting faster",
            "SD verifies draft tokens in parallel.",
        ),
        paper(
            "2606.00003",
            "Parsers",
            "A decoding scheme for parsers; the speculative part is cheap.",
        ),
    ]);
    let picks = rank(&cands, &Profile::topics(["speculative decoding"]), 10);
    let mut got = ids(&picks);
    got.sort();
    assert_eq!(got, vec!["2606.00001", "2606.00002"]);
}

#[test]
fn stemming_matches_other_forms_of_a_word() {
    let cands = corpus(vec![paper(
        "2606.00001",
        "Distilling diffusion models",
        "Few steps.",
    )]);
    let picks = rank(&cands, &Profile::topics(["diffusion distillation"]), 10);
    assert_eq!(ids(&picks), vec!["2606.00001"]);
}

#[test]
fn a_broad_topic_finds_the_papers_of_its_arxiv_subject_below_those_naming_it() {
    let mut grasp = paper(
        "2606.20001",
        "Learning dexterous grasps from a single demonstration",
        "A gripper learns to pick up unseen objects from one demonstration.",
    );
    grasp.paper.categories = vec!["cs.RO".into(), "cs.LG".into()];
    let named = paper(
        "2606.20002",
        "Robotics foundation models",
        "A survey of foundation models for robotics.",
    );
    let mut optics = paper(
        "2606.20003",
        "Dispersion in hollow-core fibres",
        "We measure group-velocity dispersion of hollow-core fibres.",
    );
    optics.paper.categories = vec!["physics.optics".into()];
    let cands = corpus(vec![grasp, named, optics]);
    let picks = rank(&cands, &Profile::topics(["robotics"]), 10);
    assert_eq!(ids(&picks), ["2606.20002", "2606.20001"]);
    assert!(
        picks[1].reason.topics[0].words[0].eq_ignore_ascii_case("robotics"),
        "matched by the subject's name: {:?}",
        picks[1].reason
    );
    let picks = rank(&cands, &Profile::topics(["physics"]), 10);
    assert_eq!(ids(&picks), ["2606.20003"]);
}

#[test]
fn a_subject_name_alone_never_carries_one_word_of_a_longer_topic() {
    // "Robotics" as the paper's subject is not evidence that a paper about
    // grasping is on "robot ethics".
    let mut grasp = paper(
        "2606.20001",
        "Learning dexterous grasps from a single demonstration",
        "A gripper learns to pick up unseen objects from one demonstration.",
    );
    grasp.paper.categories = vec!["cs.RO".into()];
    let cands = corpus(vec![grasp]);
    assert!(rank(&cands, &Profile::topics(["robot ethics"]), 10).is_empty());
}

#[test]
fn excluded_words_remove_a_paper_including_their_synonyms() {
    let cands = corpus(vec![
        paper(
            "2606.00001",
            "Agents that plan",
            "Planning agents built on large language models.",
        ),
        paper(
            "2606.00002",
            "Agents that plan",
            "Planning agents for robot navigation.",
        ),
        paper(
            "2606.00003",
            "A survey of agents",
            "We survey planning agents.",
        ),
    ]);
    let mut profile = Profile::topics(["planning agents"]);
    assert_eq!(rank(&cands, &profile, 10).len(), 3);
    profile.excluded = vec!["LLM".into(), "Surveys".into()];
    assert_eq!(ids(&rank(&cands, &profile, 10)), vec!["2606.00002"]);
}

#[test]
fn followed_authors_always_qualify() {
    let mut by_author = paper("2606.00001", "Galaxy rotation curves revisited", "Halos.");
    by_author.paper.authors = vec!["Yann LeCun".into(), "Ada Lovelace".into()];
    let mut namesake = paper("2606.00002", "Sorting networks", "Comparators.");
    namesake.paper.authors = vec!["Xavier LeCun".into()];
    let cands = corpus(vec![by_author, namesake]);
    for followed in ["Yann LeCun", "Y. LeCun", "LeCun, Yann", "yann lecun"] {
        let mut profile = Profile::topics(["speculative decoding"]);
        profile.authors = vec![followed.into()];
        let picks = rank(&cands, &profile, 10);
        assert_eq!(ids(&picks), vec!["2606.00001"], "{followed}");
        assert_eq!(picks[0].reason.authors, vec!["Yann LeCun"]);
    }
}

#[test]
fn the_category_filter_keeps_listed_categories_and_archives() {
    let mut lg = paper(
        "2606.00001",
        "Sparse attention kernels",
        "Sparse attention.",
    );
    lg.paper.categories = vec!["cs.LG".into()];
    let mut th = paper(
        "2606.00002",
        "Sparse attention in lattices",
        "Sparse attention.",
    );
    th.paper.categories = vec!["hep-th".into()];
    let unknown = paper(
        "2606.00003",
        "Sparse attention for all",
        "Sparse attention.",
    );
    let cands = corpus(vec![lg, th, unknown]);
    let mut profile = Profile::topics(["sparse attention"]);
    for filter in ["cs.LG", "cs", "CS.lg"] {
        profile.categories = vec![filter.into()];
        let mut got = ids(&rank(&cands, &profile, 10))
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        got.sort();
        assert_eq!(got, vec!["2606.00001", "2606.00003"], "{filter}");
    }
}

#[test]
fn a_profile_of_categories_alone_follows_them_hottest_first() {
    let mut cold = paper("2606.00001", "Grasping in clutter", "Robot hands.");
    cold.paper.categories = vec!["cs.RO".into()];
    let mut hot = with_upvotes(
        paper("2606.00002", "Legged locomotion", "Quadrupeds."),
        1,
        40,
    );
    hot.paper.categories = vec!["cs.RO".into(), "cs.LG".into()];
    let mut other = with_upvotes(paper("2606.00003", "Dark matter halos", "Halos."), 1, 90);
    other.paper.categories = vec!["astro-ph.CO".into()];
    // Hugging Face lists no categories: it may be in none of them.
    let unknown = with_upvotes(paper("2606.00004", "Robot arms", "Arms."), 1, 90);
    let cands = corpus(vec![cold, hot, other, unknown]);
    let profile = Profile {
        categories: vec!["cs.RO".into()],
        digest_size: 10,
        ..Profile::default()
    };
    assert!(profile.follows_categories());
    let picks = rank(&cands, &profile, 10);
    assert_eq!(ids(&picks), vec!["2606.00002", "2606.00001"]);
    assert_eq!(picks[0].reason.categories, vec!["cs.RO"]);
    assert!(
        picks[0].reason.summary().starts_with("In Robotics (cs.RO)"),
        "{}",
        picks[0].reason.summary()
    );

    // An excluded word still keeps a paper out; an archive follows all
    // of its subjects.
    let profile = Profile {
        categories: vec!["cs".into()],
        excluded: vec!["locomotion".into()],
        digest_size: 10,
        ..Profile::default()
    };
    assert_eq!(ids(&rank(&cands, &profile, 10)), vec!["2606.00001"]);
}

#[test]
fn categories_beside_a_topic_only_narrow_what_it_finds() {
    let mut robot = paper("2606.00001", "Grasping in clutter", "Robot hands.");
    robot.paper.categories = vec!["cs.RO".into()];
    let mut sparse = paper(
        "2606.00002",
        "Sparse attention kernels",
        "Sparse attention.",
    );
    sparse.paper.categories = vec!["cs.RO".into()];
    let cands = corpus(vec![robot, sparse]);
    let mut profile = Profile::topics(["sparse attention"]);
    profile.categories = vec!["cs.RO".into()];
    assert!(!profile.follows_categories());
    let picks = rank(&cands, &profile, 10);
    assert_eq!(ids(&picks), vec!["2606.00002"]);
    assert!(picks[0].reason.categories.is_empty());
}

#[test]
fn trending_puts_the_hot_paper_first_among_comparably_relevant_ones() {
    let cold = with_upvotes(
        paper(
            "2606.00001",
            "Sparse attention for long context",
            "Sparse attention kernels.",
        ),
        3,
        3,
    );
    let hot = with_upvotes(
        paper(
            "2606.00002",
            "Sparse attention for long context",
            "Sparse attention kernels.",
        ),
        10,
        120,
    );
    let cands = corpus(vec![cold, hot]);
    let picks = rank(&cands, &Profile::topics(["sparse attention"]), 10);
    assert_eq!(ids(&picks), vec!["2606.00002", "2606.00001"]);
    assert_eq!(picks[0].reason.upvotes_gained, Some(110));
}

#[test]
fn a_weekly_index_ranks_by_the_weeks_upvotes_and_says_so() {
    let observe = |c: Candidate, votes: &[(i64, i64)]| {
        let mut c = c;
        c.paper.listed_on = Some((now() - Duration::days(6)).date_naive());
        c.paper.upvotes = votes.last().map(|v| v.1);
        c.history = votes
            .iter()
            .map(|&(hours_ago, upvotes)| UpvoteObservation {
                at: now() - Duration::hours(hours_ago),
                upvotes,
            })
            .collect();
        c
    };
    let text = (
        "Sparse attention for long context",
        "Sparse attention kernels.",
    );
    // The week's hit: 150 upvotes early in the week, quiet today.
    let week_hit = observe(
        paper("2606.00001", text.0, text.1),
        &[(150, 0), (120, 150), (24, 150), (0, 150)],
    );
    // Today's riser: quiet all week, 40 upvotes today.
    let riser = observe(
        paper("2606.00002", text.0, text.1),
        &[(150, 0), (24, 0), (0, 40)],
    );
    let cands = corpus(vec![week_hit, riser]);
    let profile = Profile::topics(["sparse attention"]);
    let daily = rank(&cands, &profile, 10);
    assert_eq!(ids(&daily), vec!["2606.00002", "2606.00001"]);
    let weekly = RankParams {
        span: Span::Week,
        ..RankParams::default()
    };
    let picks = CandidateIndex::build_with(&cands, &Synonyms::embedded(), now(), weekly).rank(
        &profile,
        &HashSet::new(),
        10,
    );
    assert_eq!(ids(&picks), vec!["2606.00001", "2606.00002"]);
    assert_eq!(picks[0].reason.upvotes_gained, Some(150));
    assert!(
        picks[0]
            .reason
            .summary()
            .ends_with("150 upvotes (+150 this week)"),
        "{}",
        picks[0].reason.summary()
    );
}

#[test]
fn an_off_topic_trending_paper_never_displaces_a_relevant_one() {
    let relevant = paper(
        "2606.00001",
        "Speculative decoding",
        "Speculative decoding drafts tokens.",
    );
    let viral = with_upvotes(
        paper(
            "2606.00002",
            "A viral paper about galaxies",
            "Everyone upvoted this.",
        ),
        0,
        5000,
    );
    let cands = corpus(vec![relevant, viral]);
    let picks = rank(&cands, &Profile::topics(["speculative decoding"]), 10);
    assert_eq!(ids(&picks), vec!["2606.00001"]);
}

#[test]
fn nothing_relevant_means_no_digest_unless_the_fallback_is_chosen() {
    let hot = with_upvotes(paper("2606.00001", "Galaxy halos", "Dark halos."), 0, 300);
    let warm = with_upvotes(paper("2606.00002", "Sorting", "Networks."), 0, 30);
    let cands = corpus(vec![warm, hot]);
    let mut profile = Profile::topics(["speculative decoding"]);
    assert!(rank(&cands, &profile, 5).is_empty());
    profile.fallback_trending = true;
    let picks = rank(&cands, &profile, 2);
    assert_eq!(ids(&picks), vec!["2606.00001", "2606.00002"]);
    assert!(picks
        .iter()
        .all(|p| p.reason.trending_fallback && p.reason.topics.is_empty()));
    assert!(picks[0].reason.summary().starts_with("Trending today"));
}

#[test]
fn no_paper_repeats_across_days_or_versions() {
    let synonyms = Synonyms::embedded();
    let profile = Profile::topics(["sparse attention"]);
    let mut sent: HashSet<PaperId> = HashSet::new();
    let day1 = corpus(vec![
        paper("2606.00001v1", "Sparse attention A", "Sparse attention."),
        paper("2606.00002v1", "Sparse attention B", "Sparse attention."),
    ]);
    let picks = CandidateIndex::build(&day1, &synonyms, now()).rank(&profile, &sent, 1);
    assert_eq!(picks.len(), 1);
    sent.extend(picks.iter().map(|p| p.id.clone()));
    // Day 2: the mailed paper reappears as v2, next to a new one.
    let first = picks[0].id.as_str().to_string();
    let day2 = corpus(vec![
        paper(
            &format!("{first}v2"),
            "Sparse attention A, revised",
            "Sparse attention.",
        ),
        paper("2606.00002v1", "Sparse attention B", "Sparse attention."),
        paper("2606.00003v1", "Sparse attention C", "Sparse attention."),
    ]);
    let later = now() + Duration::days(1);
    let picks2 = CandidateIndex::build(&day2, &synonyms, later).rank(&profile, &sent, 10);
    assert!(!picks2.is_empty());
    assert!(
        picks2.iter().all(|p| !sent.contains(&p.id)),
        "{:?}",
        ids(&picks2)
    );
}

#[test]
fn ties_break_on_paper_id_whatever_the_input_order() {
    let make = |id: &str| paper(id, "Sparse attention", "Sparse attention.");
    let a = corpus(vec![
        make("2606.00003"),
        make("2606.00001"),
        make("2606.00002"),
    ]);
    let mut b = a.clone();
    b.reverse();
    let profile = Profile::topics(["sparse attention"]);
    let (ra, rb) = (rank(&a, &profile, 10), rank(&b, &profile, 10));
    assert_eq!(ids(&ra), vec!["2606.00001", "2606.00002", "2606.00003"]);
    assert_eq!(ids(&ra), ids(&rb));
}

#[test]
fn a_reason_names_its_topics_in_plain_words_and_upvotes_in_one_line() {
    let c = with_upvotes(
        paper(
            "2606.00001",
            "VIA-SD: speculative decoding",
            "Speculative decoding (SD) with RAG.",
        ),
        30,
        42,
    );
    let cands = corpus(vec![c]);
    let profile = Profile::topics(["speculative decoding", "retrieval-augmented generation"]);
    let picks = rank(&cands, &profile, 10);
    let summary = picks[0].reason.summary();
    assert_eq!(
        summary,
        "On speculative decoding and retrieval-augmented generation · 42 upvotes (+12 in a day)"
    );
}

#[test]
fn a_shared_topic_is_scored_once_per_run() {
    let cands = corpus(vec![paper(
        "2606.00001",
        "Sparse attention",
        "Sparse attention.",
    )]);
    let index = CandidateIndex::build(&cands, &Synonyms::embedded(), now());
    let none = HashSet::new();
    index.rank(&Profile::topics(["Sparse attention", "galaxy"]), &none, 5);
    index.rank(&Profile::topics(["sparse  attention"]), &none, 5);
    assert_eq!(index.cached_topics(), 2);
}

#[test]
fn an_operator_synonym_file_extends_matching() {
    let cands = corpus(vec![paper(
        "2606.00001",
        "Self-supervised learning of audio",
        "Audio.",
    )]);
    let base = CandidateIndex::build(&cands, &Synonyms::embedded(), now());
    assert!(base
        .rank(&Profile::topics(["SSL"]), &HashSet::new(), 5)
        .is_empty());
    let extra = "[[concept]]\nname = \"ssl\"\nterms = [\"SSL\", \"self-supervised learning\"]\n";
    let syn = Synonyms::load(Some(extra)).unwrap();
    let picks = CandidateIndex::build(&cands, &syn, now()).rank(
        &Profile::topics(["SSL"]),
        &HashSet::new(),
        5,
    );
    assert_eq!(ids(&picks), vec!["2606.00001"]);
}

#[test]
fn the_preview_json_lists_id_title_score_and_reason_in_order() {
    let cands = corpus(vec![
        paper(
            "2606.00001",
            "Sparse attention",
            "Sparse attention everywhere.",
        ),
        paper(
            "2606.00002",
            "Attention, sparse or not",
            "Dense attention; sparse weights.",
        ),
    ]);
    let picks = preview(
        &cands,
        &Profile::topics(["sparse attention"]),
        &Synonyms::embedded(),
        now(),
        5,
    );
    let json: Vec<_> = picks
        .iter()
        .map(|p| serde_json::to_value(p.view(&cands)).unwrap())
        .collect();
    assert_eq!(json.len(), 2);
    assert_eq!(json[0]["id"], "2606.00001");
    assert_eq!(json[0]["title"], "Sparse attention");
    assert!(json[0]["score"].as_f64().unwrap() >= json[1]["score"].as_f64().unwrap());
    assert!(json[0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("On sparse attention"));
}

#[test]
fn the_index_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<CandidateIndex>();
    shareable::<Synonyms>();
    let cands = corpus(vec![paper(
        "2606.00001",
        "Sparse attention",
        "Sparse attention.",
    )]);
    let index = std::sync::Arc::new(CandidateIndex::build(&cands, &Synonyms::embedded(), now()));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let index = index.clone();
            std::thread::spawn(move || {
                index.rank(&Profile::topics(["sparse attention"]), &HashSet::new(), 3)
            })
        })
        .collect();
    for h in handles {
        assert_eq!(ids(&h.join().unwrap()), vec!["2606.00001"]);
    }
}

// ---- Words no candidate uses, and derived forms ---------------------------

/// Papers of an ML day: a paper on loss explosions (a query lexical
/// ranking used to miss) and others sharing its generic words.
fn training_day() -> Vec<Candidate> {
    corpus(vec![
        paper(
            "2606.00001",
            "Predicting loss explosions before they happen",
            "Training instability in large transformers shows up as sudden loss \
             explosions; we forecast them from gradient statistics.",
        ),
        paper(
            "2606.00002",
            "Curriculum training for retrieval",
            "We order the training data of a retriever by difficulty.",
        ),
        paper(
            "2606.00003",
            "Stability of steady states in reaction networks",
            "We prove the stability of positive equilibria.",
        ),
        paper(
            "2606.00004",
            "Learning disentangled representation for faces",
            "An identity representation and an attribute representation are \
             learned apart.",
        ),
        paper(
            "2606.00005",
            "Representation learning for graphs",
            "Node representation from random walks.",
        ),
    ])
}

#[test]
fn a_topic_word_no_candidate_uses_does_not_sink_the_topic() {
    // "spikes" occurs nowhere; "stability" only as "instability".
    let cands = training_day();
    let picks = rank(
        &cands,
        &Profile::topics(["loss spikes training stability"]),
        10,
    );
    assert_eq!(ids(&picks), vec!["2606.00001"]);
    let words = &picks[0].reason.topics[0].words;
    assert_eq!(words, &["loss", "training", "instability"]);
    assert!(!picks[0].reason.topics[0].phrase);
}

#[test]
fn one_generic_word_left_cannot_match_a_two_word_topic() {
    // "engineering" occurs nowhere: "representation" alone is not the topic.
    let cands = training_day();
    let picks = rank(&cands, &Profile::topics(["representation engineering"]), 10);
    assert_eq!(ids(&picks), Vec::<&str>::new());
    // The word alone is a topic of its own.
    let picks = rank(&cands, &Profile::topics(["representation"]), 10);
    assert_eq!(picks.len(), 2);
}

#[test]
fn a_topic_of_only_unknown_words_matches_nothing() {
    let cands = training_day();
    let picks = rank(&cands, &Profile::topics(["superconducting qubits"]), 10);
    assert!(picks.is_empty());
}

#[test]
fn a_word_mentioned_in_passing_does_not_carry_a_topic_it_is_half_of() {
    let cands = corpus(vec![
        paper(
            "2606.00001",
            "A drone simulator for control",
            "Built on a physics engine, with rendering.",
        ),
        paper(
            "2606.00002",
            "Engines of discovery",
            "Search engines and inference engines for science.",
        ),
        paper(
            "2606.00003",
            "Representation learning for graphs",
            "Node representation from random walks.",
        ),
        paper(
            "2606.00004",
            "Image representation",
            "A representation of images.",
        ),
        paper(
            "2606.00005",
            "Representation of sound",
            "Audio representation.",
        ),
    ]);
    // "engine" is the rarer word, so it alone carries the coverage rule;
    // a single mention in an abstract is not enough, a title mention is.
    let picks = rank(&cands, &Profile::topics(["representation engineering"]), 10);
    assert_eq!(ids(&picks), vec!["2606.00002"]);
    // Every word present: no such bar.
    let picks = rank(&cands, &Profile::topics(["physics engine"]), 10);
    assert_eq!(ids(&picks)[0], "2606.00001");
}

#[test]
fn a_derived_form_matches_below_the_word_itself() {
    let cands = corpus(vec![
        paper(
            "2606.00001",
            "Training instability in transformers",
            "Why optimisers diverge.",
        ),
        paper(
            "2606.00002",
            "Training stability in transformers",
            "Why optimisers diverge.",
        ),
        paper(
            "2606.00003",
            "Unstable training in transformers",
            "Why optimisers diverge.",
        ),
    ]);
    let picks = rank(&cands, &Profile::topics(["training stability"]), 10);
    assert_eq!(ids(&picks)[0], "2606.00002");
    assert_eq!(picks.len(), 3, "{picks:?}");
    assert!(picks[0].score > picks[1].score);
    assert!(picks[0].reason.topics[0].phrase);
    let shown: Vec<&str> = picks[1..]
        .iter()
        .map(|p| p.reason.topics[0].words[1].as_str())
        .collect();
    assert!(
        shown.contains(&"instability") && shown.contains(&"unstable"),
        "{shown:?}"
    );
}

#[test]
fn a_word_that_only_looks_negated_joins_no_family() {
    // "informational" reads as in- + "formational", but "information"
    // (the same stem) is no form of "formation".
    let cands = corpus(vec![
        paper(
            "2606.00001",
            "Formation flight of drones",
            "Drones keep a formation.",
        ),
        paper(
            "2606.00002",
            "Information flow in networks",
            "An informational view of information.",
        ),
    ]);
    let picks = rank(&cands, &Profile::topics(["formation"]), 10);
    assert_eq!(ids(&picks), vec!["2606.00001"]);
}

#[test]
fn a_rare_word_does_not_borrow_the_matches_of_a_common_form() {
    // "learning" is everywhere; "unlearning" is the topic.
    let mut extra: Vec<Candidate> = (0..6)
        .map(|i| {
            paper(
                &format!("2606.{:05}", 10 + i),
                &format!("Machine learning for problem {i}"),
                "Learning from data with machine learning.",
            )
        })
        .collect();
    extra.push(paper(
        "2606.00001",
        "Certified machine unlearning",
        "Removing a sample's influence from a trained model.",
    ));
    let picks = rank(&corpus(extra), &Profile::topics(["machine unlearning"]), 10);
    assert_eq!(ids(&picks), vec!["2606.00001"]);
}

// ---- On the recorded fixtures -------------------------------------------

fn fixture_corpus() -> Vec<Candidate> {
    crate::fixtures::recorded_candidates(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
        now(),
    )
    .expect("tests/fixtures")
}

fn judged_set() -> RelevanceSet {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/relevance/judgements.toml");
    RelevanceSet::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn on_the_judged_set_the_ranker_beats_plain_bm25() {
    let cands = fixture_corpus();
    assert!(cands.len() > 90, "{}", cands.len());
    let set = judged_set();
    assert!(set.topic.len() >= 60);
    for j in &set.topic {
        for id in j.relevant.keys() {
            assert!(
                cands.iter().any(|c| c.paper.id.as_str() == id),
                "{}: unknown {id}",
                j.query
            );
        }
    }
    let index = CandidateIndex::build(&cands, &Synonyms::embedded(), now());
    let baseline = eval::Bm25Baseline::new(&cands);
    let ours = eval::summarise(&eval::evaluate(&set, 10, |q| {
        eval::lexical_picks(&index, q, 10)
    }));
    let base = eval::summarise(&eval::evaluate(&set, 10, |q| baseline.picks(q, 10)));
    assert!(
        ours.ndcg > base.ndcg,
        "nDCG@10: ranker {:.3} vs bm25 {:.3}",
        ours.ndcg,
        base.ndcg
    );
    let (p_ours, p_base) = (ours.precision.unwrap(), base.precision.unwrap());
    assert!(
        p_ours > p_base,
        "precision: ranker {p_ours:.3} vs bm25 {p_base:.3}"
    );
    assert!(
        ours.expect_nothing_sent < base.expect_nothing_sent,
        "topics that expect nothing but got picks: ranker {} vs bm25 {}",
        ours.expect_nothing_sent,
        base.expect_nothing_sent
    );
}

#[test]
fn precision_counts_every_pick_sent_and_an_empty_digest_adds_nothing() {
    let set = RelevanceSet::parse(
        r#"
        [[topic]]
        query = "a"
        relevant = { "x" = 3, "y" = 1 }
        [[topic]]
        query = "b"
        relevant = { "z" = 2 }
        [[topic]]
        query = "nothing fits"
        round = 2
        relevant = {}
        "#,
    )
    .unwrap();
    let sent = |q: &str| -> Vec<String> {
        match q {
            "a" => vec!["x".into(), "w".into(), "y".into(), "v".into()],
            "b" => vec![],
            _ => vec!["x".into()],
        }
    };
    let runs = eval::evaluate(&set, 10, sent);
    assert_eq!((runs[0].sent, runs[0].relevant_sent), (4, 2));
    assert_eq!(runs[2].round, 2);
    let s = eval::summarise(&runs);
    // 2 relevant of 5 picks; topic "b" sent nothing and is a miss, not a
    // precision loss; the empty-expected topic's pick is a loss.
    assert_eq!(s.precision, Some(0.4));
    assert_eq!(s.mean_topic_precision, Some((0.5 + 0.0) / 2.0));
    assert_eq!(
        (s.missed_topics, s.expect_nothing, s.expect_nothing_sent),
        (1, 1, 1)
    );
    assert_eq!(runs[2].ndcg, 0.0);
    assert_eq!(
        eval::summarise(&eval::evaluate(&set, 10, |_| vec![])).ndcg,
        1.0 / 3.0
    );
}

#[test]
fn ndcg_is_one_for_the_ideal_order_and_lower_otherwise() {
    let judged: std::collections::BTreeMap<String, u8> =
        [("a".to_string(), 3), ("b".to_string(), 1)]
            .into_iter()
            .collect();
    assert!((eval::ndcg_at(&["a", "b"], &judged, 10) - 1.0).abs() < 1e-12);
    let swapped = eval::ndcg_at(&["b", "a"], &judged, 10);
    assert!(swapped < 1.0 && swapped > 0.0);
    assert_eq!(eval::ndcg_at(&["x"], &judged, 10), 0.0);
}

fn fixture_index() -> &'static (Vec<Candidate>, CandidateIndex) {
    static CELL: std::sync::OnceLock<(Vec<Candidate>, CandidateIndex)> = std::sync::OnceLock::new();
    CELL.get_or_init(|| {
        let mut cands = fixture_corpus();
        // Give every paper some upvote history so trending varies.
        for (i, c) in cands.iter_mut().enumerate() {
            let v = (i as i64 * 37) % 101;
            c.history = vec![
                UpvoteObservation {
                    at: now() - Duration::hours(30),
                    upvotes: v / 3,
                },
                UpvoteObservation {
                    at: now(),
                    upvotes: v,
                },
            ];
        }
        let index = CandidateIndex::build(&cands, &Synonyms::embedded(), now());
        (cands, index)
    })
}

const TOPIC_POOL: &[&str] = &[
    "LLM agents",
    "speculative decoding",
    "dark matter",
    "EEG",
    "VLM",
    "proton radius",
    "reinforcement learning",
    "diffusion",
    "memory",
    "sparse attention",
    "quantum dots",
    "text-to-image",
    "jailbreak",
    "multi-agent systems",
    "distillation",
    "galaxy",
    "MoE",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn picks_are_at_most_k_sorted_unique_and_never_already_sent(
        topics in proptest::sample::subsequence(TOPIC_POOL.to_vec(), 0..5),
        sent_idx in proptest::collection::vec(0usize..97, 0..30),
        k in 0usize..15,
        fallback in any::<bool>(),
    ) {
        let (cands, index) = fixture_index();
        let sent: HashSet<PaperId> =
            sent_idx.iter().filter_map(|&i| cands.get(i)).map(|c| c.paper.id.clone()).collect();
        let mut profile = Profile::topics(topics);
        profile.fallback_trending = fallback;
        let picks = index.rank(&profile, &sent, k);
        prop_assert!(picks.len() <= k);
        prop_assert!(picks.iter().all(|p| !sent.contains(&p.id)));
        prop_assert!(picks.windows(2).all(|w| w[0].score >= w[1].score));
        let unique: HashSet<_> = picks.iter().map(|p| &p.id).collect();
        prop_assert_eq!(unique.len(), picks.len());
        prop_assert!(picks.iter().all(|p| cands[p.index].paper.id == p.id));
        prop_assert_eq!(index.rank(&profile, &sent, k), picks);
    }

    #[test]
    fn trending_only_reorders_the_relevant_papers(
        topics in proptest::sample::subsequence(TOPIC_POOL.to_vec(), 1..4),
    ) {
        let (cands, index) = fixture_index();
        let flat = CandidateIndex::build_with(
            cands,
            &Synonyms::embedded(),
            now(),
            RankParams { trending_weight: 0.0, ..RankParams::default() },
        );
        let profile = Profile::topics(topics);
        let none = HashSet::new();
        let mut with: Vec<_> = index.rank(&profile, &none, 1000).into_iter().map(|p| p.id).collect();
        let mut without: Vec<_> = flat.rank(&profile, &none, 1000).into_iter().map(|p| p.id).collect();
        with.sort();
        without.sort();
        prop_assert_eq!(with, without);
        let picks = index.rank(&profile, &none, 1000);
        prop_assert!(picks.iter().all(|p| !p.reason.topics.is_empty()));
    }
}
