//! Building a [`CandidateIndex`], in phases: the synonym matcher over the
//! vocabulary, then per candidate its analysed fields, its occurrences of
//! terms and concepts, and their postings; then what is derived from all
//! of them (derivational families, field length factors, the trending
//! order).

use super::authors::AuthorKey;
use super::index::{
    intern, CandidateIndex, Doc, Occ, Posting, TermPostings, ABSTRACT, FIELDS, KEYWORDS, SUBJECTS,
    TITLE,
};
use super::matcher::{for_each_concept, resolve, Matcher, Tok};
use super::params::RankParams;
use super::synonyms::Synonyms;
use super::text::{for_each_token, is_stop_word, Stemming};
use super::trending::{trending, Trending};
use crate::domain::{Candidate, Paper, PaperId};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicUsize;
use std::sync::{OnceLock, RwLock};

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
        let mut builder = Builder::new(synonyms, candidates.len());
        let mut seen: HashSet<&PaperId> = HashSet::new();
        for (index, c) in candidates.iter().enumerate() {
            if seen.insert(&c.paper.id) {
                builder.add(index, c, trending(c, now, params.span));
            }
        }
        builder.finish(synonyms, params)
    }
}

/// An index under construction: the vocabulary and postings grow as
/// candidates are analysed.
struct Builder {
    stemming: Stemming,
    vocab: HashMap<String, u32>,
    terms: Vec<TermPostings>,
    matcher: Matcher,
    /// Token → term, cached: stemming dominates analysis otherwise.
    token_terms: HashMap<String, Option<u32>>,
    /// Per term, the family its words are derived forms of; `None` once
    /// one of its words is not (so "informational" → "formational" does
    /// not drag "information" into the family of "formation").
    derived_from: HashMap<u32, Option<String>>,
    /// A word of the candidates for each term, for reasons.
    surfaces: HashMap<u32, Box<str>>,
    docs: Vec<Doc>,
    /// Tokens per field of each document.
    lens: Vec<[u32; FIELDS]>,
    authors: HashMap<String, Vec<(u32, AuthorKey, String)>>,
    /// The analysed fields of the candidate being added.
    fields: [Vec<Tok>; FIELDS],
    /// Its occurrences, by term.
    occ_buf: Vec<(u32, Occ)>,
}

impl Builder {
    fn new(synonyms: &Synonyms, candidates: usize) -> Builder {
        let mut vocab = HashMap::new();
        let mut terms = Vec::new();
        let matcher = synonym_matcher(synonyms, &mut vocab, &mut terms);
        Builder {
            stemming: synonyms.stemming.clone(),
            vocab,
            terms,
            matcher,
            token_terms: HashMap::new(),
            derived_from: HashMap::new(),
            surfaces: HashMap::new(),
            docs: Vec::with_capacity(candidates),
            lens: Vec::with_capacity(candidates),
            authors: HashMap::new(),
            fields: Default::default(),
            occ_buf: Vec::new(),
        }
    }

    /// Indexes candidate `index` as the next document.
    fn add(&mut self, index: usize, c: &Candidate, trending: Trending) {
        let doc = self.docs.len() as u32;
        let p = &c.paper;
        self.analyse_fields(p);
        let concepts = self.occurrences();
        self.post(doc);
        for a in &p.authors {
            if let Some(key) = AuthorKey::parse(a) {
                self.authors
                    .entry(key.surname.clone())
                    .or_default()
                    .push((doc, key, a.clone()));
            }
        }
        self.docs.push(Doc {
            index,
            id: p.id.clone(),
            categories: p
                .categories
                .iter()
                .map(|c| c.to_ascii_lowercase())
                .collect(),
            trending,
            concepts,
        });
    }

