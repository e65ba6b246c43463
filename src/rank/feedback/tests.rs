//! The adaptive profile on constructed examples and on the judged set.

use super::*;
use crate::domain::Candidate;
use crate::rank::{RankParams, Synonyms};
use chrono::{Duration, TimeZone};

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

/// Two strands of "decoding" work and some unrelated papers: the reader's
/// topic matches all decoding papers equally.
fn corpus() -> Vec<Candidate> {
    let mut v = vec![
        paper("2606.00001", "Speculative decoding with draft trees", "Draft trees let the target model verify tokens for faster speculative decoding of language models."),
        paper("2606.00002", "Judge decoding for draft verification", "A judge accepts draft tokens in speculative decoding, verifying drafts beyond exact match."),
        paper("2606.00003", "Medusa heads for draft decoding", "Extra heads propose draft tokens which the model verifies, speeding decoding."),
        paper("2606.00004", "Neural decoding of EEG signals", "We decode motor imagery from EEG recordings of the brain with a convolutional decoder."),
        paper("2606.00005", "Decoding brain activity from fMRI", "Brain decoding reconstructs images from fMRI recordings of visual cortex."),
        paper("2606.00006", "Decoding speech from intracranial brain recordings", "Speech is decoded from cortical brain recordings with neural networks."),
        paper("2606.00007", "Token verification in parallel drafting", "Parallel drafting produces many draft tokens; verification by the target model keeps outputs exact."),
    ];
    for i in 0..8 {
        v.push(paper(
            &format!("2606.{:05}", 100 + i),
            &format!("Galaxy rotation curves {i}"),
            "Observations of spiral galaxies and their dark matter halos.",
        ));
    }
    v
}

fn index(c: &[Candidate]) -> CandidateIndex {
    CandidateIndex::build(c, &Synonyms::embedded(), now())
}

fn item(c: &[Candidate], id: &str, action: FeedbackAction, days_ago: i64) -> FeedbackItem {
    let p = c.iter().find(|c| c.paper.id.as_str() == id).unwrap();
    FeedbackItem {
        paper: Arc::new(p.paper.clone()),
        action,
        at: now() - Duration::days(days_ago),
        embedding: None,
    }
}

fn ids(p: &[Pick]) -> Vec<&str> {
    p.iter().map(|p| p.id.as_str()).collect()
}

fn feedback(items: Vec<FeedbackItem>) -> ReaderFeedback {
    ReaderFeedback { items, now: now() }
}

fn position(p: &[Pick], id: &str) -> Option<usize> {
    p.iter().position(|p| p.id.as_str() == id)
}

#[test]
fn without_feedback_the_ranking_is_exactly_todays() {
    let c = corpus();
    let idx = index(&c);
    let mut profile = Profile::topics(["decoding", "galaxy"]);
    profile.excluded = vec!["fMRI".into()];
    let sent: HashSet<PaperId> = [c[0].paper.id.clone()].into();
    for k in [0, 1, 3, 10, 50] {
        let plain = idx.rank(&profile, &sent, k);
        let with = idx.rank_with_feedback(&profile, &sent, k, &ReaderFeedback::none(now()));
        assert_eq!(plain, with, "k = {k}");
    }
}

