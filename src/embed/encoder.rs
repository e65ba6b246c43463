//! A BERT-family sentence encoder on the CPU: candle for the network,
//! `tokenizers` for `tokenizer.json`, mean pooling over the attention
//! mask and L2 normalisation, so a dot product is the cosine similarity.

use super::EmbedError;
use crate::domain::embedding::Family;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// The three files a model folder must hold.
pub const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

const BGE_QUERY: &str = "Represent this sentence for searching relevant passages: ";

/// The prefixes a model family puts before queries and passages.
fn query_prefix(family: Family) -> &'static str {
    match family {
        Family::E5 => "query: ",
        Family::Bge => BGE_QUERY,
        Family::Auto | Family::Plain => "",
    }
}

fn passage_prefix(family: Family) -> &'static str {
    match family {
        Family::E5 => "passage: ",
        Family::Auto | Family::Bge | Family::Plain => "",
    }
}

/// Which side of retrieval a text is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Query,
    Passage,
}

/// A loaded model. `Send + Sync`; encoding is CPU-bound and blocking, so
/// call it from a blocking thread, never on the async runtime.
pub struct Encoder {
    model: BertModel,
    tokenizer: Tokenizer,
    family: Family,
    identity: String,
    dims: usize,
    max_tokens: usize,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("identity", &self.identity)
            .field("dims", &self.dims)
            .finish()
    }
}

/// Texts per forward pass: larger batches pad more, smaller ones pay the
/// per-call overhead more often.
const BATCH: usize = 16;

impl Encoder {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from
    /// `dir`. `name` identifies the model (a Hub repo id or the folder
    /// name) and decides `Auto` prefixes; inputs are cut to `max_tokens`
    /// tokens (the tokenizer file's own truncation and padding are
    /// replaced). The identity combines the name, the weights' SHA-256,
    /// the length and the paper-text recipe ([`super::PAPER_TEXT_VERSION`]),
    /// so changing any of them re-embeds the papers.
    pub fn load(
        dir: &Path,
        name: &str,
        family: Family,
        max_tokens: usize,
    ) -> Result<Encoder, EmbedError> {
        let file = |f: &str| -> Result<PathBuf, EmbedError> {
            let p = dir.join(f);
            if p.is_file() {
                Ok(p)
            } else {
                Err(EmbedError::MissingFile(p))
            }
        };
        let (config_path, tok_path, weights_path) = (
            file(MODEL_FILES[0])?,
            file(MODEL_FILES[1])?,
            file(MODEL_FILES[2])?,
        );
        let config_text = read(&config_path)?;
        let config: BertConfig =
            serde_json::from_slice(&config_text).map_err(|e| EmbedError::BadFile {
                path: config_path.clone(),
                reason: format!("not a BERT config: {e}"),
            })?;
        let mut tokenizer = Tokenizer::from_file(&tok_path).map_err(|e| EmbedError::BadFile {
            path: tok_path.clone(),
            reason: e.to_string(),
        })?;
        let max_tokens = max_tokens.clamp(8, config.max_position_embeddings);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|e| EmbedError::BadFile {
                path: tok_path.clone(),
                reason: e.to_string(),
            })?;
        let pad_id = config.pad_token_id as u32;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id,
            ..PaddingParams::default()
        }));
        let weights = read(&weights_path)?;
        let digest = hex(&Sha256::digest(&weights)[..8]);
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu).map_err(
            |e| EmbedError::BadFile {
                path: weights_path.clone(),
                reason: e.to_string(),
            },
        )?;
        let model = BertModel::load(vb, &config).map_err(|e| EmbedError::BadFile {
            path: weights_path.clone(),
            reason: format!("weights do not fit config.json: {e}"),
        })?;
        let family = family.resolve(name);
        Ok(Encoder {
            model,
            tokenizer,
            family,
            identity: format!(
                "{name}@{digest}/{max_tokens}/t{}",
                super::PAPER_TEXT_VERSION
            ),
            dims: config.hidden_size,
            max_tokens,
        })
    }

    /// Model name, weights hash and input length, e.g.
    /// `sentence-transformers/all-MiniLM-L6-v2@53aa51172d142c89/256`.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Length of every vector.
    pub fn dims(&self) -> usize {
        self.dims
    }

    pub fn family(&self) -> Family {
        self.family
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Unit vectors for `texts`, in order, with the side's prefix.
    /// Deterministic: the same texts give the same vectors (texts are
    /// batched by length, and padding is masked out).
    pub fn encode(&self, texts: &[&str], side: Side) -> Result<Vec<Vec<f32>>, EmbedError> {
        let prefix = match side {
            Side::Query => query_prefix(self.family),
            Side::Passage => passage_prefix(self.family),
        };
        // Similar lengths together so little of each batch is padding.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| (texts[i].len(), i));
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(BATCH) {
            let inputs: Vec<String> = chunk
                .iter()
                .map(|&i| format!("{prefix}{}", texts[i]))
                .collect();
            for (&i, v) in chunk.iter().zip(self.forward(inputs)?) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn forward(&self, inputs: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let n = inputs.len();
        let enc = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| EmbedError::Inference(e.to_string()))?;
        let len = enc.first().map_or(0, |e| e.get_ids().len());
        let mut ids = Vec::with_capacity(n * len);
        let mut mask = Vec::with_capacity(n * len);
        for e in &enc {
            ids.extend_from_slice(e.get_ids());
            mask.extend_from_slice(e.get_attention_mask());
        }
        let dev = Device::Cpu;
        let t = |v: Vec<u32>| Tensor::from_vec(v, (n, len), &dev);
        let ids = t(ids)?;
        let mask = t(mask)?;
        let types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?;
        // Mean over real tokens only, then unit length.
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&m)?.sum(1)?;
        let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        Ok(mean.broadcast_div(&norm)?.to_vec2::<f32>()?)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, EmbedError> {
    std::fs::read(path).map_err(|source| EmbedError::Io {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
