//! The per-run index over candidate papers: analysed fields, positional
//! postings, BM25F statistics and trending scores, plus the caches that
//! let many subscribers share the work of scoring the same topic.

use super::synonyms::{Synonyms, MAX_VARIANT_WORDS};
use super::text::{for_each_token, is_stop_word, Stemming};
use super::trending::{trending, Trending};
use crate::domain::{Candidate, PaperId, Span};
use chrono::{DateTime, Utc};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

pub(crate) const TITLE: usize = 0;
pub(crate) const ABSTRACT: usize = 1;
pub(crate) const KEYWORDS: usize = 2;
/// The names of the paper's arXiv subjects ("Robotics"), a weak field: a
/// broad topic finds the papers of its field even where their words never
/// name it, below the papers that do.
pub(crate) const SUBJECTS: usize = 3;
const FIELDS: usize = 4;

/// Term id that matches nothing (a topic word no candidate contains).
const UNKNOWN: u32 = u32::MAX;
/// Bit of a hit's mask set when the topic matched as a phrase.
pub(crate) const PHRASE_BIT: u32 = 1 << 31;
/// At most this many distinct terms of a topic are scored.
pub(crate) const MAX_QUERY_TERMS: usize = 31;
/// Phrases are matched on at most this many words.
const MAX_PHRASE: usize = 32;

/// Tuning of relevance and blending. The defaults are what paperboy
/// ships; evaluation code varies them.
#[derive(Debug, Clone, PartialEq)]
pub struct RankParams {
    /// BM25 term-frequency saturation.
    pub k1: f32,
    /// Field weights: title, abstract, `ai_keywords`, subject names.
    pub field_weights: [f32; 4],
    /// Length normalisation per field.
    pub field_b: [f32; 4],
    /// Weight of the whole-phrase match relative to the sum of its words.
    pub phrase_weight: f32,
    /// Weight of a derived form of a topic word ("instability" for
    /// "stability", see `text::Stemming::family`) where the paper lacks
    /// the word itself; its evidence is also capped at the rarer of the
    /// two words, so a rare word never borrows a common form's matches.
    pub variant_weight: f32,
    /// A paper matches a topic of several words when the words it contains
    /// carry more than this share of the topic's IDF mass: "EEG" alone
    /// matches "EEG classification", "decoding" alone does not match
    /// "speculative decoding" (the rarer word carries the topic). A topic
    /// word no candidate uses in any form counts as an average word of
    /// the topic: it cannot sink the topic, and what remains must still
    /// carry more than this share (so "engineering" missing today leaves
    /// "representation" unable to match "representation engineering"
    /// alone).
    pub min_coverage: f32,
    /// A paper that has only one of a multi-word topic's words must carry
    /// it more than in passing: its BM25 saturation `tf / (k1 + tf)` must
    /// exceed this. 0.5 means more than one mention in an abstract of
    /// average length; a mention in the title or the keywords passes. So
    /// "engine" once in an abstract does not make a paper about
    /// "representation engineering", nor "context" one about "long
    /// context". 0 turns the rule off.
    pub partial_min_saturation: f32,
    /// Final score = relevance × (1 + trending_weight × trending).
    pub trending_weight: f64,
    /// Added to the relevance of a paper by a followed author.
    pub author_bonus: f64,
    /// Weight of each further matching topic after the best one.
    pub extra_topic_weight: f64,
    /// Cached topic results stop growing past about this many bytes.
    pub cache_budget_bytes: usize,
    /// Over what span trending is measured: today's growth for a daily
    /// digest, the week's for a weekly one (see `trending`).
    pub span: Span,
    /// How reader feedback moves the ranking.
    pub feedback: super::FeedbackParams,
}

impl Default for RankParams {
    fn default() -> Self {
        RankParams {
            k1: 1.2,
            // A subject name alone saturates at 0.8 / (1.2 + 0.8) = 0.4: it
            // matches a one-word topic, but never passes as the only word
            // of a longer topic (`partial_min_saturation`).
            field_weights: [2.5, 1.0, 1.5, 0.8],
            field_b: [0.3, 0.75, 0.5, 0.0],
            phrase_weight: 0.6,
            variant_weight: 0.6,
            min_coverage: 0.5,
            partial_min_saturation: 0.5,
            trending_weight: 0.35,
            author_bonus: 0.5,
            extra_topic_weight: 0.2,
            cache_budget_bytes: 128 << 20,
            span: Span::Day,
            feedback: super::FeedbackParams::default(),
        }
    }
}

/// One occurrence of a term in a document: field and word span (a synonym
/// phrase spans several positions).
#[derive(Debug, Clone, Copy)]
struct Occ {
    field: u8,
    start: u16,
    end: u16,
}

#[derive(Debug, Clone, Copy)]
struct Posting {
    doc: u32,
    tf: [u16; FIELDS],
    /// Occurrences are `occs[occ_start .. occ_start + tf.sum()]`, sorted
    /// by field then start.
    occ_start: u32,
}

#[derive(Debug, Default)]
struct TermPostings {
    postings: Vec<Posting>,
    occs: Vec<Occ>,
}