#[test]
fn liking_a_paper_pulls_its_neighbours_up_and_not_for_me_pushes_them_down() {
    let c = corpus();
    let idx = index(&c);
    let profile = Profile::topics(["decoding"]);
    let sent: HashSet<PaperId> = HashSet::new();
    let before = idx.rank(&profile, &sent, 10);

    // Liking a speculative-decoding paper: the other draft papers rise
    // above the brain-decoding ones.
    let liked = feedback(vec![item(&c, "2606.00001", FeedbackAction::More, 0)]);
    let after = idx.rank_with_feedback(&profile, &sent, 10, &liked);
    let worst_draft = ["2606.00002", "2606.00003"]
        .iter()
        .map(|id| position(&after, id).unwrap())
        .max()
        .unwrap();
    let best_brain = ["2606.00004", "2606.00005", "2606.00006"]
        .iter()
        .map(|id| position(&after, id).unwrap())
        .min()
        .unwrap();
    assert!(worst_draft < best_brain, "{:?}", ids(&after));
    let judge = &after[position(&after, "2606.00002").unwrap()];
    let judge_before = &before[position(&before, "2606.00002").unwrap()];
    assert!(judge.score > judge_before.score);
    assert_eq!(
        judge.reason.similar_to.as_ref().map(|s| s.id.as_str()),
        Some("2606.00001")
    );
    assert!(
        judge
            .reason
            .summary()
            .contains("Similar to “Speculative decoding with draft trees”, which you liked"),
        "{}",
        judge.reason.summary()
    );
    // The brain papers lost nothing: positive feedback only adds.
    let eeg = |p: &[Pick]| p[position(p, "2606.00004").unwrap()].score;
    assert!(eeg(&after) >= eeg(&before));

    // "Not for me" on a brain-decoding paper pushes its neighbours down.
    let disliked = feedback(vec![item(&c, "2606.00004", FeedbackAction::NotForMe, 0)]);
    let after = idx.rank_with_feedback(&profile, &sent, 10, &disliked);
    for id in ["2606.00005", "2606.00006"] {
        let b = before.iter().find(|p| p.id.as_str() == id).unwrap().score;
        let a = after
            .iter()
            .find(|p| p.id.as_str() == id)
            .map_or(0.0, |p| p.score);
        assert!(a < b, "{id}: {a} !< {b}");
    }
    let draft_b = before
        .iter()
        .find(|p| p.id.as_str() == "2606.00001")
        .unwrap()
        .score;
    let draft_a = after
        .iter()
        .find(|p| p.id.as_str() == "2606.00001")
        .unwrap()
        .score;
    assert!(
        draft_a >= draft_b * 0.95,
        "unrelated papers keep (nearly) their score"
    );
}

#[test]
fn a_liked_paper_can_bring_in_a_close_neighbour_the_topic_missed() {
    let c = corpus();
    let idx = index(&c);
    // "Token verification in parallel drafting" never says "decoding".
    let profile = Profile::topics(["decoding"]);
    // As in a digest, the liked papers were mailed already.
    let sent: HashSet<PaperId> = ["2606.00002", "2606.00003"]
        .iter()
        .map(|i| PaperId::parse_arxiv(i).unwrap().0)
        .collect();
    assert_eq!(position(&idx.rank(&profile, &sent, 10), "2606.00007"), None);
    let liked = feedback(vec![
        item(&c, "2606.00002", FeedbackAction::More, 0),
        item(&c, "2606.00003", FeedbackAction::Save, 1),
    ]);
    let after = idx.rank_with_feedback(&profile, &sent, 10, &liked);
    assert!(
        position(&after, "2606.00007").is_some(),
        "{:?}",
        ids(&after)
    );
}

#[test]
fn feedback_never_overrides_excluded_words_or_papers_already_sent() {
    let c = corpus();
    let idx = index(&c);
    let mut profile = Profile::topics(["decoding"]);
    profile.excluded = vec!["judge".into()];
    let sent: HashSet<PaperId> = [PaperId::parse_arxiv("2606.00003").unwrap().0].into();
    let liked = feedback(vec![item(&c, "2606.00001", FeedbackAction::More, 0)]);
    let after = idx.rank_with_feedback(&profile, &sent, 10, &liked);
    assert_eq!(position(&after, "2606.00002"), None, "excluded word");
    assert_eq!(position(&after, "2606.00003"), None, "already sent");
}

#[test]
fn one_liked_paper_pulls_up_at_most_max_per_seed_picks() {
    let mut c = corpus();
    for i in 0..10 {
        c.push(paper(
            &format!("2606.{:05}", 200 + i),
            &format!("Draft tree verification for speculative decoding, variant {i}"),
            "Draft trees let the target model verify tokens for faster speculative decoding.",
        ));
    }
    let mut params = RankParams::default();
    params.feedback.max_per_seed = 2;
    let idx = CandidateIndex::build_with(&c, &Synonyms::embedded(), now(), params);
    let profile = Profile::topics(["galaxy"]);
    let liked = feedback(vec![item(&c, "2606.00001", FeedbackAction::More, 0)]);
    let after = idx.rank_with_feedback(&profile, &HashSet::new(), 10, &liked);
    let pulled = after
        .iter()
        .filter(|p| p.reason.similar_to.is_some())
        .count();
    assert_eq!(pulled, 2, "{:?}", ids(&after));
    // The rest of the digest is still the reader's topic.
    assert!(after.iter().filter(|p| !p.reason.topics.is_empty()).count() >= 8);
}

