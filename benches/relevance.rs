//! Relevance of paperboy's rankers on two judged sets, per kind of topic
//! (jargon, natural phrases, broad fields, topics nothing fits) and
//! pooled: mean nDCG@10, the precision of what a digest would carry,
//! recall@10, topics missed, and what was sent for topics nothing fits.
//!
//! - set A: `tests/relevance/judgements.toml` over the recorded fixtures
//!   of `tests/fixtures/` (mostly machine learning, some physics);
//! - set B: `tests/relevance/set-b/judgements.toml` over the arXiv listing
//!   of every archive of 2024-11-28 in `tests/relevance/set-b/` (or the
//!   folder `PAPERBOY_SET_B_DIR` names; see that folder's SOURCES.md).
//!
//! `cargo bench --bench relevance` prints both; `-- --set a|b|both`
//! chooses; `-- --show "topic"` prints every ranker's picks for one topic;
//! `-- --dump` lists the corpus; `-- --sweep` adds a sweep of the hybrid
//! ranker's fusion weight, floor and stand-out margin; `-- --cosines` and
//! `-- --dense-study` study the dense side; `-- --subjects` lists each
//! topic's nearest arXiv subjects; `-- --fit` fits the send model on each
//! set and tests it on the other (`common/fit.rs`). The `hybrid` row needs the
//! MiniLM weights (scripts/test installs them) and ranks through the
//! product's `RankPicker`, as `paperboy preview` does.
//!
//! A ranker is one [`Row`]: a name and "topic → ids of the papers the
//! digest would carry, best first". Adding a ranker is adding a row.

use chrono::{DateTime, TimeZone, Utc};
use paperboy::digest::RankPicker;
use paperboy::domain::Candidate;
use paperboy::rank::eval::{self, Bm25Baseline, Kind, RelevanceSet, Summary, TopicRun};
use paperboy::rank::{CandidateIndex, Profile, RankParams, Synonyms};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

#[path = "common/dense_study.rs"]
mod dense_study;
#[path = "common/fit.rs"]
mod fit;
#[path = "common/hybrid.rs"]
mod hybrid;

/// Picks a digest carries for one topic.
const K: usize = 10;

/// Topic → ids of the papers a digest would carry, best first.
type Ranker<'a> = Box<dyn Fn(&str) -> Vec<String> + 'a>;

/// One ranker of the table.
struct Row<'a> {
    name: &'static str,
    rank: Ranker<'a>,
}

impl<'a> Row<'a> {
    fn new(name: &'static str, rank: impl Fn(&str) -> Vec<String> + 'a) -> Row<'a> {
        Row {
            name,
            rank: Box::new(rank),
        }
    }
}

/// One judged set: its corpus, its judgements and the time it is ranked at
/// (only trending depends on it).
struct JudgedSet {
    name: &'static str,
    corpus: PathBuf,
    judgements: PathBuf,
    now: DateTime<Utc>,
}