/// What the index keeps about one candidate.
#[derive(Debug)]
pub(crate) struct Doc {
    /// Position in the `candidates` slice given to `build`.
    pub(crate) index: usize,
    pub(crate) id: PaperId,
    /// Lower-cased arXiv categories.
    pub(crate) categories: Vec<String>,
    pub(crate) trending: Trending,
    /// Each (concept term, variant) this paper uses, by term, variants in
    /// order of first use (for reasons).
    concepts: Vec<(u32, u16)>,
}

/// Which concepts a word sequence can be: a key of term ids.
struct Matcher {
    variants: HashMap<Vec<u32>, Vec<(u16, u16)>>,
    /// Longest variant starting with a term.
    starts: HashMap<u32, usize>,
    /// Term id of each concept.
    concept_term: Vec<u32>,
    /// Context cues per concept, as term ids.
    context: Vec<Vec<Vec<u32>>>,
}

/// A topic (or excluded entry) after analysis.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    /// Distinct terms, in topic order.
    pub(crate) terms: Vec<QTerm>,
    /// The whole sequence (indices into `terms`), for phrase matching.
    pub(crate) sequence: Vec<usize>,
}

#[derive(Debug, Clone)]
pub(crate) struct QTerm {
    term: u32,
    /// Terms of the same derivational family that candidates use (not a
    /// concept's), matched as weaker evidence where `term` is absent.
    variants: Vec<u32>,
    /// The words as the topic wrote them (lower case).
    pub(crate) surface: String,
    /// Set for a concept term: its index in the synonyms and the variant
    /// the topic used.
    pub(crate) concept: Option<(u16, u16)>,
}

/// The papers a topic matches, sorted by document.
#[derive(Debug)]
pub(crate) struct TopicHits {
    pub(crate) query: Query,
    pub(crate) hits: Vec<Hit>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    pub(crate) doc: u32,
    /// Relevance normalised to `[0, 1]` of the ideal score for the topic.
    pub(crate) rel: f32,
    /// Bit `i`: term `i` occurs; `PHRASE_BIT`: the phrase occurs.
    pub(crate) mask: u32,
    /// Bit `i`: term `i` occurs only as a derived form.
    pub(crate) variant: u32,
}

/// Documents matching an excluded entry, as a bit set.
#[derive(Debug)]
pub(crate) struct DocSet(Vec<u64>);

impl DocSet {
    pub(crate) fn contains(&self, doc: u32) -> bool {
        self.0
            .get(doc as usize / 64)
            .is_some_and(|w| w & (1 << (doc % 64)) != 0)
    }
}

/// A followed-author lookup key: surname and first given name or initial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthorKey {
    pub(crate) surname: String,
    pub(crate) given: String,
}

impl AuthorKey {
    /// "Yann LeCun", "Y. LeCun" and "LeCun, Yann" give the same surname;
    /// the given name may be an initial.
    pub(crate) fn parse(name: &str) -> Option<AuthorKey> {
        let words = |s: &str| {
            let mut v = Vec::new();
            for_each_token(s, |t, _| v.push(t.to_string()));
            v
        };
        let (surname, given) = match name.split_once(',') {
            Some((last, first)) => (words(last).join(" "), words(first)),
            None => {
                let mut w = words(name);
                let last = w.pop()?;
                (last, w)
            }
        };
        if surname.is_empty() {
            return None;
        }
        Some(AuthorKey {
            surname,
            given: given.into_iter().next().unwrap_or_default(),
        })
    }

    pub(crate) fn matches(&self, other: &AuthorKey) -> bool {
        if self.surname != other.surname {
            return false;
        }
        let (a, b) = (&self.given, &other.given);
        if a.is_empty() || b.is_empty() {
            return true;
        }
        if a.chars().count() == 1 || b.chars().count() == 1 {
            return a.chars().next() == b.chars().next();
        }
        a == b
    }
}

#[derive(Default)]
struct Scratch {
    acc: Vec<f32>,
    /// IDF evidence of the topic words matched.
    cov: Vec<f32>,
    mask: Vec<u32>,
    variant: Vec<u32>,
    touched: Vec<u32>,
    /// One term's derived-form matches: (doc, score, evidence).
    forms: Vec<(u32, f32, f32)>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Everything a digest run needs about today's candidates. Build it once
/// per run, share it (it is `Send + Sync`; wrap it in an `Arc` for tasks),
/// and call [`CandidateIndex::rank`] per subscriber. Topic and
/// excluded-word results are cached inside, so each distinct topic is
/// scored once per run however many subscribers share it.
pub struct CandidateIndex {
    pub(crate) params: RankParams,
    stemming: Stemming,
    vocab: HashMap<String, u32>,
    terms: Vec<TermPostings>,
    pub(crate) docs: Vec<Doc>,
    /// Derived-form terms by family key (`text::Stemming::family`); the
    /// term equal to the key, if any, is the family's plain form.
    families: HashMap<String, Vec<u32>>,
    /// A word of the candidates for each term, for reasons.
    surfaces: HashMap<u32, Box<str>>,
    /// Per document, `w_f / (1 - b_f + b_f · len_f / avglen_f)` for each
    /// field (kept apart from `docs` for cache locality when scoring).
    field_factor: Vec<[f32; FIELDS]>,
    matcher: Matcher,
    pub(crate) synonyms: Synonyms,
    /// Surname → (doc, author key, author as printed).
    authors: HashMap<String, Vec<(u32, AuthorKey, String)>>,
    /// Documents by trending score, hottest first (ties by id).
    pub(crate) by_trending: Vec<u32>,
    topic_cache: RwLock<HashMap<String, Arc<TopicHits>>>,
    excluded_cache: RwLock<HashMap<String, Arc<DocSet>>>,
    cache_bytes: AtomicUsize,
    /// Unit TF-IDF vectors of the documents, built on the first ranking
    /// with feedback (readers without feedback never pay for them).
    lexical: OnceLock<super::vectors::LexicalVectors>,
    /// Unit embeddings per document, when the candidates carry them.
    pub(crate) dense: Option<Vec<Option<Arc<[f32]>>>>,
    /// Paper and topic vectors for the dense side (see `dense.rs`).
    pub(crate) semantic: super::dense::Dense,
}

impl std::fmt::Debug for CandidateIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CandidateIndex")
            .field("docs", &self.docs.len())
            .field("terms", &self.terms.len())
            .finish()
    }
}

