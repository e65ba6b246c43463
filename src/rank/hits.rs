//! What scoring a topic produces: the analysed topic and the papers it
//! matches, with how well and by which of its words.

/// Bit of a hit's mask set when the topic matched as a phrase.
pub(crate) const PHRASE_BIT: u32 = 1 << 31;
/// At most this many distinct terms of a topic are scored.
pub(crate) const MAX_QUERY_TERMS: usize = 31;

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
    pub(crate) term: u32,
    /// Terms of the same derivational family that candidates use (not a
    /// concept's), matched as weaker evidence where `term` is absent.
    pub(crate) variants: Vec<u32>,
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
pub(crate) struct DocSet(pub(super) Vec<u64>);

impl DocSet {
    pub(crate) fn contains(&self, doc: u32) -> bool {
        self.0
            .get(doc as usize / 64)
            .is_some_and(|w| w & (1 << (doc % 64)) != 0)
    }
}