#[test]
fn old_feedback_counts_less_than_fresh_feedback() {
    let c = corpus();
    let idx = index(&c);
    let profile = Profile::topics(["decoding"]);
    let sent = HashSet::new();
    let score = |days| {
        let fb = feedback(vec![item(&c, "2606.00001", FeedbackAction::More, days)]);
        let p = idx.rank_with_feedback(&profile, &sent, 10, &fb);
        p[position(&p, "2606.00002").unwrap()].score
    };
    let (fresh, old, ancient) = (score(0), score(60), score(3650));
    assert!(fresh > old && old > ancient, "{fresh} {old} {ancient}");
    let plain = idx.rank(&profile, &sent, 10);
    let base = plain[position(&plain, "2606.00002").unwrap()].score;
    assert!((ancient - base).abs() < 1e-3);
}

#[test]
fn a_liked_paper_outside_the_candidates_still_counts() {
    let c = corpus();
    let idx = index(&c);
    let profile = Profile::topics(["decoding"]);
    let old = Paper::new(
        PaperId::parse_arxiv("2501.00001").unwrap().0,
        "Draft verification for speculative decoding",
        "The target model verifies draft tokens from draft trees.",
    );
    let fb = feedback(vec![FeedbackItem {
        paper: Arc::new(old),
        action: FeedbackAction::More,
        at: now(),
        embedding: None,
    }]);
    let after = idx.rank_with_feedback(&profile, &HashSet::new(), 10, &fb);
    let top: Vec<&str> = ids(&after)[..3].to_vec();
    for id in ["2606.00001", "2606.00002"] {
        assert!(top.contains(&id), "{top:?}");
    }
}

#[test]
fn with_embeddings_feedback_ranks_by_meaning() {
    // Hand-made unit embeddings: the EEG paper is "close" to the draft
    // papers in meaning although it shares few words with them.
    let c = corpus();
    let unit = |v: [f32; 3]| -> Option<Arc<[f32]>> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        Some(v.iter().map(|x| x / n).collect::<Vec<_>>().into())
    };
    let emb: Vec<Option<Arc<[f32]>>> = c
        .iter()
        .map(|p| match p.paper.id.as_str() {
            "2606.00001" => unit([1.0, 0.0, 0.0]),
            "2606.00004" => unit([0.95, 0.05, 0.0]),
            _ => unit([0.0, 0.2, 1.0]),
        })
        .collect();
    let idx = index(&c).with_embeddings(&emb);
    let profile = Profile::topics(["decoding"]);
    let mut it = item(&c, "2606.00001", FeedbackAction::More, 0);
    it.embedding = emb[0].clone();
    let after = idx.rank_with_feedback(&profile, &HashSet::new(), 10, &feedback(vec![it]));
    assert_eq!(after[0].id.as_str(), "2606.00004", "{:?}", ids(&after));
    assert_eq!(
        after[0].reason.similar_to.as_ref().unwrap().id.as_str(),
        "2606.00001"
    );
}

#[test]
fn authors_recurring_among_liked_papers_are_suggested_not_followed() {
    let mk = |id: &str, authors: &[&str]| {
        let mut p = Paper::new(PaperId::parse_arxiv(id).unwrap().0, "T", "A");
        p.authors = authors.iter().map(|s| s.to_string()).collect();
        p
    };
    let a = mk("2606.00001", &["Y. LeCun", "Ada Lovelace", "Grace Hopper"]);
    let b = mk("2606.00002", &["Yann LeCun", "Ada Lovelace"]);
    let c = mk("2606.00003", &["Ada Lovelace", "Alan Turing"]);
    let got = suggest_authors(&[&a, &b, &c], &["Grace Hopper".into()], 2, 5);
    assert_eq!(
        got,
        vec![
            ("Ada Lovelace".to_string(), 3),
            ("Yann LeCun".to_string(), 2)
        ]
    );
    let followed = suggest_authors(&[&a, &b, &c], &["Lovelace, Ada".into()], 2, 5);
    assert_eq!(followed, vec![("Yann LeCun".to_string(), 2)]);
}

#[test]
fn long_titles_are_shortened_in_reasons() {
    let s = SimilarTo {
        id: PaperId::parse_arxiv("2606.00001").unwrap().0,
        title: "Judge Decoding: Faster Speculative Sampling Requires Going Beyond Model Alignment"
            .into(),
        action: FeedbackAction::Save,
    };
    assert_eq!(
        s.summary(),
        "Similar to “Judge Decoding: Faster Speculative…”, which you saved"
    );
}

