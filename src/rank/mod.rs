//! Ranking: each subscriber's best papers of the day, with reasons.
//!
//! Pure: (profile, candidates with upvote history, ids already mailed,
//! `now`) → ordered [`Pick`]s. No I/O, no clock reads, no randomness; the
//! synonym data is embedded and operator additions arrive as text.
//!
//! A digest run builds one [`CandidateIndex`] over the day's candidates
//! and calls [`CandidateIndex::rank`] for every due subscriber. Each
//! distinct topic is scored once per run and shared (the index caches it),
//! so per-subscriber work is merging a few hit lists and taking the top k.
//!
//! Relevance is BM25F over title, abstract and `ai_keywords` with Porter2
//! stemming, a phrase component (the topic's words together and in order
//! score above the same words scattered), and the concepts of
//! `config/synonyms.toml` (LLM ↔ large language model, …): a synonym phrase
//! in a topic becomes one concept term, matched by any of its wordings. A
//! paper matches a topic when the topic words it contains carry more than
//! half of the topic's IDF mass (so the rare, specific word decides); the
//! relevance is normalised to the topic's ideal score so topics compare.
//! Three refinements of that rule: a topic word that no candidate uses in
//! any form weighs as the topic's average word (it neither sinks the topic
//! nor vanishes, so one generic word left cannot carry it); where a paper
//! lacks a topic word, a derived form of it ("instability" for
//! "stability", "nonlinear" for "linear", "optimise" for "optimize")
//! counts as weaker evidence; and a
//! paper with only one word of a multi-word topic must have it more than
//! in passing (title, keywords, or repeatedly).
//! With a model loaded, meaning is fused in (`dense.rs`), and a topic that
//! names a broad field also covers the papers of the arXiv subjects it
//! means (`fields.rs`).
//! Trending multiplies relevance by at most `1 + trending_weight`, so it
//! reorders relevant papers but never adds an off-topic one.
//!
//! Known limits: a multi-word synonym in a topic ("text-to-image") no
//! longer matches its words scattered; words scattered over an abstract
//! still match a topic they do not mean together ("loss" + "training" +
//! "stable" for "loss spikes training stability"), and Porter2 conflates
//! some unrelated words ("engine" / "engineering"); a homonym is resolved
//! per paper by context words listed in the data file, so a paper using
//! both senses gets the one with more cues; author names match on surname
//! plus first name or initial, without accent folding.

mod attach;
mod authors;
mod build;
mod dense;
mod doc;
mod fields;
mod hits;
mod index;
mod matcher;
mod params;
mod score;
mod synonyms;
mod text;
mod trending;
mod vectors;

pub mod calibrate;
pub mod eval;
pub mod feedback;
pub mod simulated;

pub use dense::HybridParams;
pub use feedback::{suggest_authors, FeedbackItem, FeedbackParams, ReaderFeedback, SimilarTo};
pub use index::CandidateIndex;
pub use params::RankParams;
pub use synonyms::{Synonyms, SynonymsError, EMBEDDED_SYNONYMS};
pub use trending::{trending, Trending};

use crate::domain::{Candidate, PaperId, Preferences, Span};
use chrono::{DateTime, Utc};
use hits::PHRASE_BIT;
use serde::Serialize;
use std::collections::HashSet;

/// What a subscriber (or a preview visitor) wants, as the ranker sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// Topic phrases as typed ("speculative decoding", "RAG").
    pub topics: Vec<String>,
    /// A paper containing any of these words or phrases is never picked.
    pub excluded: Vec<String>,
    /// Papers by these authors qualify whatever their topic.
    pub authors: Vec<String>,
    /// If non-empty, only papers in one of these arXiv categories (or
    /// archives: "cs" covers "cs.LG") qualify. Papers whose categories are
    /// unknown (Hugging Face lists none) are not filtered out. A profile
    /// with categories but no topic and no author *follows* them: every
    /// paper known to be in one qualifies ([`Profile::follows_categories`]).
    pub categories: Vec<String>,
    /// How many papers a digest carries.
    pub digest_size: usize,
    /// With nothing relevant, send the top trending papers instead.
    pub fallback_trending: bool,
}

impl Profile {
    pub fn from_preferences(p: &Preferences) -> Profile {
        Profile {
            topics: p.topics.clone(),
            excluded: p.excluded.clone(),
            authors: p.authors.clone(),
            categories: p.categories.clone(),
            digest_size: p.digest_size as usize,
            fallback_trending: p.fallback_trending,
        }
    }