    /// Tokenises the paper's fields into `self.fields`. Positions restart
    /// per field; each keyword and subject name is a phrase of its own
    /// (a position is skipped between them).
    fn analyse_fields(&mut self, p: &Paper) {
        for f in self.fields.iter_mut() {
            f.clear();
        }
        self.analyse(&p.title, TITLE, &mut 0);
        self.analyse(&p.abstract_text, ABSTRACT, &mut 0);
        let mut next = 0;
        for k in &p.ai_keywords {
            self.analyse(k, KEYWORDS, &mut next);
            next += 1;
        }
        let mut next = 0;
        for name in crate::domain::subject_names(&p.categories) {
            self.analyse(&name, SUBJECTS, &mut next);
            next += 1;
        }
        self.lens
            .push([0, 1, 2, 3].map(|f| self.fields[f].len() as u32));
    }

    /// Appends the terms of `text` to `field`, from position `next`.
    fn analyse(&mut self, text: &str, field: usize, next: &mut u32) {
        for_each_token(text, |tok, gap| {
            let term = self.term_of(tok);
            if gap {
                *next += 1;
            }
            if let Some(term) = term {
                self.fields[field].push(Tok { pos: *next, term });
                *next += 1;
            }
        });
    }

    /// The term of a token (`None` for a stop word), interned on first
    /// sight with the word shown for it and its derivational family.
    fn term_of(&mut self, tok: &str) -> Option<u32> {
        if let Some(t) = self.token_terms.get(tok) {
            return *t;
        }
        let t = (!is_stop_word(tok)).then(|| {
            let stem = self.stemming.term(tok);
            let t = intern(&mut self.vocab, &mut self.terms, &stem);
            self.surfaces.entry(t).or_insert_with(|| tok.into());
            let key = self.stemming.derived_family(tok, &stem);
            self.derived_from
                .entry(t)
                .and_modify(|k| {
                    if *k != key {
                        *k = None;
                    }
                })
                .or_insert(key);
            t
        });
        self.token_terms.insert(tok.to_string(), t);
        t
    }

    /// The document's occurrences of plain terms, then of concepts, into
    /// `occ_buf`. Returns each (concept term, variant) it uses, by term.
    fn occurrences(&mut self) -> Vec<(u32, u16)> {
        self.occ_buf.clear();
        for (f, toks) in self.fields.iter().enumerate() {
            for t in toks {
                let pos = t.pos.min(u16::MAX as u32) as u16;
                let occ = Occ {
                    field: f as u8,
                    start: pos,
                    end: pos,
                };
                self.occ_buf.push((t.term, occ));
            }
        }
        let mut concepts: Vec<(u32, u16)> = Vec::new();
        let doc_terms: HashSet<u32> = self.fields.iter().flatten().map(|t| t.term).collect();
        for (f, toks) in self.fields.iter().enumerate() {
            for_each_concept(&self.matcher, toks, false, |start, end, options| {
                let (ci, vi) = resolve(&self.matcher, options, &doc_terms);
                let ct = self.matcher.concept_term[ci as usize];
                // The same concept already covers this position (e.g.
                // "sparse mixture of experts" then "mixture of experts").
                let covered = self.occ_buf.iter().rev().take(8).any(|&(t, o)| {
                    t == ct
                        && o.field == f as u8
                        && (o.start as u32) <= start
                        && start <= o.end as u32
                });
                if !covered {
                    let cl = |x: u32| x.min(u16::MAX as u32) as u16;
                    let occ = Occ {
                        field: f as u8,
                        start: cl(start),
                        end: cl(end),
                    };
                    self.occ_buf.push((ct, occ));
                    if !concepts.contains(&(ct, vi)) {
                        concepts.push((ct, vi));
                    }
                }
            });
        }
        concepts.sort_by_key(|&(t, _)| t);
        concepts
    }

