//! Synthetic papers and topics from the recorded fixtures' vocabulary,
//! shared by the rank and digest benchmarks.
//!
//! Words are drawn from the fixtures' unigram distribution; topics from a
//! pool of about 3,000 phrases (fixture keywords, then generated phrases
//! of content words) with Zipf(1) popularity, planted in titles,
//! abstracts and keywords of the synthesised papers.

use chrono::{Duration, Utc};
use paperboy::domain::{Candidate, Paper, PaperId, UpvoteObservation};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Vocabulary and phrases from the recorded fixtures.
pub struct World {
    words: Vec<String>,
    cumulative: Vec<f64>,
    pool: Vec<String>,
    authors: Vec<String>,
}

impl World {
    pub fn from_fixtures() -> World {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let papers: Vec<Candidate> =
            paperboy::fixtures::recorded_candidates(&dir, Utc::now()).expect("tests/fixtures");
        let mut freq: HashMap<String, usize> = HashMap::new();
        let mut keywords: Vec<String> = Vec::new();
        let mut authors: Vec<String> = Vec::new();
        for c in &papers {
            for w in c
                .paper
                .title
                .split_whitespace()
                .chain(c.paper.abstract_text.split_whitespace())
            {
                let w: String = w
                    .chars()
                    .filter(|ch| ch.is_alphanumeric() || *ch == '-')
                    .collect();
                if !w.is_empty() {
                    *freq.entry(w).or_default() += 1;
                }
            }
            keywords.extend(c.paper.ai_keywords.iter().cloned());
            authors.extend(c.paper.authors.iter().cloned());
        }
        let mut words: Vec<(String, usize)> = freq.into_iter().collect();
        words.sort();
        let mut acc = 0.0;
        let cumulative = words
            .iter()
            .map(|(_, n)| {
                acc += *n as f64;
                acc
            })
            .collect();
        let content: Vec<&String> = words
            .iter()
            .filter(|(w, n)| w.len() > 4 && *n <= 20)
            .map(|(w, _)| w)
            .collect();
        // Topic pool: fixture keywords, then generated phrases of content
        // words, ~3,000 in all; order is popularity rank.
        keywords.sort();
        keywords.dedup();
        let mut rng = StdRng::seed_from_u64(7);
        let mut pool = keywords;
        for extra in [
            "LLM agents",
            "RAG",
            "MoE",
            "speculative decoding",
            "VLM",
            "diffusion models",
            "RLHF",
        ] {
            pool.insert(0, extra.to_string());
        }
        let mut seen: HashSet<String> = pool.iter().cloned().collect();
        while pool.len() < 3_000 {
            let n = rng.gen_range(1..=3);
            let phrase: Vec<&str> = (0..n)
                .map(|_| content[rng.gen_range(0..content.len())].as_str())
                .collect();
            let phrase = phrase.join(" ").to_lowercase();
            if seen.insert(phrase.clone()) {
                pool.push(phrase);
            }
        }
        World {
            words: words.into_iter().map(|(w, _)| w).collect(),
            cumulative,
            pool,
            authors,
        }
    }

    pub fn word(&self, rng: &mut StdRng) -> &str {
        let x = rng.gen_range(0.0..*self.cumulative.last().unwrap());
        let i = self.cumulative.partition_point(|&c| c < x);
        &self.words[i.min(self.words.len() - 1)]
    }

    pub fn text(&self, n: usize, rng: &mut StdRng) -> String {
        let mut s = String::new();
        for _ in 0..n {
            s.push_str(self.word(rng));
            s.push(' ');
        }
        s
    }

    pub fn zipf_topic(&self, rng: &mut StdRng) -> &str {
        // Inverse-CDF of Zipf(1) over the pool: rank ≈ N^u.
        let r = (self.pool.len() as f64).powf(rng.gen_range(0.0..1.0)) as usize;
        &self.pool[r.saturating_sub(1).min(self.pool.len() - 1)]
    }

    pub fn candidates(
        &self,
        n: usize,
        now: chrono::DateTime<Utc>,
        rng: &mut StdRng,
    ) -> Vec<Candidate> {
        (0..n)
            .map(|i| {
                let mut title = self.text(rng.gen_range(6..12), rng);
                let mut abs = self.text(rng.gen_range(120..220), rng);
                for _ in 0..rng.gen_range(1..4) {
                    let t = self.zipf_topic(rng).to_string();
                    if rng.gen_bool(0.3) {
                        title.push_str(&t);
                    } else {
                        abs.push_str(&t);
                        abs.push(' ');
                        abs.push_str(&self.text(20, rng));
                    }
                }
                let id = PaperId::parse_arxiv(&format!("2606.{:05}", i)).unwrap().0;
                let mut p = Paper::new(id, &title, &abs);
                if rng.gen_bool(0.5) {
                    p.ai_keywords = (0..rng.gen_range(6..12))
                        .map(|_| self.zipf_topic(rng).to_string())
                        .collect();
                }
                p.authors = (0..rng.gen_range(1..8))
                    .map(|_| self.authors[rng.gen_range(0..self.authors.len())].clone())
                    .collect();
                p.categories =
                    vec![["cs.LG", "cs.CL", "cs.CV", "hep-ph", "astro-ph.CO"][i % 5].into()];
                p.listed_on = Some((now - Duration::days(rng.gen_range(0..3))).date_naive());
                let votes = (1000.0 / (1.0 + rng.gen_range(0.0..200.0f64))) as i64;
                p.upvotes = Some(votes);
                let history = vec![
                    UpvoteObservation {
                        at: now - Duration::hours(26),
                        upvotes: votes / 3,
                    },
                    UpvoteObservation {
                        at: now - Duration::hours(1),
                        upvotes: votes,
                    },
                ];
                Candidate { paper: p, history }
            })
            .collect()
    }
}
