//! `[rank]` and `[rank.semantic]`: the synonym data, the preview size,
//! and the sentence-embedding side of ranking.

use super::synonyms::{self, SynonymConcept};
use super::values::within;
use super::{invalid, ConfigError};
use crate::domain::embedding::Family;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use url::Url;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    synonyms_file: String,
    preview_size: usize,
    semantic: RawSemantic,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawSemantic {
    enabled: bool,
    model: String,
    model_dir: String,
    hub_url: String,
    prefixes: Family,
    max_tokens: usize,
    dense_weight: f32,
    min_similarity: f32,
    embed_days: u32,
}

#[derive(Debug, Clone)]
pub struct RankConfig {
    /// The synonym data: the embedded concepts with the operator's file
    /// (`rank.synonyms_file`) layered over them, read and checked at load.
    pub synonyms: Vec<SynonymConcept>,
    /// Papers in the live preview (1–50).
    pub preview_size: usize,
    pub semantic: SemanticConfig,
}

/// `[rank.semantic]`: the sentence-embedding side of ranking.
#[derive(Debug, Clone)]
pub struct SemanticConfig {
    /// Off: rank lexically only, never load or download a model.
    pub enabled: bool,
    /// Hugging Face Hub repository of a BERT-family sentence encoder
    /// (`owner/name`).
    pub model: String,
    /// A local folder with `config.json`, `tokenizer.json` and
    /// `model.safetensors`, used instead of downloading `model`.
    pub model_dir: Option<PathBuf>,
    /// Base URL of the Hub (a mirror, or a test server).
    pub hub_url: Url,
    /// Query/passage prefixes.
    pub prefixes: Family,
    /// Inputs are cut to this many tokens (16–512).
    pub max_tokens: usize,
    /// Weight of meaning in the fused score, 0 to 1.
    pub dense_weight: f32,
    /// Cosine below which a paper is unrelated to a topic; 0: the model
    /// family's calibrated floor.
    pub min_similarity: f32,
    /// Papers listed within this many days are embedded (older ones are
    /// never candidates again).
    pub embed_days: u32,
}

impl SemanticConfig {
    /// The local model folder, when one is configured.
    pub fn local_dir(&self) -> Option<PathBuf> {
        self.model_dir.clone()
    }
}

impl TryFrom<&Raw> for RankConfig {
    type Error = ConfigError;

    fn try_from(r: &Raw) -> Result<RankConfig, ConfigError> {
        Ok(RankConfig {
            synonyms: read_synonyms(&r.synonyms_file)?,
            preview_size: within("rank.preview_size", r.preview_size, 1, 50)?,
            semantic: SemanticConfig::try_from(&r.semantic)?,
        })
    }
}

/// The embedded synonym data extended by the operator's file, if any.
fn read_synonyms(file: &str) -> Result<Vec<SynonymConcept>, ConfigError> {
    let key = "rank.synonyms_file";
    let text = match file {
        "" => None,
        path => Some(
            std::fs::read_to_string(path)
                .map_err(|e| invalid(key, format!("cannot read {path}: {e}")))?,
        ),
    };
    synonyms::load(text.as_deref()).map_err(|e| invalid(key, e.to_string()))
}

impl TryFrom<&RawSemantic> for SemanticConfig {
    type Error = ConfigError;

    /// Ranges, a Hub URL, an `owner/name` model.
    fn try_from(s: &RawSemantic) -> Result<SemanticConfig, ConfigError> {
        let dense_weight = within("rank.semantic.dense_weight", s.dense_weight, 0.0, 1.0)?;
        if !(0.0..1.0).contains(&s.min_similarity) {
            return Err(invalid(
                "rank.semantic.min_similarity",
                "must be 0 (auto) or below 1",
            ));
        }
        let max_tokens = within("rank.semantic.max_tokens", s.max_tokens, 16, 512)?;
        if s.embed_days == 0 {
            return Err(invalid("rank.semantic.embed_days", "must be at least 1"));
        }
        let hub_url = Url::parse(&s.hub_url)
            .map_err(|e| invalid("rank.semantic.hub_url", format!("not a URL: {e}")))?;
        let ok_part = |p: &str| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if !s
            .model
            .split_once('/')
            .is_some_and(|(a, b)| ok_part(a) && ok_part(b))
        {
            return Err(invalid(
                "rank.semantic.model",
                format!("{:?} is not a Hub repository (owner/name)", s.model),
            ));
        }
        let dir = s.model_dir.trim();
        Ok(SemanticConfig {
            enabled: s.enabled,
            model: s.model.clone(),
            model_dir: (!dir.is_empty()).then(|| PathBuf::from(dir)),
            hub_url,
            prefixes: s.prefixes,
            max_tokens,
            dense_weight,
            min_similarity: s.min_similarity,
            embed_days: s.embed_days,
        })
    }
}