fn intern(vocab: &mut HashMap<String, u32>, terms: &mut Vec<TermPostings>, t: &str) -> u32 {
    if let Some(&id) = vocab.get(t) {
        return id;
    }
    let id = terms.len() as u32;
    vocab.insert(t.to_string(), id);
    terms.push(TermPostings::default());
    id
}

/// A token of an analysed field: position and term.
#[derive(Clone, Copy)]
struct Tok {
    pos: u32,
    term: u32,
}

impl CandidateIndex {
    /// Builds the index with the default parameters. `now` fixes the
    /// trending scores; nothing reads the clock.
    pub fn build(
        candidates: &[Candidate],
        synonyms: &Synonyms,
        now: DateTime<Utc>,
    ) -> CandidateIndex {
        CandidateIndex::build_with(candidates, synonyms, now, RankParams::default())
    }

    /// Builds the index with explicit parameters. A paper id given twice
    /// keeps its first candidate.
    pub fn build_with(
        candidates: &[Candidate],
        synonyms: &Synonyms,
        now: DateTime<Utc>,
        params: RankParams,
    ) -> CandidateIndex {
        let stemming = synonyms.stemming.clone();
        let mut vocab: HashMap<String, u32> = HashMap::new();
        let mut terms: Vec<TermPostings> = Vec::new();

        // Synonym variants and cues become term-id sequences.
        let mut matcher = Matcher {
            variants: HashMap::new(),
            starts: HashMap::new(),
            concept_term: Vec::new(),
            context: Vec::new(),
        };
        for (ci, c) in synonyms.concepts.iter().enumerate() {
            let ct = intern(&mut vocab, &mut terms, &format!("#{}", c.name));
            matcher.concept_term.push(ct);
            for (vi, v) in c.variants.iter().enumerate() {
                let key: Vec<u32> = v
                    .terms
                    .iter()
                    .map(|t| intern(&mut vocab, &mut terms, t))
                    .collect();
                let slot = matcher.starts.entry(key[0]).or_insert(0);
                *slot = (*slot).max(key.len());
                let entry = matcher.variants.entry(key).or_default();
                if !entry.iter().any(|&(c2, _)| c2 as usize == ci) {
                    entry.push((ci as u16, vi as u16));
                }
            }
            matcher.context.push(
                c.context
                    .iter()
                    .map(|cue| {
                        cue.iter()
                            .map(|t| intern(&mut vocab, &mut terms, t))
                            .collect()
                    })
                    .collect(),
            );
        }

        // Token → term, cached: stemming dominates analysis otherwise.
        let mut token_terms: HashMap<String, Option<u32>> = HashMap::new();
        // Per term, the family its words are derived forms of; `None` once
        // one of its words is not (so "informational" → "formational"
        // does not drag "information" into the family of "formation").
        let mut derived_from: HashMap<u32, Option<String>> = HashMap::new();
        let mut surfaces: HashMap<u32, Box<str>> = HashMap::new();
        let mut seen_ids: HashMap<&PaperId, ()> = HashMap::new();
        let mut docs = Vec::with_capacity(candidates.len());
        let mut lens: Vec<[u32; FIELDS]> = Vec::with_capacity(candidates.len());
        let mut authors: HashMap<String, Vec<(u32, AuthorKey, String)>> = HashMap::new();
        let mut fields: [Vec<Tok>; FIELDS] = Default::default();
        let mut occ_buf: Vec<(u32, Occ)> = Vec::new();

        for (index, c) in candidates.iter().enumerate() {
            if seen_ids.insert(&c.paper.id, ()).is_some() {
                continue;
            }
            let doc = docs.len() as u32;
            let p = &c.paper;
            let mut analyse = |text: &str, out: &mut Vec<Tok>, next: &mut u32| {
                for_each_token(text, |tok, gap| {
                    let term = match token_terms.get(tok) {
                        Some(t) => *t,
                        None => {
                            let t = (!is_stop_word(tok)).then(|| {
                                let stem = stemming.term(tok);
                                let t = intern(&mut vocab, &mut terms, &stem);
                                surfaces.entry(t).or_insert_with(|| tok.into());
                                let key = stemming.derived_family(tok, &stem);
                                derived_from
                                    .entry(t)
                                    .and_modify(|k| {
                                        if *k != key {
                                            *k = None;
                                        }
                                    })
                                    .or_insert(key);
                                t
                            });
                            token_terms.insert(tok.to_string(), t);
                            t
                        }
                    };
                    if gap {
                        *next += 1;
                    }
                    if let Some(term) = term {
                        out.push(Tok { pos: *next, term });
                        *next += 1;
                    }
                });
            };
            for f in fields.iter_mut() {
                f.clear();
            }
            let mut next = 0;
            analyse(&p.title, &mut fields[TITLE], &mut next);
            next = 0;
            analyse(&p.abstract_text, &mut fields[ABSTRACT], &mut next);
            next = 0;
            for k in &p.ai_keywords {
                analyse(k, &mut fields[KEYWORDS], &mut next);
                next += 1;
            }
            next = 0;
            for name in crate::domain::subject_names(&p.categories) {
                analyse(&name, &mut fields[SUBJECTS], &mut next);
                next += 1;
            }
            lens.push([0, 1, 2, 3].map(|f| fields[f].len() as u32));

            // Occurrences of plain terms, then of concepts.
            occ_buf.clear();
            for (f, toks) in fields.iter().enumerate() {
                for t in toks {
                    let pos = t.pos.min(u16::MAX as u32) as u16;
                    occ_buf.push((
                        t.term,
                        Occ {
                            field: f as u8,
                            start: pos,
                            end: pos,
                        },
                    ));
                }
            }
            let mut concepts: Vec<(u32, u16)> = Vec::new();
            let doc_terms: std::collections::HashSet<u32> =
                fields.iter().flatten().map(|t| t.term).collect();
            for (f, toks) in fields.iter().enumerate() {
                for_each_concept(&matcher, toks, false, |start, end, options| {
                    let (ci, vi) = resolve(&matcher, options, &doc_terms);
                    let ct = matcher.concept_term[ci as usize];
                    // The same concept already covers this position (e.g.
                    // "sparse mixture of experts" then "mixture of experts").
                    let covered = occ_buf.iter().rev().take(8).any(|&(t, o)| {
                        t == ct
                            && o.field == f as u8
                            && (o.start as u32) <= start
                            && start <= o.end as u32
                    });
                    if !covered {
                        let cl = |x: u32| x.min(u16::MAX as u32) as u16;
                        occ_buf.push((
                            ct,
                            Occ {
                                field: f as u8,
                                start: cl(start),
                                end: cl(end),
                            },
                        ));
                        if !concepts.contains(&(ct, vi)) {
                            concepts.push((ct, vi));
                        }
                    }
                });
            }
            concepts.sort_by_key(|&(t, _)| t);
            occ_buf.sort_unstable_by_key(|&(t, o)| (t, o.field, o.start));
            let mut i = 0;
            while i < occ_buf.len() {
                let t = occ_buf[i].0;
                let tp = &mut terms[t as usize];
                let mut tf = [0u16; FIELDS];
                let occ_start = tp.occs.len() as u32;
                while i < occ_buf.len() && occ_buf[i].0 == t {
                    let o = occ_buf[i].1;
                    tf[o.field as usize] = tf[o.field as usize].saturating_add(1);
                    tp.occs.push(o);
                    i += 1;
                }
                tp.postings.push(Posting { doc, tf, occ_start });
            }

            for a in &p.authors {
                if let Some(key) = AuthorKey::parse(a) {
                    authors
                        .entry(key.surname.clone())
                        .or_default()
                        .push((doc, key, a.clone()));
                }
            }
            docs.push(Doc {
                index,
                id: p.id.clone(),
                categories: p
                    .categories
                    .iter()
                    .map(|c| c.to_ascii_lowercase())
                    .collect(),
                trending: trending(c, now, params.span),
                concepts,
            });
        }

        let mut families: HashMap<String, Vec<u32>> = HashMap::new();
        for (t, key) in derived_from {
            if let Some(key) = key {
                families.entry(key).or_default().push(t);
            }
        }
        for members in families.values_mut() {
            members.sort_unstable();
        }

        let mut field_factor = vec![[0f32; FIELDS]; docs.len()];
        // Field length normalisation, averaged over papers having the field
        // (arXiv papers have no `ai_keywords`).
        for f in 0..FIELDS {
            let (sum, n) = lens
                .iter()
                .filter(|l| l[f] > 0)
                .fold((0u64, 0u64), |(s, n), l| (s + l[f] as u64, n + 1));
            let avg = if n == 0 { 1.0 } else { sum as f32 / n as f32 };
            for (ff, l) in field_factor.iter_mut().zip(&lens) {
                let b = params.field_b[f];
                ff[f] = params.field_weights[f] / (1.0 - b + b * l[f] as f32 / avg);
            }
        }

        let mut by_trending: Vec<u32> = (0..docs.len() as u32).collect();
        by_trending.sort_by(|&a, &b| {
            let (da, db) = (&docs[a as usize], &docs[b as usize]);
            db.trending
                .score
                .total_cmp(&da.trending.score)
                .then_with(|| da.id.cmp(&db.id))
        });

        CandidateIndex {
            params,
            stemming,
            vocab,
            terms,
            docs,
            families,
            surfaces,
            field_factor,
            matcher,
            synonyms: synonyms.clone(),
            authors,
            by_trending,
            topic_cache: RwLock::new(HashMap::new()),
            excluded_cache: RwLock::new(HashMap::new()),
            cache_bytes: AtomicUsize::new(0),
            lexical: OnceLock::new(),
            dense: None,
            semantic: Default::default(),
        }
    }

