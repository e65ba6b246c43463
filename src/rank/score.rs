//! Scoring topics against the index: a topic's words analysed into terms
//! (synonym phrases into concepts), BM25F with a phrase component and
//! derived forms, and the documents an excluded entry removes.

use super::hits::{DocSet, Hit, QTerm, Query, TopicHits, MAX_QUERY_TERMS, PHRASE_BIT};
use super::index::{CandidateIndex, Occ, FIELDS, UNKNOWN};
use super::matcher::{for_each_concept, resolve, Tok};
use super::text::{for_each_token, is_stop_word};
use std::cell::RefCell;
use std::collections::HashSet;

/// Phrases are matched on at most this many words.
const MAX_PHRASE: usize = 32;

/// Per-document accumulators of one topic, reused across topics (one
/// per thread).
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

impl Scratch {
    /// Grows the per-document arrays to `docs` entries.
    fn fit(&mut self, docs: usize) {
        if self.acc.len() < docs {
            self.acc.resize(docs, 0.0);
            self.cov.resize(docs, 0.0);
            self.mask.resize(docs, 0);
            self.variant.resize(docs, 0);
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// What a topic's matches are measured against.
struct TopicWeights {
    /// Per topic term, the evidence it can give (`None`: no candidate
    /// uses it in any form).
    idfs: Vec<Option<f32>>,
    /// The topic's IDF mass; a word no candidate uses counts as its
    /// average word.
    mass: f32,
    /// Weight of the whole-phrase match (0 for a one-word topic).
    phrase_idf: f32,
    /// The score of a paper with every word, as a phrase.
    ideal: f32,
}

/// One document's accumulated evidence for a topic.
#[derive(Clone, Copy)]
struct Accumulated {
    score: f32,
    /// IDF evidence of the topic words matched.
    cov: f32,
    /// Bit `i`: term `i` occurs.
    mask: u32,
    /// Bit `i`: term `i` occurs only as a derived form.
    variant: u32,
}

impl CandidateIndex {
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
        let own: HashSet<u32> = toks.iter().map(|t| t.term).collect();
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

    /// Scores a topic against every candidate: BM25F over its terms (and,
    /// where a paper lacks a term, its derived forms at
    /// `variant_weight`) plus a phrase component, normalised by the
    /// topic's ideal score. Only papers that match the topic (see
    /// `RankParams::min_coverage`) are returned.
    pub(crate) fn score_topic(&self, text: &str) -> TopicHits {
        let query = self.analyse_query(text);
        let Some(weights) = self.topic_weights(&query) else {
            return TopicHits {
                query,
                hits: Vec::new(),
            };
        };
        let hits = SCRATCH.with(|s| {
            let s = &mut *s.borrow_mut();
            s.fit(self.docs.len());
            for (i, qt) in query.terms.iter().enumerate() {
                if let Some(idf) = weights.idfs[i] {
                    self.accumulate_term(s, i, qt, idf);
                }
            }
            self.drain_hits(s, &query, &weights)
        });
        TopicHits { query, hits }
    }

    /// What a topic's matches are measured against; `None` when no
    /// candidate uses any of its words.
    fn topic_weights(&self, query: &Query) -> Option<TopicWeights> {
        let idfs: Vec<Option<f32>> = query.terms.iter().map(|t| self.term_idf(t)).collect();
        let known: Vec<f32> = idfs.iter().flatten().copied().collect();
        if known.is_empty() {
            return None;
        }
        let known_sum: f32 = known.iter().sum();
        // A word no candidate uses weighs as the topic's average word.
        let unknown = (query.terms.len() - known.len()) as f32;
        let mass = known_sum + unknown * known_sum / known.len() as f32;
        let phrase_idf = if query.sequence.len() > 1 {
            self.params.phrase_weight * known_sum
        } else {
            0.0
        };
        let ideal = known_sum + phrase_idf;
        (ideal > 0.0).then_some(TopicWeights {
            idfs,
            mass,
            phrase_idf,
            ideal,
        })
    }

    /// The accumulated scores as hits, by document, leaving the scratch
    /// clean for the next topic.
    fn drain_hits(&self, s: &mut Scratch, query: &Query, w: &TopicWeights) -> Vec<Hit> {
        // Hits must come out by document: scan the dense arrays when
        // most documents were touched, else sort the touched list.
        if s.touched.len() > self.docs.len() / 8 {
            s.touched.clear();
            s.touched
                .extend((0..self.docs.len() as u32).filter(|&d| s.mask[d as usize] != 0));
        } else {
            s.touched.sort_unstable();
        }
        let mut hits = Vec::new();
        for &d in &s.touched {
            let di = d as usize;
            let acc = Accumulated {
                score: s.acc[di],
                cov: s.cov[di],
                mask: s.mask[di],
                variant: s.variant[di],
            };
            (s.acc[di], s.cov[di], s.mask[di], s.variant[di]) = (0.0, 0.0, 0, 0);
            hits.extend(self.judge(d, acc, query, w));
        }
        s.touched.clear();
        hits
    }

    /// Document `d`'s hit, or `None` when its words cover too little of
    /// the topic or it has one word of several only in passing.
    fn judge(&self, d: u32, acc: Accumulated, query: &Query, w: &TopicWeights) -> Option<Hit> {
        let p = &self.params;
        let coverage = acc.cov / w.mass;
        if coverage <= p.min_coverage {
            return None;
        }
        // One word of several: `score / cov` is its saturation.
        let alone = query.terms.len() > 1 && acc.mask.count_ones() == 1;
        if alone && acc.score <= p.partial_min_saturation * acc.cov {
            return None;
        }
        let mut total = acc.score * coverage * coverage;
        let mut mask = acc.mask;
        let all_mask: u32 = (1u32 << query.terms.len()) - 1;
        if query.sequence.len() > 1 && mask == all_mask && acc.variant == 0 {
            let ptf = self.field_tf(d, &self.phrase_tf(query, d));
            if ptf > 0.0 {
                total += w.phrase_idf * ptf / (p.k1 + ptf);
                mask |= PHRASE_BIT;
            }
        }
        Some(Hit {
            doc: d,
            rel: total / w.ideal,
            mask,
            variant: acc.variant,
        })
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
    pub(super) fn excluded_docs(&self, text: &str) -> DocSet {
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
}
