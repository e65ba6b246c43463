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

// Tokens and stop words are shared with the synonym file's checks in
// `config`, so they live in `domain::words`.
pub(crate) use crate::domain::words::{for_each_token, is_stop_word};

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

    /// The derivational family of a lower-cased, non-stop-word token: the
    /// term of the word with a negation prefix taken off, British `-ise`,
    /// `-yse` and `-our` spelt the American way, and `-bility` read as
    /// `-ble`, so "instability", "stability", "stable",
    /// "unstable" and "stabilize" share one family, which Porter2 alone
    /// does not give them. Words of one family are related forms, not the
    /// same word: the index matches them as weaker evidence.
    ///
    /// `un-` and `non-` are taken off any word leaving five letters or
    /// more. `in-`, `im-`, `il-` and `ir-` begin too many unrelated words
    /// ("information", "improved", "instance"), so they are taken off
    /// only words with an adjective's or a quality's ending ("-ity",
    /// "-ble", "-al", "-ent", "-ive", "-ous", …) and only in their spelling
    /// before the next letter (`im-` before b, m, p; `il-` before l; `ir-`
    /// before r; `in-` before any other letter).
    pub(crate) fn family(&self, token: &str) -> String {
        if self.abbreviations.contains(token) {
            return self.term(token);
        }
        let base = american_spelling(strip_negation(token));
        let base = match base.strip_suffix("bility") {
            Some(stem) if stem.len() >= 2 => format!("{stem}ble"),
            _ => base,
        };
        let mut term = self.term(&base);
        // "stabilize" stems to "stabil", "stable" to "stabl".
        if term.ends_with("bil") {
            term.truncate(term.len() - 3);
            term.push_str("bl");
        }
        term
    }

    /// [`Stemming::family`] of a token whose own term is `term`, when it
    /// differs from `term` (the token is a derived form); cheap for the
    /// many tokens that cannot be.
    pub(crate) fn derived_family(&self, token: &str, term: &str) -> Option<String> {
        let maybe = token.starts_with(['u', 'n', 'i'])
            || token.contains("bility")
            || term.ends_with("bil")
            || token.contains("is")
            || token.contains("ys")
            || token.contains("our");
        if !maybe {
            return None;
        }
        let family = self.family(token);
        (family != term).then_some(family)
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

/// Endings of the words `in-`, `im-`, `il-` and `ir-` negate: qualities
/// and adjectives ("instability", "inconsistent", "irregular").
const NEGATABLE_ENDINGS: &[&str] = &[
    "ity", "ities", "ble", "bly", "al", "ally", "ar", "ent", "ently", "ency", "ant", "ive", "ic",
    "ical", "ous", "ile", "ite", "ete", "ect", "ate", "ness",
];

/// British endings and their American spelling, longest first.
const BRITISH_ENDINGS: &[(&str, &str)] = &[
    ("isations", "izations"),
    ("isation", "ization"),
    ("ysing", "yzing"),
    ("ising", "izing"),
    ("ysed", "yzed"),
    ("yses", "yzes"),
    ("ised", "ized"),
    ("ises", "izes"),
    ("iser", "izer"),
    ("yse", "yze"),
    ("ise", "ize"),
    ("ourally", "orally"),
    ("ouring", "oring"),
    ("oural", "oral"),
    ("oured", "ored"),
    ("ours", "ors"),
    ("our", "or"),
];

/// "optimise" → "optimize", "analysed" → "analyzed", "behaviour" →
/// "behavior", for words of six letters or more. A word that only looks
/// British ("precise", "noise") gets a spelling no other word has, which
/// changes nothing.
fn american_spelling(token: &str) -> String {
    for (british, american) in BRITISH_ENDINGS {
        if let Some(stem) = token.strip_suffix(british) {
            if stem.len() + british.len() >= 6 && stem.len() >= 3 {
                return format!("{stem}{american}");
            }
        }
    }
    token.to_string()
}

/// `token` without a negation prefix, or `token` itself.
fn strip_negation(token: &str) -> &str {
    const MIN_REST: usize = 5;
    for prefix in ["non", "un"] {
        if let Some(rest) = token.strip_prefix(prefix) {
            if rest.len() >= MIN_REST {
                return rest;
            }
        }
    }
    if !NEGATABLE_ENDINGS.iter().any(|e| token.ends_with(e)) {
        return token;
    }
    let Some(rest) = token.strip_prefix('i') else {
        return token;
    };
    let mut chars = rest.chars();
    let (Some(p), Some(next)) = (chars.next(), chars.next()) else {
        return token;
    };
    let fits = match p {
        'm' => matches!(next, 'b' | 'm' | 'p'),
        'l' => next == 'l',
        'r' => next == 'r',
        'n' => !matches!(next, 'b' | 'm' | 'p' | 'l' | 'r'),
        _ => false,
    };
    let rest = &rest[1..];
    if fits && rest.len() >= MIN_REST {
        rest
    } else {
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plural_abbreviations_lose_their_s_and_words_are_stemmed() {
        let s = Stemming::new(["llm".to_string()].into_iter().collect());
        assert_eq!(s.terms("LLMs for decoding"), vec!["llm", "decod"]);
        assert_eq!(s.terms("the LLM"), vec!["llm"]);
        assert_eq!(s.terms("Speculative"), s.terms("speculation"));
    }

    #[test]
    fn negated_and_derived_forms_share_a_family() {
        let s = Stemming::new(HashSet::new());
        let f = |w: &str| s.family(w);
        for w in [
            "instability",
            "stable",
            "unstable",
            "stabilize",
            "stabilization",
        ] {
            assert_eq!(f(w), f("stability"), "{w}");
        }
        assert_eq!(f("nonlinear"), f("linear"));
        assert_eq!(f("inconsistent"), f("consistency"));
        assert_eq!(f("irregular"), f("regular"));
        assert_eq!(f("immobile"), f("mobility"));
        assert_eq!(f("inefficient"), f("efficient"));
        assert_eq!(f("optimise"), f("optimization"));
        assert_eq!(f("optimisation"), f("optimize"));
        assert_eq!(f("analysed"), f("analyze"));
        assert_eq!(f("behaviour"), f("behavior"));
        assert_eq!(f("behavioural"), f("behavioral"));
        assert_eq!(f("colours"), f("color"));
    }

    #[test]
    fn words_that_only_begin_like_a_negation_keep_their_family() {
        let s = Stemming::new(HashSet::new());
        let f = |w: &str| s.family(w);
        for (w, other) in [
            ("information", "formation"),
            ("improved", "proved"),
            ("instance", "stance"),
            ("impose", "pose"),
            ("interest", "terest"),
        ] {
            assert_ne!(f(w), f(other), "{w}");
            assert_eq!(f(w), s.term(w), "{w}");
        }
    }
}