    /// Categories are what the profile looks for, not a filter on its
    /// topics and authors: there are none of those. Each paper known to be
    /// in one of the categories then qualifies, hottest first; a paper
    /// whose categories are unknown does not (it may be in none of them).
    pub fn follows_categories(&self) -> bool {
        self.topics.is_empty() && self.authors.is_empty() && !self.categories.is_empty()
    }

    /// A profile of topics only, as the preview starts with.
    pub fn topics<S: Into<String>>(topics: impl IntoIterator<Item = S>) -> Profile {
        Profile {
            topics: topics.into_iter().map(Into::into).collect(),
            digest_size: 10,
            ..Profile::default()
        }
    }
}

/// One paper chosen for a subscriber.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pick {
    /// Index into the `candidates` slice the index was built from.
    #[serde(skip)]
    pub index: usize,
    pub id: PaperId,
    /// Higher is better; comparable within one subscriber's picks.
    pub score: f64,
    pub reason: Reason,
}

/// Why a paper was picked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    /// Matched topics, best match first.
    pub topics: Vec<TopicMatch>,
    /// Followed authors of this paper, as the paper prints them.
    pub authors: Vec<String>,
    pub upvotes: Option<i64>,
    /// Upvotes gained over about the span (a day or the week), when known.
    pub upvotes_gained: Option<i64>,
    /// The span trending was measured over (wording of the summary).
    pub span: Span,
    /// Picked only because it is trending and nothing matched today.
    pub trending_fallback: bool,
    /// The followed categories this paper is in, when the profile follows
    /// categories rather than topics ([`Profile::follows_categories`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// The liked or saved paper that pulled this one up, if feedback did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similar_to: Option<SimilarTo>,
}

/// One topic a paper matched, and on which words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicMatch {
    /// The topic as the subscriber typed it.
    pub topic: String,
    /// The words that matched: the topic's words, or for an abbreviation
    /// or synonym the form the paper used ("retrieval-augmented
    /// generation" for the topic "RAG").
    pub words: Vec<String>,
    /// The topic's words occur together and in order.
    pub phrase: bool,
    /// Matched by meaning (sentence embeddings) without sharing the
    /// topic's words; `words` is then empty.
    pub by_meaning: bool,
}

impl Reason {
    /// One short line to print under the title, e.g.
    /// `On speculative decoding and RAG · 42 upvotes`. The words that
    /// matched stay in [`TopicMatch::words`] (the JSON preview keeps
    /// them); a reader only needs to know which of their topics it is.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if self.trending_fallback {
            parts.push(format!(
                "Trending {} (nothing matched your topics)",
                self.span.phrase()
            ));
        }
        if !self.categories.is_empty() {
            let names: Vec<String> = self.categories.iter().map(|c| category_label(c)).collect();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            parts.push(format!("In {}", name_list(&names, 2, "category")));
        }
        let (words, meaning): (Vec<&TopicMatch>, Vec<&TopicMatch>) =
            self.topics.iter().partition(|t| !t.by_meaning);
        if !words.is_empty() {
            let names: Vec<&str> = words.iter().map(|t| t.topic.as_str()).collect();
            parts.push(format!("On {}", name_list(&names, 2, "topic")));
        }
        if !meaning.is_empty() {
            // Quoted and flagged: the paper does not use the topic's
            // words, so the reader should know why it is here.
            let quoted: Vec<String> = meaning.iter().map(|t| format!("\"{}\"", t.topic)).collect();
            let quoted: Vec<&str> = quoted.iter().map(String::as_str).collect();
            parts.push(format!(
                "Related to {} by meaning",
                name_list(&quoted, 2, "topic")
            ));
        }
        if let Some(s) = &self.similar_to {
            parts.push(s.summary());
        }
        if !self.authors.is_empty() {
            parts.push(format!("By {}", self.authors.join(", ")));
        }
        match (self.upvotes, self.upvotes_gained) {
            (Some(1), _) => parts.push("1 upvote".into()),
            (Some(u), Some(g)) if u > 0 && g > 0 => {
                parts.push(format!("{u} upvotes (+{g} {})", self.span.gained_over()))
            }
            (Some(u), _) if u > 0 => parts.push(format!("{u} upvotes")),
            _ => {}
        }
        parts.join(" · ")
    }
}