fn sets(root: &Path) -> [JudgedSet; 2] {
    let b = std::env::var_os("PAPERBOY_SET_B_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("tests/relevance/set-b"));
    [
        JudgedSet {
            name: "A",
            corpus: root.join("tests/fixtures"),
            judgements: root.join("tests/relevance/judgements.toml"),
            now: Utc.with_ymd_and_hms(2026, 6, 14, 8, 0, 0).unwrap(),
        },
        JudgedSet {
            name: "B",
            corpus: b,
            judgements: root.join("tests/relevance/set-b/judgements.toml"),
            now: Utc.with_ymd_and_hms(2024, 11, 28, 12, 0, 0).unwrap(),
        },
    ]
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let args: Vec<String> = std::env::args().collect();
    let chosen = match chosen_sets(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if args.iter().any(|a| a == "--fit") {
        return fit::run(root, &sets(root));
    }
    for set in sets(root).iter().filter(|s| chosen.contains(&s.name)) {
        run_set(root, set, &args);
    }
}

/// The sets `--set a|b|both` names (both without the flag).
fn chosen_sets(args: &[String]) -> Result<Vec<&'static str>, String> {
    let Some(i) = args.iter().position(|a| a == "--set") else {
        return Ok(vec!["A", "B"]);
    };
    match args.get(i + 1).map(|s| s.to_ascii_lowercase()).as_deref() {
        Some("a") => Ok(vec!["A"]),
        Some("b") => Ok(vec!["B"]),
        Some("both") => Ok(vec!["A", "B"]),
        other => Err(format!(
            "--set takes a, b or both, not {}",
            other.map_or("nothing".to_string(), |o| format!("{o:?}"))
        )),
    }
}

/// Reads one set's corpus and judgements; `None` (and a note why) when
/// its corpus is not on this machine.
fn load(set: &JudgedSet) -> Option<(Vec<Candidate>, RelevanceSet)> {
    let candidates =
        paperboy::fixtures::recorded_candidates(&set.corpus, set.now).unwrap_or_default();
    if candidates.is_empty() {
        println!(
            "set {}: no papers in {} (set B's corpus is not committed: \
             tests/relevance/set-b/SOURCES.md says how to lay it there); skipped",
            set.name,
            set.corpus.display()
        );
        return None;
    }
    let text = std::fs::read_to_string(&set.judgements)
        .unwrap_or_else(|e| panic!("{}: {e}", set.judgements.display()));
    let judged =
        RelevanceSet::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", set.judgements.display()));
    let known: HashSet<&str> = candidates.iter().map(|c| c.paper.id.as_str()).collect();
    for t in &judged.topic {
        for id in t.relevant.keys() {
            assert!(
                known.contains(id.as_str()),
                "set {}: topic {:?} judges {id}, which is not in the corpus",
                set.name,
                t.query
            );
        }
    }
    Some((candidates, judged))
}

fn run_set(root: &Path, set: &JudgedSet, args: &[String]) {
    let Some((candidates, judged)) = load(set) else {
        return;
    };
    println!(
        "\n======== set {}: {} topics, {} papers ({}) ========",
        set.name,
        judged.topic.len(),
        candidates.len(),
        set.corpus.display()
    );
    let config = hybrid::default_config();
    let synonyms = paperboy::rank::Synonyms::from_concepts(config.rank.synonyms.clone());
    let embedded = hybrid::embed(root, &candidates, &judged, &synonyms, set.now);
    let rankers = Rankers::build(&candidates, &config, set.now, embedded.as_ref());
    let rows = rankers.rows();
    let flag = |f: &str| args.iter().any(|a| a == f);
    if flag("--dump") {
        for c in &candidates {
            let p = &c.paper;
            println!("{} | {} | {:?}", p.id, p.title, p.categories);
        }
        return;
    }
    if let Some(e) = &embedded {
        if flag("--dense-study") {
            return dense_study::run(root, &e.encoder, &candidates, &judged, &e.topics);
        }
        if flag("--subjects") {
            return hybrid::subjects(e, &judged);
        }
        if flag("--cosines") {
            return hybrid::cosines(e, &candidates, &judged);
        }
    }
    if let Some(i) = args.iter().position(|a| a == "--show") {
        let q = args.get(i + 1).expect("--show takes a topic");
        return show(q, &candidates, rankers.lexical.index(), &rows);
    }
    let runs: Vec<Vec<TopicRun>> = rows
        .iter()
        .map(|r| eval::evaluate(&judged, K, &r.rank))
        .collect();
    per_topic(&judged, &rows, &runs);
    if set.name == "A" {
        by_round(candidates.len(), &rows, &runs);
    }
    by_kind(set.name, &rows, &runs);
    if let (Some(e), true) = (&embedded, flag("--sweep")) {
        hybrid::sweep(e, &candidates, &judged, &synonyms, set.now, K);
    }
}

/// The rankers of the table over one set's candidates: plain BM25, the
/// product's ranker without a model (`lexical`) and with one (`product`,
/// when the weights are installed), and lexical variants with one rule
/// switched off.
struct Rankers {
    bm25: Bm25Baseline,
    lexical: RankPicker,
    no_trend: CandidateIndex,
    no_syn: CandidateIndex,
    no_forms: CandidateIndex,
    no_partial: CandidateIndex,
    product: Option<RankPicker>,
    no_subjects: Option<RankPicker>,
}

impl Rankers {
    fn build(
        candidates: &[Candidate],
        config: &paperboy::config::Config,
        now: DateTime<Utc>,
        embedded: Option<&hybrid::Embedded>,
    ) -> Rankers {
        let synonyms = paperboy::rank::Synonyms::from_concepts(config.rank.synonyms.clone());
        let variant = |params: RankParams, synonyms: &Synonyms| {
            CandidateIndex::build_with(candidates, synonyms, now, params)
        };
        let d = RankParams::default;
        Rankers {
            bm25: Bm25Baseline::new(candidates),
            lexical: RankPicker::new(candidates.to_vec(), &synonyms, now),
            no_trend: variant(
                RankParams {
                    trending_weight: 0.0,
                    ..d()
                },
                &synonyms,
            ),
            no_syn: variant(d(), &Synonyms::none()),
            no_forms: variant(
                RankParams {
                    variant_weight: 0.0,
                    ..d()
                },
                &synonyms,
            ),
            no_partial: variant(
                RankParams {
                    partial_min_saturation: 0.0,
                    ..d()
                },
                &synonyms,
            ),
            product: embedded.map(|e| hybrid::product_picker(e, candidates, config, now)),
            no_subjects: embedded
                .map(|e| hybrid::picker_without_subjects(e, candidates, config, now)),
        }
    }

    fn rows(&self) -> Vec<Row<'_>> {
        let picker = |p: &RankPicker, q: &str| ids(p.ranked(&Profile::topics([q]), K));
        let mut rows = vec![
            Row::new("bm25", |q| self.bm25.picks(q, K)),
            Row::new("lexical", move |q| picker(&self.lexical, q)),
            Row::new("lex-no-trend", |q| {
                eval::lexical_picks(&self.no_trend, q, K)
            }),
            Row::new("lex-no-syn", |q| eval::lexical_picks(&self.no_syn, q, K)),
            Row::new("lex-no-forms", |q| {
                eval::lexical_picks(&self.no_forms, q, K)
            }),
            Row::new("lex-no-partial", |q| {
                eval::lexical_picks(&self.no_partial, q, K)
            }),
        ];
        if let Some(p) = &self.no_subjects {
            rows.push(Row::new("hyb-no-subj", move |q| picker(p, q)));
        }
        if let Some(p) = &self.product {
            rows.push(Row::new("hybrid", move |q| picker(p, q)));
        }
        rows
    }
}