    /// Number of distinct candidate papers indexed.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Number of distinct topics scored so far in this run.
    pub fn cached_topics(&self) -> usize {
        self.topic_cache.read().map(|m| m.len()).unwrap_or(0)
    }

    /// Analyses a topic: tokens, stems, and synonym phrases replaced by
    /// their concept (longest first; a homonym resolved by the topic's own
    /// words, else the concept listed first).
    pub(crate) fn analyse_query(&self, text: &str) -> Query {
        let mut toks: Vec<Tok> = Vec::new();
        let mut surfaces: Vec<String> = Vec::new();
        let mut forms: Vec<Vec<u32>> = Vec::new();
        let mut next = 0u32;
        for_each_token(text, |tok, _| {
            if is_stop_word(tok) {
                return;
            }
            let term = self
                .vocab
                .get(&self.stemming.term(tok))
                .copied()
                .unwrap_or(UNKNOWN);
            toks.push(Tok { pos: next, term });
            surfaces.push(tok.to_string());
            forms.push(self.derived_forms(tok, term));
            next += 1;
        });
        let own: std::collections::HashSet<u32> = toks.iter().map(|t| t.term).collect();
        // (start index, end index, concept, variant), greedy longest.
        let mut spans: Vec<(usize, usize, (u16, u16))> = Vec::new();
        for_each_concept(&self.matcher, &toks, true, |start, end, options| {
            let cv = resolve(&self.matcher, options, &own);
            spans.push((start as usize, end as usize, cv));
        });
        let mut terms: Vec<QTerm> = Vec::new();
        let mut sequence = Vec::new();
        let mut i = 0;
        while i < toks.len() {
            let (qt, next_i) = match spans.iter().find(|s| s.0 == i) {
                Some(&(s, e, (ci, vi))) => (
                    QTerm {
                        term: self.matcher.concept_term[ci as usize],
                        variants: Vec::new(),
                        surface: surfaces[s..=e].join(" "),
                        concept: Some((ci, vi)),
                    },
                    e + 1,
                ),
                None => (
                    QTerm {
                        term: toks[i].term,
                        variants: std::mem::take(&mut forms[i]),
                        surface: surfaces[i].clone(),
                        concept: None,
                    },
                    i + 1,
                ),
            };
            let at = match terms
                .iter()
                .position(|t| t.term == qt.term && qt.term != UNKNOWN)
            {
                Some(at) => at,
                None if terms.len() < MAX_QUERY_TERMS => {
                    terms.push(qt);
                    terms.len() - 1
                }
                None => break,
            };
            sequence.push(at);
            i = next_i;
        }
        Query { terms, sequence }
    }

