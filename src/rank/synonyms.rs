//! Abbreviations and synonyms of the field, from `config/synonyms.toml`
//! (embedded) plus an optional operator file that extends or overrides it.

use super::text::{for_each_token, is_stop_word, Stemming};
use serde::Deserialize;
use std::collections::HashSet;

/// The default synonym data, embedded at build time.
pub const EMBEDDED_SYNONYMS: &str = include_str!("../../config/synonyms.toml");

/// Why a synonym file was refused. The message names the file, and the
/// line or the entry at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SynonymsError {
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: concept #{entry} ({name:?}): {message}")]
    Entry {
        file: String,
        entry: usize,
        name: String,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    concept: Vec<RawConcept>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConcept {
    name: String,
    terms: Vec<String>,
    #[serde(default)]
    context: Vec<String>,
}

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

    /// The embedded data extended by an operator file's contents, if any:
    /// a new `name` adds a concept, an existing one replaces it, and
    /// `terms = []` removes it. Errors name the line or the entry.
    pub fn load(operator: Option<&str>) -> Result<Synonyms, SynonymsError> {
        let mut raw = parse("embedded synonyms", EMBEDDED_SYNONYMS)?;
        if let Some(text) = operator {
            for c in parse("operator synonyms", text)? {
                match raw.iter().position(|r| r.name == c.name) {
                    Some(i) if c.terms.is_empty() => {
                        raw.remove(i);
                    }
                    Some(i) => raw[i] = c,
                    None if c.terms.is_empty() => {}
                    None => raw.push(c),
                }
            }
        }
        Ok(Synonyms::analyse(raw))
    }

    /// No synonyms at all: plain stemmed matching.
    pub fn none() -> Synonyms {
        Synonyms::analyse(Vec::new())
    }

    /// Number of concepts.
    pub fn len(&self) -> usize {
        self.concepts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.concepts.is_empty()
    }

    fn analyse(raw: Vec<RawConcept>) -> Synonyms {
        // Single-word terms are abbreviations: they keep their form under
        // stemming and lose a plural "s".
        let mut abbreviations = HashSet::new();
        for c in &raw {
            for t in &c.terms {
                let words = words(t);
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

fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_token(text, |t, _| {
        if !is_stop_word(t) {
            out.push(t.to_string());
        }
    });
    out
}

/// Parses and validates one file; a removal entry (`terms = []`) is kept
/// for the merge.
fn parse(file: &str, text: &str) -> Result<Vec<RawConcept>, SynonymsError> {
    let parsed: File = toml::from_str(text).map_err(|e| SynonymsError::Syntax {
        file: file.to_string(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let mut names = HashSet::new();
    for (i, c) in parsed.concept.iter().enumerate() {
        let bad = |message: String| SynonymsError::Entry {
            file: file.to_string(),
            entry: i + 1,
            name: c.name.clone(),
            message,
        };
        if c.name.is_empty()
            || !c
                .name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            return Err(bad("name must be letters, digits, '-' or '_'".into()));
        }
        if !names.insert(c.name.as_str()) {
            return Err(bad("name is used by an earlier concept".into()));
        }
        for t in c.terms.iter().chain(&c.context) {
            if words(t).is_empty() {
                return Err(bad(format!("{t:?} has no words that can be matched")));
            }
            if words(t).len() > MAX_VARIANT_WORDS {
                return Err(bad(format!(
                    "{t:?} is longer than {MAX_VARIANT_WORDS} words"
                )));
            }
        }
        if c.terms.len() == 1 {
            return Err(bad(
                "a concept needs at least two terms (or none, to remove it)".into(),
            ));
        }
    }
    Ok(parsed.concept)
}

/// Longest phrase a synonym may be, in words (stop words not counted).
pub(crate) const MAX_VARIANT_WORDS: usize = 8;

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
