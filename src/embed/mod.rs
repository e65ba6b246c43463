//! Sentence embeddings: the encoder (candle BERT + `tokenizer.json`),
//! where its files come from (a local folder or the Hugging Face Hub,
//! hash-checked), and the service that embeds papers in the background
//! and caches topic vectors.
//!
//! `rank` stays pure: it receives the vectors this module computes.
//! Nothing here is on the critical path: when no model can be had, the
//! service reports `Unavailable` once and paperboy ranks lexically.

mod encoder;
pub mod hub;
mod service;

pub use encoder::{dot, Encoder, Family, Side, MODEL_FILES};
pub use service::{Semantic, Status};

use std::path::PathBuf;

/// Errors of loading, fetching and running a model.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("model file {0} is missing")]
    MissingFile(PathBuf),
    #[error("model file {path} is unusable: {reason}")]
    BadFile { path: PathBuf, reason: String },
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("downloading {url}: {reason}")]
    Download { url: String, reason: String },
    #[error("{file} from {url} failed its check: {reason}")]
    Integrity {
        file: String,
        url: String,
        reason: String,
    },
}

impl From<candle_core::Error> for EmbedError {
    fn from(e: candle_core::Error) -> Self {
        EmbedError::Inference(e.to_string())
    }
}

/// Text a paper is embedded from: title, abstract, and the source's AI
/// summary and keywords when it gives them.
pub fn paper_text(p: &crate::domain::Paper) -> String {
    let mut s = String::with_capacity(p.title.len() + p.abstract_text.len() + 64);
    s.push_str(p.title.trim());
    s.push_str(". ");
    s.push_str(p.abstract_text.trim());
    if let Some(sum) = p.ai_summary.as_deref().filter(|s| !s.trim().is_empty()) {
        s.push(' ');
        s.push_str(sum.trim());
    }
    if !p.ai_keywords.is_empty() {
        s.push_str(" Keywords: ");
        s.push_str(&p.ai_keywords.join(", "));
    }
    s
}

#[cfg(test)]
mod tests;