#[test]
fn on_the_judged_set_simulated_readers_do_better_with_feedback() {
    use crate::rank::eval::RelevanceSet;
    use crate::rank::simulated::{simulate, Simulation};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let now = Utc.with_ymd_and_hms(2026, 6, 14, 8, 0, 0).unwrap();
    let cands = crate::fixtures::recorded_candidates(&root.join("tests/fixtures"), now)
        .expect("tests/fixtures");
    let text = std::fs::read_to_string(root.join("tests/relevance/judgements.toml")).unwrap();
    let set = RelevanceSet::parse(&text).unwrap();
    let days = simulate(
        &cands,
        &set,
        &Synonyms::embedded(),
        &Simulation {
            params: RankParams::default(),
            now,
            digest_size: 5,
            k: 10,
            days: vec![0, 1, 3, 5],
            embeddings: None,
        },
    );
    // The same table as `cargo bench --bench feedback` (with --nocapture).
    for d in &days {
        println!(
            "day {} topics {:>2}  nDCG@10 {:.3} -> {:.3}  P@10 {:.3} -> {:.3}",
            d.day, d.topics, d.ndcg_none, d.ndcg_feedback, d.precision_none, d.precision_feedback
        );
    }
    // Day 0: no feedback yet, exactly today's ranking.
    assert_eq!(days[0].ndcg_feedback, days[0].ndcg_none);
    assert_eq!(days[0].precision_feedback, days[0].precision_none);
    for d in &days[1..] {
        if d.topics == 0 {
            continue;
        }
        assert!(d.ndcg_feedback > d.ndcg_none, "{d:?}");
        assert!(d.precision_feedback > d.precision_none, "{d:?}");
    }
}

#[test]
fn feedback_on_a_candidate_uses_the_candidates_embedding() {
    let c = corpus();
    let unit = |v: [f32; 2]| -> Option<Arc<[f32]>> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        Some(v.iter().map(|x| x / n).collect::<Vec<_>>().into())
    };
    // Only the galaxy papers are "close" in meaning to the liked paper.
    let emb: Vec<Option<Arc<[f32]>>> = c
        .iter()
        .map(|p| match p.paper.id.as_str() {
            "2606.00001" | "2606.00100" => unit([1.0, 0.0]),
            _ => unit([0.0, 1.0]),
        })
        .collect();
    let idx = index(&c).with_embeddings(&emb);
    let profile = Profile::topics(["decoding"]);
    let sent: HashSet<PaperId> = [c[0].paper.id.clone()].into();
    // The item carries no embedding of its own.
    let fb = feedback(vec![item(&c, "2606.00001", FeedbackAction::More, 0)]);
    let after = idx.rank_with_feedback(&profile, &sent, 10, &fb);
    let pulled = &after[position(&after, "2606.00100").expect("pulled in by meaning")];
    assert_eq!(
        pulled.reason.similar_to.as_ref().map(|s| s.id.as_str()),
        Some("2606.00001")
    );
    assert_eq!(position(&after, "2606.00101"), None, "{:?}", ids(&after));
}

#[test]
fn readers_who_start_with_three_liked_examples_get_a_better_first_digest() {
    use crate::rank::eval::RelevanceSet;
    use crate::rank::simulated::{simulate_examples, Simulation};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let now = Utc.with_ymd_and_hms(2026, 6, 14, 8, 0, 0).unwrap();
    let cands = crate::fixtures::recorded_candidates(&root.join("tests/fixtures"), now)
        .expect("tests/fixtures");
    let text = std::fs::read_to_string(root.join("tests/relevance/judgements.toml")).unwrap();
    let set = RelevanceSet::parse(&text).unwrap();
    let sim = Simulation {
        params: RankParams::default(),
        now,
        digest_size: 5,
        k: 10,
        days: vec![0],
        embeddings: None,
    };
    let index = CandidateIndex::build_with(&cands, &Synonyms::embedded(), now, sim.params.clone());
    let d = simulate_examples(&index, &cands, &set, &sim, 3);
    // The same row as `cargo bench --bench feedback` (ex3, lexical).
    println!("{d:?}");
    assert!(d.topics > 0, "{d:?}");
    assert!(d.ndcg_feedback > d.ndcg_none, "{d:?}");
    assert!(d.precision_feedback > d.precision_none, "{d:?}");
}