/// "A", "A and B", or past `shown` names "A, B and 2 more topics": a
/// list a person would write. `noun` names what the remainder counts
/// ("" for a bare "and 2 more").
pub fn name_list(names: &[&str], shown: usize, noun: &str) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        _ if names.len() <= shown => {
            let (last, rest) = names.split_last().expect("two or more names");
            format!("{} and {last}", rest.join(", "))
        }
        _ => {
            let more = names.len() - shown;
            let counted = match (noun, more) {
                ("", _) => String::new(),
                (_, 1) => format!(" {noun}"),
                _ => format!(" {noun}s"),
            };
            format!("{} and {more} more{counted}", names[..shown].join(", "))
        }
    }
}

/// A pick with its title, for `paperboy preview --format json` and the
/// web preview.
#[derive(Debug, Clone, Serialize)]
pub struct PickView<'a> {
    pub id: &'a PaperId,
    pub title: &'a str,
    pub score: f64,
    /// [`Reason::summary`].
    pub reason: String,
    /// The structured reason.
    pub details: &'a Reason,
}

impl Pick {
    /// The pick with its paper's title; `candidates` must be the slice the
    /// index was built from.
    pub fn view<'a>(&'a self, candidates: &'a [Candidate]) -> PickView<'a> {
        PickView {
            id: &self.id,
            title: &candidates[self.index].paper.title,
            score: self.score,
            reason: self.reason.summary(),
            details: &self.reason,
        }
    }
}

/// Dense per-document accumulators for merging one subscriber's topic
/// hits, reused across calls on a thread (reset after each use), so the
/// merge is linear in the hits instead of a sort.
#[derive(Default)]
struct Merge {
    best: Vec<f32>,
    sum: Vec<f32>,
    seen: Vec<u8>,
    touched: Vec<u32>,
}

const SEEN_TOPIC: u8 = 1;
const SEEN_AUTHOR: u8 = 2;
const SEEN_CATEGORY: u8 = 4;

thread_local! {
    static MERGE: std::cell::RefCell<Merge> = std::cell::RefCell::new(Merge::default());
}

/// A profile's analysed parts, looked up once per ranking.
pub(crate) struct Prepared {
    pub(crate) topics: Vec<std::sync::Arc<hits::TopicHits>>,
    excluded: Vec<std::sync::Arc<hits::DocSet>>,
    pub(crate) by_author: Vec<(u32, String)>,
    /// With [`Profile::follows_categories`]: the documents known to be in
    /// one of the categories, with the matching categories as the profile
    /// spells them.
    pub(crate) in_followed: Vec<(u32, Vec<String>)>,
}

impl CandidateIndex {
    /// The best `k` papers for `profile`, best first, never one whose id is
    /// in `already_sent` (ids are version-less, so this covers every
    /// version). Ties break on paper id. With no relevant paper, the top
    /// trending papers if the profile asks for that fallback, else none.
    pub fn rank(&self, profile: &Profile, already_sent: &HashSet<PaperId>, k: usize) -> Vec<Pick> {
        if k == 0 {
            return Vec::new();
        }
        let q = self.prepare(profile);
        let mut scored = self.scores(&q);
        let order = |a: &(f64, u32), b: &(f64, u32)| {
            b.0.total_cmp(&a.0)
                .then_with(|| self.docs[a.1 as usize].id.cmp(&self.docs[b.1 as usize].id))
        };
        // Take the best in batches: sort only as much as the filters need.
        let mut picks = Vec::new();
        let mut rest: &mut [(f64, u32)] = &mut scored;
        while picks.len() < k && !rest.is_empty() {
            let want = ((k - picks.len()) * 2 + 8).min(rest.len());
            if want < rest.len() {
                rest.select_nth_unstable_by(want - 1, order);
            }
            let (batch, tail) = rest.split_at_mut(want);
            batch.sort_unstable_by(order);
            for &(score, doc) in batch.iter() {
                if !self.allowed(doc, profile, &q, already_sent) {
                    continue;
                }
                let reason = self.reason(doc, profile, &q, false);
                picks.push(self.pick(doc, score, reason));
                if picks.len() == k {
                    break;
                }
            }
            rest = tail;
        }
        if picks.is_empty() && profile.fallback_trending {
            picks = self.trending_fallback(profile, &q, already_sent, k);
        }
        picks
    }

