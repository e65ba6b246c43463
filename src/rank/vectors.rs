//! "Paper vectors" for feedback: each paper as a unit vector in a space
//! where the dot product is cosine similarity. Two spaces implement
//! [`PaperSpace`]: words (TF-IDF over the run's candidate index, always
//! available) and meaning (the papers' embeddings, when the candidates
//! carry them). The feedback model in `feedback.rs` only sees the trait.

use crate::domain::PaperId;
use std::collections::HashMap;
use std::sync::Arc;

/// A sparse vector sorted by term id.
pub(crate) type Sparse = Vec<(u32, f32)>;

/// Scales a sparse vector to unit length (an empty one stays empty).
pub(crate) fn normalise(v: &mut Sparse) {
    let norm = v.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
    if norm > 0.0 {
        for (_, w) in v.iter_mut() {
            *w /= norm;
        }
    } else {
        v.clear();
    }
}

/// Dot product of two sparse vectors sorted by term.
pub(crate) fn sparse_dot(a: &[(u32, f32)], b: &[(u32, f32)]) -> f32 {
    let (mut i, mut j, mut s) = (0, 0, 0.0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                s += a[i].1 * b[j].1;
                i += 1;
                j += 1;
            }
        }
    }
    s
}

/// The candidates' unit TF-IDF vectors and a lookup by paper id.
#[derive(Debug)]
pub(crate) struct LexicalVectors {
    pub(crate) docs: Vec<Sparse>,
    pub(crate) by_id: HashMap<PaperId, u32>,
}

impl LexicalVectors {
    pub(crate) fn new(mut docs: Vec<Sparse>, by_id: HashMap<PaperId, u32>) -> LexicalVectors {
        for d in docs.iter_mut() {
            d.sort_unstable_by_key(|&(t, _)| t);
            normalise(d);
        }
        LexicalVectors { docs, by_id }
    }
}

/// A space the feedback model can work in. Items are the reader's
/// feedback papers, in the order they were given; docs are the index's
/// documents.
pub(crate) trait PaperSpace {
    /// Cosine similarities below this are noise in this space (unrelated
    /// papers share a few common words, or sit at a typical embedding
    /// angle) and count as zero.
    fn floor(&self) -> f32;
    /// Rocchio: the weighted centroid of some items, as a query; `None`
    /// when none of them has a vector.
    fn centroid(&self, items: &[(usize, f32)]) -> Option<Centroid>;
    /// Cosine similarity of a document to a centroid.
    fn doc_centroid(&self, doc: u32, c: &Centroid) -> f32;
    /// Cosine similarity of a document to one item.
    fn doc_item(&self, doc: u32, item: usize) -> f32;
}

/// A dense query vector of unit length (over the vocabulary for words,
/// over the embedding dimensions for meaning).
pub(crate) struct Centroid(Vec<f32>);

fn unit(mut v: Vec<f32>) -> Option<Centroid> {
    let norm = v.iter().map(|w| w * w).sum::<f32>().sqrt();
    if norm <= 0.0 || !norm.is_finite() {
        return None;
    }
    for w in v.iter_mut() {
        *w /= norm;
    }
    Some(Centroid(v))
}

/// Words: TF-IDF vectors over the candidate index's vocabulary.
pub(crate) struct LexicalSpace<'a> {
    pub(crate) vectors: &'a LexicalVectors,
    pub(crate) items: Vec<Sparse>,
    pub(crate) vocab_len: usize,
    pub(crate) floor: f32,
}

impl PaperSpace for LexicalSpace<'_> {
    fn floor(&self) -> f32 {
        self.floor
    }

    fn centroid(&self, items: &[(usize, f32)]) -> Option<Centroid> {
        let mut c = vec![0f32; self.vocab_len];
        for &(i, w) in items {
            for &(t, x) in &self.items[i] {
                c[t as usize] += w * x;
            }
        }
        unit(c)
    }

    fn doc_centroid(&self, doc: u32, c: &Centroid) -> f32 {
        self.vectors.docs[doc as usize]
            .iter()
            .map(|&(t, x)| x * c.0[t as usize])
            .sum()
    }

    fn doc_item(&self, doc: u32, item: usize) -> f32 {
        sparse_dot(&self.vectors.docs[doc as usize], &self.items[item])
    }
}

/// Meaning: unit embeddings of the documents and of the items.
pub(crate) struct DenseSpace<'a> {
    pub(crate) docs: &'a [Option<Arc<[f32]>>],
    pub(crate) items: Vec<Option<Arc<[f32]>>>,
    pub(crate) floor: f32,
}

fn dense_dot(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl PaperSpace for DenseSpace<'_> {
    fn floor(&self) -> f32 {
        self.floor
    }

    fn centroid(&self, items: &[(usize, f32)]) -> Option<Centroid> {
        let dim = items
            .iter()
            .find_map(|&(i, _)| self.items[i].as_ref().map(|v| v.len()))?;
        let mut c = vec![0f32; dim];
        for &(i, w) in items {
            if let Some(v) = self.items[i].as_ref().filter(|v| v.len() == dim) {
                for (c, x) in c.iter_mut().zip(v.iter()) {
                    *c += w * x;
                }
            }
        }
        unit(c)
    }

    fn doc_centroid(&self, doc: u32, c: &Centroid) -> f32 {
        self.docs[doc as usize]
            .as_ref()
            .map_or(0.0, |d| dense_dot(d, &c.0))
    }

    fn doc_item(&self, doc: u32, item: usize) -> f32 {
        match (&self.docs[doc as usize], &self.items[item]) {
            (Some(d), Some(v)) => dense_dot(d, v),
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_vectors_are_unit_length_and_dot_as_cosine() {
        let mut a: Sparse = vec![(1, 3.0), (4, 4.0)];
        normalise(&mut a);
        assert!((sparse_dot(&a, &a) - 1.0).abs() < 1e-6);
        let mut b: Sparse = vec![(4, 1.0), (9, 1.0)];
        normalise(&mut b);
        assert!((sparse_dot(&a, &b) - 0.8 / 2f32.sqrt()).abs() < 1e-6);
        let mut zero: Sparse = vec![(2, 0.0)];
        normalise(&mut zero);
        assert!(zero.is_empty());
    }
}
