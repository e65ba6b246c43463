//! The synonym data: `config/synonyms.toml` (embedded) plus an optional
//! operator file that extends or overrides it. Parsed and checked here, at
//! load, so a bad file fails `config check` naming its entry; ranking
//! analyses the concepts (`rank::Synonyms`).

use crate::domain::words::content_words;
use serde::Deserialize;
use std::collections::HashSet;

/// The default synonym data, embedded at build time.
pub const EMBEDDED_SYNONYMS: &str = include_str!("../../config/synonyms.toml");

/// Longest phrase a synonym may be, in words (stop words not counted).
pub const MAX_VARIANT_WORDS: usize = 8;

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
    concept: Vec<SynonymConcept>,
}

/// One `[[concept]]`: the wordings that mean the same thing, and the
/// context words that tell a homonym's senses apart.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynonymConcept {
    pub name: String,
    pub terms: Vec<String>,
    #[serde(default)]
    pub context: Vec<String>,
}

/// The embedded data extended by an operator file's contents, if any: a
/// new `name` adds a concept, an existing one replaces it, and
/// `terms = []` removes it. Errors name the line or the entry.
pub fn load(operator: Option<&str>) -> Result<Vec<SynonymConcept>, SynonymsError> {
    let mut concepts = parse("embedded synonyms", EMBEDDED_SYNONYMS)?;
    if let Some(text) = operator {
        for c in parse("operator synonyms", text)? {
            match concepts.iter().position(|r| r.name == c.name) {
                Some(i) if c.terms.is_empty() => {
                    concepts.remove(i);
                }
                Some(i) => concepts[i] = c,
                None if c.terms.is_empty() => {}
                None => concepts.push(c),
            }
        }
    }
    Ok(concepts)
}

/// Parses and validates one file; a removal entry (`terms = []`) is kept
/// for the merge.
fn parse(file: &str, text: &str) -> Result<Vec<SynonymConcept>, SynonymsError> {
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
            if content_words(t).is_empty() {
                return Err(bad(format!("{t:?} has no words that can be matched")));
            }
            if content_words(t).len() > MAX_VARIANT_WORDS {
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