    /// For each of `profile`'s topics, in order, how many candidates it
    /// matches that the profile lets through (no excluded word, in its
    /// categories): what a reader is told a topic found, so a topic that
    /// matches nothing can say so.
    pub fn topic_counts(&self, profile: &Profile) -> Vec<usize> {
        let q = self.prepare(profile);
        let none = HashSet::new();
        q.topics
            .iter()
            .map(|t| {
                t.hits
                    .iter()
                    .filter(|h| self.allowed(h.doc, profile, &q, &none))
                    .count()
            })
            .collect()
    }

    pub(crate) fn prepare(&self, profile: &Profile) -> Prepared {
        let mut by_author: Vec<(u32, String)> = Vec::new();
        for a in &profile.authors {
            self.author_docs(a, &mut by_author);
        }
        let in_followed = if profile.follows_categories() {
            self.in_followed(&profile.categories)
        } else {
            Vec::new()
        };
        Prepared {
            topics: profile.topics.iter().map(|t| self.topic(t)).collect(),
            excluded: profile.excluded.iter().map(|e| self.excluded(e)).collect(),
            by_author,
            in_followed,
        }
    }

    /// Every document whose (known) categories include one of `followed`,
    /// with those of `followed` it is in.
    fn in_followed(&self, followed: &[String]) -> Vec<(u32, Vec<String>)> {
        let mut out = Vec::new();
        for (doc, d) in self.docs.iter().enumerate() {
            if d.categories.is_empty() {
                continue;
            }
            let hit: Vec<String> = followed
                .iter()
                .filter(|f| in_categories(&d.categories, std::slice::from_ref(f)))
                .cloned()
                .collect();
            if !hit.is_empty() {
                out.push((doc as u32, hit));
            }
        }
        out
    }

    /// Whether a document may be picked: not sent before, no excluded
    /// word, and in the category filter unless by a followed author.
    pub(crate) fn allowed(
        &self,
        doc: u32,
        profile: &Profile,
        q: &Prepared,
        already_sent: &HashSet<PaperId>,
    ) -> bool {
        let d = &self.docs[doc as usize];
        let author = q.by_author.iter().any(|a| a.0 == doc);
        !already_sent.contains(&d.id)
            && !q.excluded.iter().any(|x| x.contains(doc))
            && (author || in_categories(&d.categories, &profile.categories))
    }

    /// (score, doc) of every document matching a topic or a followed
    /// author, unfiltered and unsorted.
    pub(crate) fn scores(&self, q: &Prepared) -> Vec<(f64, u32)> {
        let p = &self.params;
        let mut scored: Vec<(f64, u32)> = Vec::new();
        MERGE.with(|m| {
            let m = &mut *m.borrow_mut();
            if m.best.len() < self.docs.len() {
                m.best.resize(self.docs.len(), 0.0);
                m.sum.resize(self.docs.len(), 0.0);
                m.seen.resize(self.docs.len(), 0);
            }
            for t in &q.topics {
                for h in &t.hits {
                    let d = h.doc as usize;
                    if m.seen[d] == 0 {
                        m.touched.push(h.doc);
                    }
                    m.seen[d] |= SEEN_TOPIC;
                    m.best[d] = m.best[d].max(h.rel);
                    m.sum[d] += h.rel;
                }
            }
            for &(doc, _) in &q.by_author {
                if m.seen[doc as usize] == 0 {
                    m.touched.push(doc);
                }
                m.seen[doc as usize] |= SEEN_AUTHOR;
            }
            for (doc, _) in &q.in_followed {
                let d = *doc as usize;
                if m.seen[d] == 0 {
                    m.touched.push(*doc);
                }
                m.seen[d] |= SEEN_CATEGORY;
                m.best[d] = m.best[d].max(p.followed_category_rel);
                m.sum[d] += p.followed_category_rel;
            }
            scored.reserve(m.touched.len());
            for &doc in &m.touched {
                let d = doc as usize;
                let (best, sum) = (m.best[d] as f64, m.sum[d] as f64);
                let mut rel = best + p.extra_topic_weight * (sum - best);
                if m.seen[d] & SEEN_AUTHOR != 0 {
                    rel += p.author_bonus;
                }
                scored.push((rel * self.trend_factor(doc), doc));
                m.best[d] = 0.0;
                m.sum[d] = 0.0;
                m.seen[d] = 0;
            }
            m.touched.clear();
        });
        scored
    }

    /// Relevance is multiplied by this: `1 + trending_weight × trending`.
    pub(crate) fn trend_factor(&self, doc: u32) -> f64 {
        1.0 + self.params.trending_weight * self.docs[doc as usize].trending.score
    }

