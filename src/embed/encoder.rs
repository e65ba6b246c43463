//! A BERT-family sentence encoder on the CPU: candle for the network,
//! `tokenizers` for `tokenizer.json`, mean pooling over the attention
//! mask and L2 normalisation, so a dot product is the cosine similarity.
//!
//! Memory: the word embedding table stays on disk (`weights`), and a
//! forward pass is bounded by tokens, not texts ([`BATCH_TOKENS`]), so a
//! loaded MiniLM-L6 holds ~45 MB and an encode adds a few MB more.

use super::weights::{self, WordRows};
use super::EmbedError;
use crate::domain::embedding::Family;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{LayerNorm, VarBuilder};
use candle_transformers::models::bert::{BertEncoder, Config as BertConfig};
use std::path::{Path, PathBuf};
use tokenizers::{Encoding, Tokenizer, TruncationParams};

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
    embeddings: Embeddings,
    layers: BertEncoder,
    pad_id: u32,
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

/// BERT's input layer, with the word table read per batch from disk.
struct Embeddings {
    words: WordRows,
    /// `(max_position_embeddings, hidden)`.
    positions: Tensor,
    /// Token type 0's row (every input is one segment), `(hidden,)`.
    segment: Tensor,
    norm: LayerNorm,
}

/// Texts per forward pass at most: larger batches pad more, smaller ones
/// pay the per-call overhead more often.
const BATCH: usize = 16;
/// Tokens per forward pass at most (texts × padded length). Attention
/// holds a few `texts × heads × length²` tensors at once: 16 texts of 256
/// tokens made ~200 MB of them, 4 make ~50 MB, for the same CPU time
/// (`cargo bench --bench embed`, README).
const BATCH_TOKENS: usize = 1024;

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
        // Batches are padded here, to their own longest text.
        tokenizer.with_padding(None);
        let w = weights::read(&weights_path)?;
        let unfit = |e: candle_core::Error| EmbedError::BadFile {
            path: weights_path.clone(),
            reason: format!("weights do not fit config.json: {e}"),
        };
        if w.words.rows() != config.vocab_size {
            return Err(unfit(candle_core::Error::Msg(format!(
                "{} word rows, vocab_size {}",
                w.words.rows(),
                config.vocab_size
            ))));
        }
        let vb = VarBuilder::from_tensors(w.tensors, DType::F32, &Device::Cpu);
        let emb = vb.pp(format!("{}embeddings", w.prefix));
        let h = config.hidden_size;
        let positions = emb
            .get(
                (config.max_position_embeddings, h),
                "position_embeddings.weight",
            )
            .map_err(unfit)?;
        let segment = emb
            .get((config.type_vocab_size, h), "token_type_embeddings.weight")
            .and_then(|t| t.get(0))
            .map_err(unfit)?;
        let norm =
            candle_nn::layer_norm(h, config.layer_norm_eps, emb.pp("LayerNorm")).map_err(unfit)?;
        let layers =
            BertEncoder::load(vb.pp(format!("{}encoder", w.prefix)), &config).map_err(unfit)?;
        let family = family.resolve(name);
        Ok(Encoder {
            embeddings: Embeddings {
                words: w.words,
                positions,
                segment,
                norm,
            },
            layers,
            pad_id: config.pad_token_id as u32,
            tokenizer,
            family,
            identity: format!(
                "{name}@{}/{max_tokens}/t{}",
                w.digest,
                super::PAPER_TEXT_VERSION
            ),
            dims: h,
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
    /// batched by token length, and padding is masked out).
    pub fn encode(&self, texts: &[&str], side: Side) -> Result<Vec<Vec<f32>>, EmbedError> {
        let prefix = match side {
            Side::Query => query_prefix(self.family),
            Side::Passage => passage_prefix(self.family),
        };
        let inputs: Vec<String> = texts.iter().map(|t| format!("{prefix}{t}")).collect();
        let enc = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| EmbedError::Inference(e.to_string()))?;
        // Similar lengths together so little of each batch is padding.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| (enc[i].get_ids().len(), i));
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        let mut rest = &order[..];
        while !rest.is_empty() {
            // Sorted ascending: the last text of a batch is its longest.
            let mut n = 1;
            while n < rest.len()
                && n < BATCH
                && (n + 1) * enc[rest[n]].get_ids().len() <= BATCH_TOKENS
            {
                n += 1;
            }
            let (chunk, tail) = rest.split_at(n);
            let batch: Vec<&Encoding> = chunk.iter().map(|&i| &enc[i]).collect();
            for (&i, v) in chunk.iter().zip(self.forward(&batch)?) {
                out[i] = v;
            }
            rest = tail;
        }
        Ok(out)
    }

    fn forward(&self, batch: &[&Encoding]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let n = batch.len();
        let len = batch.iter().map(|e| e.get_ids().len()).max().unwrap_or(0);
        let mut ids = vec![self.pad_id; n * len];
        let mut mask = vec![0u32; n * len];
        for (k, e) in batch.iter().enumerate() {
            let row = k * len;
            ids[row..row + e.get_ids().len()].copy_from_slice(e.get_ids());
            mask[row..row + e.len()].copy_from_slice(e.get_attention_mask());
        }
        let dev = Device::Cpu;
        let input = self.embeddings.forward(&ids, n, len)?;
        let mask = Tensor::from_vec(mask, (n, len), &dev)?;
        let m = mask.to_dtype(DType::F32)?;
        // BERT's additive mask: 0 on real tokens, f32::MIN on padding.
        let blocked = (m.ones_like()? - &m)?
            .unsqueeze(1)?
            .unsqueeze(1)?
            .broadcast_mul(&Tensor::new(f32::MIN, &dev)?)?;
        let hidden = self.layers.forward(&input, &blocked)?;
        // Mean over real tokens only, then unit length.
        let m = m.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&m)?.sum(1)?;
        let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        Ok(mean.broadcast_div(&norm)?.to_vec2::<f32>()?)
    }
}

impl Embeddings {
    /// BERT's input layer for `ids` (`n × len`, row-major): word + token
    /// type + position embeddings, layer-normalised. Only the batch's own
    /// words are read from the table.
    fn forward(&self, ids: &[u32], n: usize, len: usize) -> Result<Tensor, EmbedError> {
        let mut distinct = ids.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let table = self.words.gather(&distinct)?;
        let local: Vec<u32> = ids
            .iter()
            .map(|id| distinct.partition_point(|d| d < id) as u32)
            .collect();
        let local = Tensor::from_vec(local, n * len, &Device::Cpu)?;
        let words = table.index_select(&local, 0)?.reshape((n, len, ()))?;
        let x = words
            .broadcast_add(&self.segment)?
            .broadcast_add(&self.positions.narrow(0, 0, len)?)?;
        Ok(self.norm.forward(&x)?)
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