    /// Appends the document's occurrences to each term's postings.
    fn post(&mut self, doc: u32) {
        let occ_buf = &mut self.occ_buf;
        occ_buf.sort_unstable_by_key(|&(t, o)| (t, o.field, o.start));
        let mut i = 0;
        while i < occ_buf.len() {
            let t = occ_buf[i].0;
            let tp = &mut self.terms[t as usize];
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
    }

    /// What is derived from every document, and the index.
    fn finish(self, synonyms: &Synonyms, params: RankParams) -> CandidateIndex {
        let families = derived_families(self.derived_from);
        let field_factor = field_factors(&self.lens, &params);
        let by_trending = trending_order(&self.docs);
        CandidateIndex {
            params,
            stemming: self.stemming,
            vocab: self.vocab,
            terms: self.terms,
            docs: self.docs,
            families,
            surfaces: self.surfaces,
            field_factor,
            matcher: self.matcher,
            synonyms: synonyms.clone(),
            authors: self.authors,
            by_trending,
            topic_cache: RwLock::new(HashMap::new()),
            excluded_cache: RwLock::new(HashMap::new()),
            cache_bytes: AtomicUsize::new(0),
            lexical: OnceLock::new(),
            dense: None,
            semantic: Default::default(),
        }
    }
}

/// Synonym variants and context cues as term-id sequences.
fn synonym_matcher(
    synonyms: &Synonyms,
    vocab: &mut HashMap<String, u32>,
    terms: &mut Vec<TermPostings>,
) -> Matcher {
    let mut matcher = Matcher {
        variants: HashMap::new(),
        starts: HashMap::new(),
        concept_term: Vec::new(),
        context: Vec::new(),
    };
    for (ci, c) in synonyms.concepts.iter().enumerate() {
        let ct = intern(vocab, terms, &format!("#{}", c.name));
        matcher.concept_term.push(ct);
        for (vi, v) in c.variants.iter().enumerate() {
            let key: Vec<u32> = v.terms.iter().map(|t| intern(vocab, terms, t)).collect();
            let slot = matcher.starts.entry(key[0]).or_insert(0);
            *slot = (*slot).max(key.len());
            let entry = matcher.variants.entry(key).or_default();
            if !entry.iter().any(|&(c2, _)| c2 as usize == ci) {
                entry.push((ci as u16, vi as u16));
            }
        }
        let cues = c
            .context
            .iter()
            .map(|cue| cue.iter().map(|t| intern(vocab, terms, t)).collect())
            .collect();
        matcher.context.push(cues);
    }
    matcher
}

/// Derived-form terms by family key, each family's terms sorted.
fn derived_families(derived_from: HashMap<u32, Option<String>>) -> HashMap<String, Vec<u32>> {
    let mut families: HashMap<String, Vec<u32>> = HashMap::new();
    for (t, key) in derived_from {
        if let Some(key) = key {
            families.entry(key).or_default().push(t);
        }
    }
    for members in families.values_mut() {
        members.sort_unstable();
    }
    families
}

/// Per document and field, `w_f / (1 - b_f + b_f · len_f / avglen_f)`,
/// the average taken over papers having the field (arXiv papers have no
/// `ai_keywords`).
fn field_factors(lens: &[[u32; FIELDS]], params: &RankParams) -> Vec<[f32; FIELDS]> {
    let mut field_factor = vec![[0f32; FIELDS]; lens.len()];
    for f in 0..FIELDS {
        let (sum, n) = lens
            .iter()
            .filter(|l| l[f] > 0)
            .fold((0u64, 0u64), |(s, n), l| (s + l[f] as u64, n + 1));
        let avg = if n == 0 { 1.0 } else { sum as f32 / n as f32 };
        for (ff, l) in field_factor.iter_mut().zip(lens) {
            let b = params.field_b[f];
            ff[f] = params.field_weights[f] / (1.0 - b + b * l[f] as f32 / avg);
        }
    }
    field_factor
}

/// Documents by trending score, hottest first (ties by id).
fn trending_order(docs: &[Doc]) -> Vec<u32> {
    let mut by_trending: Vec<u32> = (0..docs.len() as u32).collect();
    by_trending.sort_by(|&a, &b| {
        let (da, db) = (&docs[a as usize], &docs[b as usize]);
        db.trending
            .score
            .total_cmp(&da.trending.score)
            .then_with(|| da.id.cmp(&db.id))
    });
    by_trending
}