fn ids(picks: Vec<paperboy::rank::Pick>) -> Vec<String> {
    picks
        .into_iter()
        .map(|p| p.id.as_str().to_string())
        .collect()
}

/// nDCG@K and sent/relevant per topic and ranker.
fn per_topic(set: &RelevanceSet, rows: &[Row], runs: &[Vec<TopicRun>]) {
    print!("{:<40} {:>5}", "topic (kind)", "judged");
    for r in rows {
        print!(" {:>14}", r.name);
    }
    println!();
    println!("{:<46} {}", "", "  nDCG rel/sent".repeat(rows.len()));
    for (i, t) in set.topic.iter().enumerate() {
        let judged = t.relevant.values().filter(|&&g| g > 0).count();
        let q: String = t.query.chars().take(31).collect();
        let kind = t.kind.map_or("-", |k| &k.name()[..3]);
        print!("{q:<31} ({kind}) {judged:>6}    ");
        for run in runs {
            let r = &run[i];
            print!(" {:>6.3} {:>3}/{:<3}", r.ndcg, r.relevant_sent, r.sent);
        }
        println!();
    }
}

/// Set A's summary for its first round of topics and for all rounds.
fn by_round(papers: usize, rows: &[Row], runs: &[Vec<TopicRun>]) {
    let rounds = [
        ("set A, original topics (round 1)", Some(1)),
        ("set A, all rounds", None),
    ];
    for (title, round) in rounds {
        let chosen: Vec<Summary> = runs
            .iter()
            .map(|r| {
                let r: Vec<TopicRun> = r
                    .iter()
                    .filter(|t| round.is_none_or(|n| t.round == n))
                    .cloned()
                    .collect();
                eval::summarise(&r)
            })
            .collect();
        let s0 = &chosen[0];
        println!(
            "\n{title}: {} topics ({} expect nothing), {papers} papers, top {K}",
            s0.topics, s0.expect_nothing
        );
        header();
        for (r, s) in rows.iter().zip(&chosen) {
            line(r.name, s);
        }
    }
}

/// One table per kind of topic, then all topics pooled.
fn by_kind(set: &str, rows: &[Row], runs: &[Vec<TopicRun>]) {
    let kinds: Vec<Vec<(Option<Kind>, Summary)>> =
        runs.iter().map(|r| eval::summarise_by_kind(r)).collect();
    for (i, (kind, s0)) in kinds[0].iter().enumerate() {
        let name = kind.map_or("all topics pooled", |k| k.name());
        println!(
            "\nset {set}, {name}: {} topics ({} expect nothing), top {K}",
            s0.topics, s0.expect_nothing
        );
        header();
        for (r, k) in rows.iter().zip(&kinds) {
            line(r.name, &k[i].1);
        }
    }
    println!(
        "\nprecision: judged relevant / picks sent, topics pooled; P/topic: mean over topics that \
         sent; R@{K}: judged relevant sent / min({K}, judged relevant), mean over topics with \
         relevant papers; missed: topics with relevant papers that sent nothing; nothing-sent: \
         topics that expect nothing but sent (of how many), and the papers they sent"
    );
}

fn header() {
    println!(
        "{:<14} {:>8} {:>10} {:>8} {:>7} {:>6} {:>7} {:>13}",
        "ranker", "nDCG@10", "precision", "P/topic", "R@10", "sent", "missed", "nothing-sent"
    );
}

fn line(name: &str, s: &Summary) {
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    let nothing = if s.expect_nothing == 0 {
        "-".to_string()
    } else {
        format!(
            "{}/{} ({})",
            s.expect_nothing_sent, s.expect_nothing, s.expect_nothing_picks
        )
    };
    println!(
        "{:<14} {:>8.3} {:>10} {:>8} {:>7} {:>6} {:>7} {:>13}",
        name,
        s.ndcg,
        opt(s.precision),
        opt(s.mean_topic_precision),
        opt(s.recall),
        s.picks_sent,
        s.missed_topics,
        nothing
    );
}

fn show(q: &str, candidates: &[Candidate], lexical: &CandidateIndex, rows: &[Row]) {
    println!("lexical (with reasons):");
    for p in lexical.rank(&Profile::topics([q]), &HashSet::new(), K) {
        let t = &candidates[p.index].paper.title;
        println!("  {:.3} {} {} | {}", p.score, p.id, t, p.reason.summary());
    }
    for r in rows {
        println!("{}:", r.name);
        for id in (r.rank)(q) {
            let title = candidates
                .iter()
                .find(|c| c.paper.id.as_str() == id)
                .map_or("", |c| c.paper.title.as_str());
            println!("  {id} {title}");
        }
    }
}