    /// The other terms of a topic token's derivational family that
    /// candidates use.
    fn derived_forms(&self, token: &str, term: u32) -> Vec<u32> {
        let key = self.stemming.family(token);
        let plain = self.vocab.get(&key).copied();
        let derived = self.families.get(&key).map(Vec::as_slice).unwrap_or(&[]);
        let mut out: Vec<u32> = plain
            .into_iter()
            .chain(derived.iter().copied())
            .filter(|&t| t != term && !self.postings(t).is_empty())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    fn idf(&self, term: u32) -> f32 {
        self.idf_of_df(self.postings(term).len())
    }

    fn idf_of_df(&self, df: usize) -> f32 {
        let (n, df) = (self.docs.len() as f32, df as f32);
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// The evidence a topic term can give: the IDF of the term, or, for a
    /// term only derived forms of occur, of those forms together. `None`
    /// for a word no candidate uses in any form.
    fn term_idf(&self, qt: &QTerm) -> Option<f32> {
        if !self.postings(qt.term).is_empty() {
            return Some(self.idf(qt.term));
        }
        let mut docs: Vec<u32> = qt
            .variants
            .iter()
            .flat_map(|&v| self.postings(v).iter().map(|p| p.doc))
            .collect();
        docs.sort_unstable();
        docs.dedup();
        (!docs.is_empty()).then(|| self.idf_of_df(docs.len()))
    }

    fn postings(&self, term: u32) -> &[Posting] {
        if term == UNKNOWN {
            return &[];
        }
        &self.terms[term as usize].postings
    }

    fn posting(&self, term: u32, doc: u32) -> Option<&Posting> {
        let p = self.postings(term);
        p.binary_search_by_key(&doc, |p| p.doc).ok().map(|i| &p[i])
    }

    fn occs(&self, term: u32, p: &Posting) -> &[Occ] {
        let n: u32 = p.tf.iter().map(|&t| t as u32).sum();
        &self.terms[term as usize].occs[p.occ_start as usize..(p.occ_start + n) as usize]
    }

    /// Occurrences of the query's whole sequence in `doc`, per field.
    fn phrase_tf(&self, q: &Query, doc: u32) -> [u16; FIELDS] {
        let mut tf = [0u16; FIELDS];
        let mut seq: [&[Occ]; MAX_PHRASE] = [&[]; MAX_PHRASE];
        let n = q.sequence.len().min(MAX_PHRASE);
        for (slot, &i) in seq.iter_mut().zip(&q.sequence) {
            let t = q.terms[i].term;
            match self.posting(t, doc) {
                Some(p) => *slot = self.occs(t, p),
                None => return tf,
            }
        }
        let Some((first, rest)) = seq[..n].split_first() else {
            return tf;
        };
        'start: for o in first.iter() {
            let mut at = *o;
            for occs in rest {
                let want = (at.field, at.end as u32 + 1);
                match occs.binary_search_by_key(&want, |x| (x.field, x.start as u32)) {
                    Ok(j) => at = occs[j],
                    Err(_) => continue 'start,
                }
            }
            tf[o.field as usize] = tf[o.field as usize].saturating_add(1);
        }
        tf
    }

    fn field_tf(&self, doc: u32, tf: &[u16; FIELDS]) -> f32 {
        let ff = &self.field_factor[doc as usize];
        (0..FIELDS).map(|f| tf[f] as f32 * ff[f]).sum()
    }

    /// Scores a topic against every candidate: BM25F over its terms (and,
    /// where a paper lacks a term, its derived forms at
    /// `variant_weight`) plus a phrase component, normalised by the
    /// topic's ideal score. Only papers that match the topic (see
    /// `RankParams::min_coverage`) are returned.
    pub(crate) fn score_topic(&self, text: &str) -> TopicHits {
        let query = self.analyse_query(text);
        let p = &self.params;
        let idfs: Vec<Option<f32>> = query.terms.iter().map(|t| self.term_idf(t)).collect();
        let known: Vec<f32> = idfs.iter().flatten().copied().collect();
        let mut hits = Vec::new();
        if known.is_empty() {
            return TopicHits { query, hits };
        }
        let known_sum: f32 = known.iter().sum();
        // A word no candidate uses weighs as the topic's average word.
        let unknown = (query.terms.len() - known.len()) as f32;
        let mass = known_sum + unknown * known_sum / known.len() as f32;
        let multi = query.sequence.len() > 1;
        let phrase_idf = if multi {
            p.phrase_weight * known_sum
        } else {
            0.0
        };
        let ideal = known_sum + phrase_idf;
        let all_mask: u32 = (1u32 << query.terms.len()) - 1;
        if ideal <= 0.0 {
            return TopicHits { query, hits };
        }
        SCRATCH.with(|s| {
            let s = &mut *s.borrow_mut();
            if s.acc.len() < self.docs.len() {
                s.acc.resize(self.docs.len(), 0.0);
                s.cov.resize(self.docs.len(), 0.0);
                s.mask.resize(self.docs.len(), 0);
                s.variant.resize(self.docs.len(), 0);
            }
            for (i, qt) in query.terms.iter().enumerate() {
                if let Some(idf) = idfs[i] {
                    self.accumulate_term(s, i, qt, idf);
                }
            }
            // Hits must come out by document: scan the dense arrays when
            // most documents were touched, else sort the touched list.
            if s.touched.len() > self.docs.len() / 8 {
                s.touched.clear();
                s.touched
                    .extend((0..self.docs.len() as u32).filter(|&d| s.mask[d as usize] != 0));
            } else {
                s.touched.sort_unstable();
            }
            for &d in &s.touched {
                let di = d as usize;
                let (score, cov, mask, variant) = (s.acc[di], s.cov[di], s.mask[di], s.variant[di]);
                (s.acc[di], s.cov[di], s.mask[di], s.variant[di]) = (0.0, 0.0, 0, 0);
                let coverage = cov / mass;
                if coverage <= p.min_coverage {
                    continue;
                }
                // One word of several: `score / cov` is its saturation.
                let alone = query.terms.len() > 1 && mask.count_ones() == 1;
                if alone && score <= p.partial_min_saturation * cov {
                    continue;
                }
                let mut total = score * coverage * coverage;
                let mut mask = mask;
                if multi && mask == all_mask && variant == 0 {
                    let ptf = self.field_tf(d, &self.phrase_tf(&query, d));
                    if ptf > 0.0 {
                        total += phrase_idf * ptf / (p.k1 + ptf);
                        mask |= PHRASE_BIT;
                    }
                }
                hits.push(Hit {
                    doc: d,
                    rel: total / ideal,
                    mask,
                    variant,
                });
            }
            s.touched.clear();
        });
        TopicHits { query, hits }
    }

    /// Adds topic term `i` (worth `idf`) to the scratch scores: its own
    /// postings, then its derived forms in papers that lack it, each paper
    /// keeping its best form.
    fn accumulate_term(&self, s: &mut Scratch, i: usize, qt: &QTerm, idf: f32) {
        let k1 = self.params.k1;
        let bit = 1u32 << i;
        for post in self.postings(qt.term) {
            let d = post.doc as usize;
            if s.mask[d] == 0 {
                s.touched.push(post.doc);
            }
            let tf = self.field_tf(post.doc, &post.tf);
            s.acc[d] += idf * tf / (k1 + tf);
            s.cov[d] += idf;
            s.mask[d] |= bit;
        }
        if qt.variants.is_empty() || self.params.variant_weight <= 0.0 {
            return;
        }
        s.forms.clear();
        for &v in &qt.variants {
            let evidence = self.params.variant_weight * idf.min(self.idf(v));
            for post in self.postings(v) {
                if s.mask[post.doc as usize] & bit != 0 {
                    continue;
                }
                let tf = self.field_tf(post.doc, &post.tf);
                s.forms
                    .push((post.doc, evidence * tf / (k1 + tf), evidence));
            }
        }
        // Best form per paper: by document, then score descending.
        s.forms
            .sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
        let mut last = None;
        for j in 0..s.forms.len() {
            let (doc, score, evidence) = s.forms[j];
            if last == Some(doc) {
                continue;
            }
            last = Some(doc);
            let d = doc as usize;
            if s.mask[d] == 0 {
                s.touched.push(doc);
            }
            s.acc[d] += score;
            s.cov[d] += evidence;
            s.mask[d] |= bit;
            s.variant[d] |= bit;
        }
    }

    /// Documents containing an excluded word or phrase (synonyms
    /// included: excluding "LLM" excludes "large language model").
    fn excluded_docs(&self, text: &str) -> DocSet {
        let q = self.analyse_query(text);
        let mut bits = vec![0u64; self.docs.len().div_ceil(64)];
        if let Some(first) = q.terms.first() {
            'doc: for post in self.postings(first.term) {
                for t in &q.terms[1..] {
                    if self.posting(t.term, post.doc).is_none() {
                        continue 'doc;
                    }
                }
                if q.sequence.len() > 1 && self.phrase_tf(&q, post.doc).iter().all(|&n| n == 0) {
                    continue;
                }
                bits[post.doc as usize / 64] |= 1 << (post.doc % 64);
            }
        }
        DocSet(bits)
    }

