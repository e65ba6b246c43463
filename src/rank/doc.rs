//! What the index keeps about one candidate: its own file because both
//! the lexical index and the dense fusion read it (neither imports the
//! other for it).

use super::trending::Trending;
use crate::domain::PaperId;

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
    pub(super) concepts: Vec<(u32, u16)>,
}
