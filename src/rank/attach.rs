//! Attaching the dense side to a built index: the candidates' paper
//! vectors, topic vectors, and the text a topic is embedded from.

use super::dense::{HybridParams, PaperVectors};
use super::fields::Subjects;
use super::index::{cache_key, CandidateIndex};
use crate::domain::PaperId;
use std::sync::Arc;

impl CandidateIndex {
    /// Attaches the candidates' unit vectors (`vector_of` returns a
    /// paper's vector, `dims` long, or `None` when it has none yet) and
    /// the fusion parameters. Topics ranked from now on use the dense side
    /// when they have a vector ([`CandidateIndex::add_topic_vector`]).
    pub fn attach_vectors<'a>(
        &mut self,
        dims: usize,
        params: HybridParams,
        vector_of: impl Fn(&PaperId) -> Option<&'a [f32]>,
    ) {
        let mut data = vec![0f32; self.docs.len() * dims];
        let mut has = vec![false; self.docs.len()];
        let mut count = 0;
        for (d, doc) in self.docs.iter().enumerate() {
            if let Some(v) = vector_of(&doc.id).filter(|v| v.len() == dims) {
                data[d * dims..(d + 1) * dims].copy_from_slice(v);
                has[d] = true;
                count += 1;
            }
        }
        // The same vectors serve feedback (`with_embeddings`).
        self.dense = Some(
            (0..self.docs.len())
                .map(|d| has[d].then(|| Arc::from(&data[d * dims..(d + 1) * dims])))
                .collect(),
        );
        self.semantic.papers = Some(PaperVectors {
            dims,
            data,
            has,
            count,
        });
        self.semantic.params = params;
        self.clear_topic_cache();
    }

    /// Length of the attached vectors, if any are attached.
    pub fn vector_dims(&self) -> Option<usize> {
        self.semantic.papers.as_ref().map(|p| p.dims)
    }

    /// How many candidates have a vector.
    pub fn vectors_attached(&self) -> usize {
        self.semantic.papers.as_ref().map_or(0, |p| p.count)
    }

    /// The unit vector of the candidate at `candidate_index` (an index
    /// into the slice the index was built from, as [`super::Pick::index`]),
    /// if it has one. For feedback (Rocchio) built on top of ranking.
    pub fn paper_vector(&self, candidate_index: usize) -> Option<&[f32]> {
        let p = self.semantic.papers.as_ref()?;
        let d = self.docs.iter().position(|d| d.index == candidate_index)?;
        p.has[d].then(|| &p.data[d * p.dims..(d + 1) * p.dims])
    }

    /// The text the dense side embeds for a topic: the topic, with each
    /// abbreviation or synonym it uses spelled out from the synonym data,
    /// e.g. "RAG (retrieval-augmented generation)".
    pub fn dense_text(&self, topic: &str) -> String {
        let q = self.analyse_query(topic);
        let mut extra: Vec<&str> = Vec::new();
        for t in &q.terms {
            let Some((ci, vi)) = t.concept else { continue };
            let variants = &self.synonyms.concepts[ci as usize].variants;
            let own = variants[vi as usize].terms.len();
            // The first wording longer than the one typed spells it out.
            if let Some(v) = variants.iter().find(|v| v.terms.len() > own.max(1)) {
                if !extra.contains(&v.display.as_str()) {
                    extra.push(&v.display);
                }
            }
        }
        if extra.is_empty() {
            topic.trim().to_string()
        } else {
            format!("{} ({})", topic.trim(), extra.join(", "))
        }
    }

    /// Registers the unit vector of a topic (of its [`Self::dense_text`]).
    /// Replaces any result already computed for that topic in this index.
    pub fn add_topic_vector(&self, topic: &str, vector: Arc<[f32]>) {
        let key = cache_key(topic);
        if let Ok(mut m) = self.semantic.topics.write() {
            m.insert(key.clone(), vector);
        }
        self.forget_topic(&key);
    }

    /// Registers the unit vectors of arXiv's taxonomy (entry code, vector
    /// of its [`crate::domain::taxonomy`] text), so a topic that means a
    /// broad field covers the papers listed in its subjects. Replaces any
    /// taxonomy attached before; drops the topic results computed so far.
    pub fn add_subject_vectors(&self, entries: Vec<(String, Arc<[f32]>)>) {
        let (codes, vectors) = entries.into_iter().unzip();
        if let Ok(mut s) = self.semantic.subjects.write() {
            *s = Some(Arc::new(Subjects { codes, vectors }));
        }
        self.clear_topic_cache();
    }

    /// Each candidate's evidence for `topic` (those with a vector), as
    /// the send model sees it: what its fit learns from. Empty without a
    /// vector for the topic.
    pub fn evidence(&self, topic: &str) -> Vec<(PaperId, super::calibrate::Evidence)> {
        let lexical = self.score_topic(topic);
        self.semantic
            .evidence(&cache_key(topic), &lexical, &self.docs)
            .unwrap_or_default()
            .into_iter()
            .map(|(d, e)| (self.docs[d as usize].id.clone(), e))
            .collect()
    }

    /// Whether the taxonomy's vectors are attached.
    pub fn has_subject_vectors(&self) -> bool {
        self.semantic.subjects.read().is_ok_and(|s| s.is_some())
    }

    /// Whether a topic has a registered vector.
    pub fn has_topic_vector(&self, topic: &str) -> bool {
        let key = cache_key(topic);
        self.semantic
            .topics
            .read()
            .is_ok_and(|m| m.contains_key(&key))
    }
}