    /// The cached hits of a topic, scoring it on first use.
    pub(crate) fn topic(&self, text: &str) -> Arc<TopicHits> {
        let key = cache_key(text);
        if let Some(h) = self
            .topic_cache
            .read()
            .ok()
            .and_then(|m| m.get(&key).cloned())
        {
            return h;
        }
        let hits = Arc::new(self.fuse_dense(&key, self.score_topic(text)));
        let size = key.len()
            + 64
            + hits.hits.len() * std::mem::size_of::<Hit>()
            + 96 * hits.query.terms.len();
        if self.cache_bytes.load(Ordering::Relaxed) + size <= self.params.cache_budget_bytes {
            if let Ok(mut m) = self.topic_cache.write() {
                self.cache_bytes.fetch_add(size, Ordering::Relaxed);
                return m.entry(key).or_insert(hits).clone();
            }
        }
        hits
    }

    /// Drops every cached topic result (the dense side changed).
    pub(crate) fn clear_topic_cache(&self) {
        if let Ok(mut m) = self.topic_cache.write() {
            m.clear();
        }
    }

    /// Drops the cached result of one topic (its vector changed).
    pub(crate) fn forget_topic(&self, key: &str) {
        if let Ok(mut m) = self.topic_cache.write() {
            m.remove(key);
        }
    }

