//! The tuning of lexical ranking and its blend with trending, authors and
//! feedback. The defaults are what paperboy ships; evaluation code varies
//! them.

use crate::domain::Span;

/// Tuning of relevance and blending.
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
    /// The relevance of a paper for being in a category the profile
    /// follows (a profile of categories alone): every such paper gets the
    /// same, so trending and reader feedback order them.
    pub followed_category_rel: f32,
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
            followed_category_rel: 0.5,
            cache_budget_bytes: 128 << 20,
            span: Span::Day,
            feedback: super::FeedbackParams::default(),
        }
    }
}