    /// The top trending allowed papers, for a day when nothing matched.
    pub(crate) fn trending_fallback(
        &self,
        profile: &Profile,
        q: &Prepared,
        already_sent: &HashSet<PaperId>,
        k: usize,
    ) -> Vec<Pick> {
        let mut picks = Vec::new();
        let none = Prepared {
            topics: Vec::new(),
            excluded: q.excluded.clone(),
            by_author: Vec::new(),
            in_followed: Vec::new(),
        };
        for &doc in &self.by_trending {
            if !self.allowed(doc, profile, &none, already_sent) {
                continue;
            }
            let score = self.docs[doc as usize].trending.score;
            let reason = self.reason(doc, profile, &none, true);
            picks.push(self.pick(doc, score, reason));
            if picks.len() == k {
                break;
            }
        }
        picks
    }

    pub(crate) fn pick(&self, doc: u32, score: f64, reason: Reason) -> Pick {
        let d = &self.docs[doc as usize];
        Pick {
            index: d.index,
            id: d.id.clone(),
            score,
            reason,
        }
    }

    pub(crate) fn reason(
        &self,
        doc: u32,
        profile: &Profile,
        q: &Prepared,
        fallback: bool,
    ) -> Reason {
        let (topics, by_author) = (&q.topics, &q.by_author);
        let mut matched: Vec<(f32, TopicMatch)> = Vec::new();
        for (ti, t) in topics.iter().enumerate() {
            let Ok(i) = t.hits.binary_search_by_key(&doc, |h| h.doc) else {
                continue;
            };
            let hit = t.hits[i];
            let mut words: Vec<String> = Vec::new();
            for (qi, qt) in t.query.terms.iter().enumerate() {
                if hit.mask & (1 << qi) != 0 {
                    let w = if hit.variant & (1 << qi) != 0 {
                        self.derived_word(qt, doc)
                    } else {
                        self.display_word(qt, doc)
                    };
                    if !words.contains(&w) {
                        words.push(w);
                    }
                }
            }
            matched.push((
                hit.rel,
                TopicMatch {
                    topic: profile.topics[ti].clone(),
                    by_meaning: words.is_empty() && hit.mask == 0,
                    words,
                    phrase: hit.mask & PHRASE_BIT != 0,
                },
            ));
        }
        matched.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut authors: Vec<String> = by_author
            .iter()
            .filter(|a| a.0 == doc)
            .map(|a| a.1.clone())
            .collect();
        authors.dedup();
        let categories = match q.in_followed.binary_search_by_key(&doc, |f| f.0) {
            Ok(i) => q.in_followed[i].1.clone(),
            Err(_) => Vec::new(),
        };
        let t = &self.docs[doc as usize].trending;
        Reason {
            topics: matched.into_iter().map(|m| m.1).collect(),
            authors,
            upvotes: t.upvotes,
            upvotes_gained: t.gained,
            span: self.params.span,
            trending_fallback: fallback,
            categories,
            similar_to: None,
        }
    }
}

/// A followed category as a reader recognises it: "Robotics (cs.RO)", or
/// the code alone where arXiv lists no name for it (an archive such as
/// "cs").
fn category_label(code: &str) -> String {
    match crate::domain::subject_name(code) {
        Some(name) => format!("{name} ({code})"),
        None => code.to_string(),
    }
}

/// Whether a paper's categories pass a subscriber's filter.
fn in_categories(paper: &[String], filter: &[String]) -> bool {
    if filter.is_empty() || paper.is_empty() {
        return true;
    }
    filter.iter().any(|f| {
        paper.iter().any(|c| {
            c.eq_ignore_ascii_case(f)
                || (c.len() > f.len()
                    && c.as_bytes()[f.len()] == b'.'
                    && c[..f.len()].eq_ignore_ascii_case(f))
        })
    })
}

/// Ranks `candidates` for an ad-hoc profile as of `now`, for
/// `paperboy preview` and the subscribe page. Builds a throw-away index;
/// a caller previewing often against the same papers should keep a
/// [`CandidateIndex`] instead.
pub fn preview(
    candidates: &[Candidate],
    profile: &Profile,
    synonyms: &Synonyms,
    now: DateTime<Utc>,
    limit: usize,
) -> Vec<Pick> {
    CandidateIndex::build(candidates, synonyms, now).rank(profile, &HashSet::new(), limit)
}

#[cfg(test)]
mod tests;