    /// The cached document set of an excluded entry.
    pub(crate) fn excluded(&self, text: &str) -> Arc<DocSet> {
        let key = cache_key(text);
        if let Some(h) = self
            .excluded_cache
            .read()
            .ok()
            .and_then(|m| m.get(&key).cloned())
        {
            return h;
        }
        let set = Arc::new(self.excluded_docs(text));
        let size = key.len() + 64 + set.0.len() * 8;
        if self.cache_bytes.load(Ordering::Relaxed) + size <= self.params.cache_budget_bytes {
            if let Ok(mut m) = self.excluded_cache.write() {
                self.cache_bytes.fetch_add(size, Ordering::Relaxed);
                return m.entry(key).or_insert(set).clone();
            }
        }
        set
    }

    /// Documents by a followed author, with the name as the paper prints it.
    pub(crate) fn author_docs(&self, followed: &str, out: &mut Vec<(u32, String)>) {
        let Some(key) = AuthorKey::parse(followed) else {
            return;
        };
        if let Some(list) = self.authors.get(&key.surname) {
            for (doc, k, printed) in list {
                if key.matches(k) {
                    out.push((*doc, printed.clone()));
                }
            }
        }
    }

    /// The paper's word for a topic term it matched only in a derived
    /// form ("instability" for "stability").
    pub(crate) fn derived_word(&self, qt: &QTerm, doc: u32) -> String {
        qt.variants
            .iter()
            .find(|&&v| self.posting(v, doc).is_some())
            .and_then(|v| self.surfaces.get(v))
            .map_or_else(|| qt.surface.clone(), |w| w.to_string())
    }

    /// The words to show for a matched query term in a document: for a
    /// concept, the topic's own wording if the paper uses it, else the
    /// first wording the paper uses; for a plain term, the topic's word.
    pub(crate) fn display_word(&self, qt: &QTerm, doc: u32) -> String {
        if let Some((ci, own)) = qt.concept {
            let ct = self.matcher.concept_term[ci as usize];
            let used: Vec<u16> = self.docs[doc as usize]
                .concepts
                .iter()
                .filter(|&&(t, _)| t == ct)
                .map(|&(_, v)| v)
                .collect();
            let variants = &self.synonyms.concepts[ci as usize].variants;
            if used.contains(&own) {
                return variants[own as usize].display.clone();
            }
            if let Some(&v) = used.first() {
                return variants[v as usize].display.clone();
            }
        }
        qt.surface.clone()
    }
}

/// Paper vectors for feedback (see `vectors.rs`).
impl CandidateIndex {
    pub(crate) fn vocab_len(&self) -> usize {
        self.terms.len()
    }

