//! What the embedding side (`embed`) and ranking (`rank`) share about
//! sentence vectors: the model family, which decides the prefixes a model
//! wants and the cosine scale ranking calibrates against, and the
//! similarity of two unit vectors.

use serde::{Deserialize, Serialize};

/// How a model wants its inputs marked: retrieval models are trained with
/// different prefixes for the query and the passage side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Decide from the model's name: "e5" → `E5`, "bge" → `Bge`, else `Plain`.
    Auto,
    /// intfloat/e5-*: `query: ` and `passage: `.
    E5,
    /// BAAI/bge-*-en-v1.5: an instruction before queries, passages bare.
    Bge,
    /// sentence-transformers models (MiniLM, mpnet): no prefixes.
    Plain,
}

impl Family {
    /// `Auto` resolved from a model name such as `BAAI/bge-small-en-v1.5`.
    pub fn resolve(self, model_name: &str) -> Family {
        if self != Family::Auto {
            return self;
        }
        let name = model_name.to_ascii_lowercase();
        let base = name.rsplit('/').next().unwrap_or(&name);
        if base.contains("e5") {
            Family::E5
        } else if base.contains("bge") {
            Family::Bge
        } else {
            Family::Plain
        }
    }
}

/// Cosine similarity of two unit vectors.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
