//! Abbreviations and synonyms of the field, analysed for matching: the
//! concepts of the synonym data (`config::synonyms`, which parses and
//! checks the files) as stemmed term sequences.

use super::text::Stemming;
use crate::domain::words::content_words;
use std::collections::HashSet;

pub(crate) use crate::config::synonyms::MAX_VARIANT_WORDS;
use crate::config::synonyms::{self as data, SynonymConcept};
pub use crate::config::synonyms::{SynonymsError, EMBEDDED_SYNONYMS};

/// One way of writing a concept: its text as the file gives it (shown in
/// reasons) and its terms after analysis.
#[derive(Debug, Clone)]
pub(crate) struct Variant {
    pub(crate) display: String,
    pub(crate) terms: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Concept {
    pub(crate) name: String,
    pub(crate) variants: Vec<Variant>,
    /// Context cues; each cue is one or more terms that must all occur.
    pub(crate) context: Vec<Vec<String>>,
}

/// The concepts a ranker treats as equivalent wordings. Cheap to share:
/// build once at start-up and pass by reference.
#[derive(Clone)]
pub struct Synonyms {
    pub(crate) concepts: Vec<Concept>,
    pub(crate) stemming: Stemming,
}

impl std::fmt::Debug for Synonyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Synonyms")
            .field("concepts", &self.concepts.len())
            .finish()
    }
}

impl Default for Synonyms {
    fn default() -> Self {
        Synonyms::embedded()
    }
}

impl Synonyms {
    /// The embedded default data.
    pub fn embedded() -> Synonyms {
        Synonyms::load(None).expect("the embedded config/synonyms.toml is valid")
    }

    /// The embedded data extended by an operator file's contents, if any
    /// (see [`data::load`]). Errors name the line or the entry.
    pub fn load(operator: Option<&str>) -> Result<Synonyms, SynonymsError> {
        Ok(Synonyms::from_concepts(data::load(operator)?))
    }

    /// No synonyms at all: plain stemmed matching.
    pub fn none() -> Synonyms {
        Synonyms::from_concepts(Vec::new())
    }

    /// Number of concepts.
    pub fn len(&self) -> usize {
        self.concepts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.concepts.is_empty()
    }

    /// Analyses parsed concepts (see [`data::load`]).
    pub fn from_concepts(raw: Vec<SynonymConcept>) -> Synonyms {
        // Single-word terms are abbreviations: they keep their form under
        // stemming and lose a plural "s".
        let mut abbreviations = HashSet::new();
        for c in &raw {
            for t in &c.terms {
                let words = content_words(t);
                if let [one] = words.as_slice() {
                    abbreviations.insert(one.clone());
                }
            }
        }
        let stemming = Stemming::new(abbreviations);
        let concepts = raw
            .into_iter()
            .map(|c| Concept {
                variants: c
                    .terms
                    .iter()
                    .map(|t| Variant {
                        display: t.clone(),
                        terms: stemming.terms(t),
                    })
                    .collect(),
                context: c.context.iter().map(|t| stemming.terms(t)).collect(),
                name: c.name,
            })
            .collect();
        Synonyms { concepts, stemming }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_file_loads() {
        let s = Synonyms::embedded();
        assert!(s.len() > 30, "{}", s.len());
    }

    #[test]
    fn a_syntax_error_names_the_line() {
        let err =
            Synonyms::load(Some("[[concept]]\nname = \"x\"\nterms = [\"a\", \n")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("operator synonyms"), "{msg}");
        assert!(msg.contains("line"), "{msg}");
    }

    #[test]
    fn an_invalid_entry_is_named() {
        let text = "[[concept]]\nname = \"ok\"\nterms = [\"a b\", \"AB\"]\n\
                    [[concept]]\nname = \"bad\"\nterms = [\"--\", \"x y\"]\n";
        let err = Synonyms::load(Some(text)).unwrap_err();
        assert_eq!(
            err,
            SynonymsError::Entry {
                file: "operator synonyms".into(),
                entry: 2,
                name: "bad".into(),
                message: "\"--\" has no words that can be matched".into(),
            }
        );
    }

    #[test]
    fn an_operator_file_adds_replaces_and_removes_concepts() {
        let base = Synonyms::embedded();
        let text = "[[concept]]\nname = \"ssl\"\nterms = [\"SSL\", \"self-supervised learning\"]\n\
                    [[concept]]\nname = \"rag\"\nterms = [\"RAG\", \"retrieval augmented LM\"]\n\
                    [[concept]]\nname = \"moe\"\nterms = []\n";
        let s = Synonyms::load(Some(text)).unwrap();
        let names: Vec<_> = s.concepts.iter().map(|c| c.name.as_str()).collect();
        assert!(names.contains(&"ssl"));
        assert!(!names.contains(&"moe"));
        assert_eq!(s.len(), base.len());
        let rag = s.concepts.iter().find(|c| c.name == "rag").unwrap();
        assert_eq!(rag.variants[1].display, "retrieval augmented LM");
    }
}