    /// The documents' unit TF-IDF vectors, built once per index.
    pub(crate) fn lexical_vectors(&self) -> &super::vectors::LexicalVectors {
        self.lexical.get_or_init(|| {
            let mut docs: Vec<Vec<(u32, f32)>> = vec![Vec::new(); self.docs.len()];
            for (t, tp) in self.terms.iter().enumerate() {
                if tp.postings.is_empty() {
                    continue;
                }
                let idf = self.idf(t as u32);
                for post in &tp.postings {
                    let tf = self.field_tf(post.doc, &post.tf);
                    docs[post.doc as usize].push((t as u32, idf * tf / (self.params.k1 + tf)));
                }
            }
            let by_id = self
                .docs
                .iter()
                .enumerate()
                .map(|(i, d)| (d.id.clone(), i as u32))
                .collect();
            super::vectors::LexicalVectors::new(docs, by_id)
        })
    }

    /// The unit TF-IDF vector of a paper that is not a candidate (an older
    /// liked paper), over the candidates' vocabulary and statistics: words
    /// no candidate uses cannot make it similar to one, so they are
    /// dropped. Synonym concepts are not matched here.
    pub(crate) fn text_vector(&self, paper: &crate::domain::Paper) -> Vec<(u32, f32)> {
        let mut tf: HashMap<u32, f32> = HashMap::new();
        let w = self.params.field_weights;
        let mut add = |text: &str, weight: f32| {
            for_each_token(text, |tok, _| {
                if is_stop_word(tok) {
                    return;
                }
                if let Some(&t) = self.vocab.get(&self.stemming.term(tok)) {
                    *tf.entry(t).or_default() += weight;
                }
            });
        };
        add(&paper.title, w[TITLE]);
        add(&paper.abstract_text, w[ABSTRACT]);
        for k in &paper.ai_keywords {
            add(k, w[KEYWORDS]);
        }
        for name in crate::domain::subject_names(&paper.categories) {
            add(&name, w[SUBJECTS]);
        }
        let mut v: Vec<(u32, f32)> = tf
            .into_iter()
            .map(|(t, tf)| (t, self.idf(t) * tf / (self.params.k1 + tf)))
            .collect();
        v.sort_unstable_by_key(|&(t, _)| t);
        v
    }

    /// Attaches one unit embedding per candidate (indexed like the
    /// `candidates` slice the index was built from), so feedback ranks
    /// by meaning instead of by words. `None` entries fall back to words.
    pub fn with_embeddings(mut self, per_candidate: &[Option<Arc<[f32]>>]) -> CandidateIndex {
        self.dense = Some(
            self.docs
                .iter()
                .map(|d| per_candidate.get(d.index).cloned().flatten())
                .collect(),
        );
        self
    }
}

/// Lower case, single spaces: "Speculative  Decoding" and "speculative
/// decoding" share a cache entry.
pub(crate) fn cache_key(text: &str) -> String {
    let mut key = String::with_capacity(text.len());
    for w in text.split_whitespace() {
        if !key.is_empty() {
            key.push(' ');
        }
        key.extend(w.chars().flat_map(char::to_lowercase));
    }
    key
}

/// Calls `found(start, end, options)` for synonym phrases in `toks`:
/// every match at every start (`greedy` false, for documents), or the
/// longest match then skipping past it (`greedy` true, for topics).
/// Positions are token indices when `greedy`, word positions otherwise.
fn for_each_concept(
    m: &Matcher,
    toks: &[Tok],
    greedy: bool,
    mut found: impl FnMut(u32, u32, &[(u16, u16)]),
) {
    let mut key: Vec<u32> = Vec::with_capacity(MAX_VARIANT_WORDS);
    let mut i = 0;
    while i < toks.len() {
        let Some(&max) = m.starts.get(&toks[i].term) else {
            i += 1;
            continue;
        };
        key.clear();
        let mut best: Option<(usize, &[(u16, u16)])> = None;
        for j in i..toks.len().min(i + max) {
            if j > i && toks[j].pos != toks[j - 1].pos + 1 {
                break;
            }
            key.push(toks[j].term);
            if let Some(opts) = m.variants.get(key.as_slice()) {
                if greedy {
                    best = Some((j, opts));
                } else {
                    found(toks[i].pos, toks[j].pos, opts);
                }
            }
        }
        match best {
            Some((j, opts)) => {
                found(i as u32, j as u32, opts);
                i = j + 1;
            }
            None => i += 1,
        }
    }
}

/// Picks the concept a (possibly ambiguous) phrase means in a text with
/// the given terms: the most context cues present, ties and no cues to
/// the concept listed first.
fn resolve(
    m: &Matcher,
    options: &[(u16, u16)],
    text_terms: &std::collections::HashSet<u32>,
) -> (u16, u16) {
    if options.len() == 1 {
        return options[0];
    }
    let cues = |ci: u16| {
        m.context[ci as usize]
            .iter()
            .filter(|cue| cue.iter().all(|t| text_terms.contains(t)))
            .count()
    };
    let mut best = options[0];
    let mut best_n = cues(best.0);
    for &o in &options[1..] {
        let n = cues(o.0);
        if n > best_n || (n == best_n && o.0 < best.0) {
            best = o;
            best_n = n;
        }
    }
    best
}
