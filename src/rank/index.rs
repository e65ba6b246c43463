//! The per-run index over candidate papers: analysed fields, positional
//! postings, BM25F statistics and trending scores, plus the caches that
//! let many subscribers share the work of scoring the same topic.
//!
//! Built by `build.rs`; topics are scored by `score.rs` and fused with the
//! dense side by `dense.rs`.

use super::authors::AuthorKey;
use super::dense::Dense;
pub(crate) use super::doc::Doc;
use super::hits::{DocSet, Hit, QTerm, TopicHits};
use super::matcher::Matcher;
use super::params::RankParams;
use super::synonyms::Synonyms;
use super::text::{for_each_token, is_stop_word, Stemming};
use super::vectors::LexicalVectors;
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
pub(super) const FIELDS: usize = 4;

/// Term id that matches nothing (a topic word no candidate contains).
pub(super) const UNKNOWN: u32 = u32::MAX;

/// One occurrence of a term in a document: field and word span (a synonym
/// phrase spans several positions).
#[derive(Debug, Clone, Copy)]
pub(super) struct Occ {
    pub(super) field: u8,
    pub(super) start: u16,
    pub(super) end: u16,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Posting {
    pub(super) doc: u32,
    pub(super) tf: [u16; FIELDS],
    /// Occurrences are `occs[occ_start .. occ_start + tf.sum()]`, sorted
    /// by field then start.
    pub(super) occ_start: u32,
}

#[derive(Debug, Default)]
pub(super) struct TermPostings {
    pub(super) postings: Vec<Posting>,
    pub(super) occs: Vec<Occ>,
}

/// Everything a digest run needs about today's candidates. Build it once
/// per run, share it (it is `Send + Sync`; wrap it in an `Arc` for tasks),
/// and call [`CandidateIndex::rank`] per subscriber. Topic and
/// excluded-word results are cached inside, so each distinct topic is
/// scored once per run however many subscribers share it.
pub struct CandidateIndex {
    pub(crate) params: RankParams,
    pub(super) stemming: Stemming,
    pub(super) vocab: HashMap<String, u32>,
    pub(super) terms: Vec<TermPostings>,
    pub(crate) docs: Vec<Doc>,
    /// Derived-form terms by family key (`text::Stemming::family`); the
    /// term equal to the key, if any, is the family's plain form.
    pub(super) families: HashMap<String, Vec<u32>>,
    /// A word of the candidates for each term, for reasons.
    pub(super) surfaces: HashMap<u32, Box<str>>,
    /// Per document, `w_f / (1 - b_f + b_f · len_f / avglen_f)` for each
    /// field (kept apart from `docs` for cache locality when scoring).
    pub(super) field_factor: Vec<[f32; FIELDS]>,
    pub(super) matcher: Matcher,
    pub(crate) synonyms: Synonyms,
    /// Surname → (doc, author key, author as printed).
    pub(super) authors: HashMap<String, Vec<(u32, AuthorKey, String)>>,
    /// Documents by trending score, hottest first (ties by id).
    pub(crate) by_trending: Vec<u32>,
    pub(super) topic_cache: RwLock<HashMap<String, Arc<TopicHits>>>,
    pub(super) excluded_cache: RwLock<HashMap<String, Arc<DocSet>>>,
    pub(super) cache_bytes: AtomicUsize,
    /// Unit TF-IDF vectors of the documents, built on the first ranking
    /// with feedback (readers without feedback never pay for them).
    pub(super) lexical: OnceLock<LexicalVectors>,
    /// Unit embeddings per document, when the candidates carry them.
    pub(crate) dense: Option<Vec<Option<Arc<[f32]>>>>,
    /// Paper and topic vectors for the dense side (see `dense.rs`).
    pub(crate) semantic: Dense,
}

impl std::fmt::Debug for CandidateIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CandidateIndex")
            .field("docs", &self.docs.len())
            .field("terms", &self.terms.len())
            .finish()
    }
}

pub(super) fn intern(
    vocab: &mut HashMap<String, u32>,
    terms: &mut Vec<TermPostings>,
    t: &str,
) -> u32 {
    if let Some(&id) = vocab.get(t) {
        return id;
    }
    let id = terms.len() as u32;
    vocab.insert(t.to_string(), id);
    terms.push(TermPostings::default());
    id
}

impl CandidateIndex {
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

    pub(super) fn idf(&self, term: u32) -> f32 {
        self.idf_of_df(self.postings(term).len())
    }

    pub(super) fn idf_of_df(&self, df: usize) -> f32 {
        let (n, df) = (self.docs.len() as f32, df as f32);
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    pub(super) fn postings(&self, term: u32) -> &[Posting] {
        if term == UNKNOWN {
            return &[];
        }
        &self.terms[term as usize].postings
    }

    pub(super) fn posting(&self, term: u32, doc: u32) -> Option<&Posting> {
        let p = self.postings(term);
        p.binary_search_by_key(&doc, |p| p.doc).ok().map(|i| &p[i])
    }

    pub(super) fn occs(&self, term: u32, p: &Posting) -> &[Occ] {
        let n: u32 = p.tf.iter().map(|&t| t as u32).sum();
        &self.terms[term as usize].occs[p.occ_start as usize..(p.occ_start + n) as usize]
    }

    pub(super) fn field_tf(&self, doc: u32, tf: &[u16; FIELDS]) -> f32 {
        let ff = &self.field_factor[doc as usize];
        (0..FIELDS).map(|f| tf[f] as f32 * ff[f]).sum()
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
        let lexical = self.score_topic(text);
        let hits = Arc::new(self.semantic.fuse(&key, lexical, &self.docs));
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
    pub(crate) fn lexical_vectors(&self) -> &LexicalVectors {
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
            LexicalVectors::new(docs, by_id)
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
