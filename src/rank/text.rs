//! Text analysis shared by documents, topics and the synonym file:
//! tokenising, stop words and stemming.
//!
//! A token is a maximal run of alphanumeric characters, lower-cased, so
//! "chain-of-thought" is three tokens and "T2I" is one. Stop words are
//! dropped before positions are assigned, which makes "mixture of experts"
//! and "mixture-of-experts" the same phrase. Sentence punctuation leaves a
//! gap in positions so a phrase never spans two sentences or two keywords.

use rust_stemmers::{Algorithm, Stemmer};
use std::collections::HashSet;

/// Words too common to carry meaning in a topic or a paper.
const STOP_WORDS: &[&str] = &[
    "a", "about", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been", "being",
    "between", "both", "but", "by", "can", "could", "do", "does", "each", "for", "from", "had",
    "has", "have", "how", "however", "i", "if", "in", "into", "is", "it", "its", "may", "more",
    "most", "much", "must", "no", "not", "of", "on", "or", "other", "our", "over", "s", "same",
    "should", "so", "some", "such", "t", "than", "that", "the", "their", "them", "then", "there",
    "these", "they", "this", "those", "through", "thus", "to", "under", "up", "upon", "us", "use",
    "used", "using", "via", "was", "we", "were", "what", "when", "where", "whether", "which",
    "while", "who", "why", "will", "with", "within", "without", "would", "yet", "you", "your",
];

pub(crate) fn is_stop_word(w: &str) -> bool {
    STOP_WORDS.binary_search(&w).is_ok()
}

/// Calls `emit(token, gap)` for every lower-cased alphanumeric token of
/// `text`; `gap` is true when sentence punctuation separates it from the
/// previous token.
pub(crate) fn for_each_token(text: &str, mut emit: impl FnMut(&str, bool)) {
    let mut buf = String::new();
    let mut gap = false;
    for c in text.chars() {
        if c.is_alphanumeric() {
            if c.is_ascii() {
                buf.push(c.to_ascii_lowercase());
            } else {
                buf.extend(c.to_lowercase());
            }
        } else {
            if !buf.is_empty() {
                emit(&buf, gap);
                buf.clear();
                gap = false;
            }
            if matches!(
                c,
                '.' | ';' | ':' | '!' | '?' | '(' | ')' | '[' | ']' | '|' | '"'
            ) {
                gap = true;
            }
        }
    }
    if !buf.is_empty() {
        emit(&buf, gap);
    }
}

/// Turns a token into its index term: English Porter2 stem, except that a
/// known abbreviation keeps its form and loses a plural `s` ("LLMs" →
/// "llm"), which the stemmer would not do.
#[derive(Clone)]
pub(crate) struct Stemming {
    stemmer: &'static Stemmer,
    abbreviations: HashSet<String>,
}

static ENGLISH: std::sync::LazyLock<Stemmer> =
    std::sync::LazyLock::new(|| Stemmer::create(Algorithm::English));

impl Stemming {
    pub(crate) fn new(abbreviations: HashSet<String>) -> Stemming {
        Stemming {
            stemmer: &ENGLISH,
            abbreviations,
        }
    }

    /// The term for a lower-cased, non-stop-word token.
    pub(crate) fn term(&self, token: &str) -> String {
        if self.abbreviations.contains(token) {
            return token.to_string();
        }
        if let Some(singular) = token.strip_suffix('s') {
            if self.abbreviations.contains(singular) {
                return singular.to_string();
            }
        }
        self.stemmer.stem(token).into_owned()
    }

    /// Terms of a short text (a topic, a synonym), stop words dropped.
    pub(crate) fn terms(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for_each_token(text, |t, _| {
            if !is_stop_word(t) {
                out.push(self.term(t));
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stop_word_list_is_sorted_for_binary_search() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn hyphens_split_words_and_punctuation_marks_a_gap() {
        let mut seen = Vec::new();
        for_each_token("Chain-of-Thought (CoT). T2I", |t, g| {
            seen.push((t.to_string(), g))
        });
        let want = [
            ("chain", false),
            ("of", false),
            ("thought", false),
            ("cot", true),
            ("t2i", true),
        ];
        let want: Vec<_> = want.iter().map(|(t, g)| (t.to_string(), *g)).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn plural_abbreviations_lose_their_s_and_words_are_stemmed() {
        let s = Stemming::new(["llm".to_string()].into_iter().collect());
        assert_eq!(s.terms("LLMs for decoding"), vec!["llm", "decod"]);
        assert_eq!(s.terms("the LLM"), vec!["llm"]);
        assert_eq!(s.terms("Speculative"), s.terms("speculation"));
    }
}
