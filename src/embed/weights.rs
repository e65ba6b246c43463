//! Reading `model.safetensors` without ever holding the file in memory.
//!
//! The file is read once, in order, through a small buffer: every byte is
//! hashed (the model identity's SHA-256), each tensor but the word
//! embedding table becomes an F32 tensor, and the word table stays on
//! disk. It is half of a small BERT (MiniLM-L6: 30,522 × 384 floats,
//! 47 MB of 91), and a batch needs only the rows of its own tokens, read
//! with positioned reads from the open file (page cache, not this
//! process's memory). The file must not be rewritten in place while the
//! encoder is loaded; a replaced file (rename) is never seen, the old one
//! stays open.

use super::EmbedError;
use candle_core::{DType, Device, Tensor};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Name of the word embedding table, after the checkpoint's prefix
/// (none, `bert.`, …).
const WORD_TABLE: &str = "embeddings.word_embeddings.weight";
/// Read buffer for the pass over the file.
const CHUNK: usize = 1 << 20;

/// What the pass over the file gives.
pub(super) struct Weights {
    /// Every tensor but the word table, as F32.
    pub tensors: HashMap<String, Tensor>,
    /// What comes before [`WORD_TABLE`] in the tensors' names: the
    /// checkpoint's prefix, e.g. `""` or `"bert."`.
    pub prefix: String,
    pub words: WordRows,
    /// Hex of the first 8 bytes of the file's SHA-256.
    pub digest: String,
}

/// The word embedding table, on disk.
pub(super) struct WordRows {
    file: File,
    path: PathBuf,
    /// Absolute file offset of row 0.
    offset: u64,
    dtype: DType,
    rows: usize,
    cols: usize,
}

impl WordRows {
    /// Rows `ids` (in that order) as an F32 tensor `(ids.len(), cols)`.
    pub fn gather(&self, ids: &[u32]) -> Result<Tensor, EmbedError> {
        let row_bytes = self.cols * self.dtype.size_in_bytes();
        let mut bytes = vec![0u8; ids.len() * row_bytes];
        for (&id, out) in ids.iter().zip(bytes.chunks_exact_mut(row_bytes)) {
            if id as usize >= self.rows {
                return Err(EmbedError::Inference(format!(
                    "token id {id} is outside the {}-word vocabulary",
                    self.rows
                )));
            }
            let at = self.offset + id as u64 * row_bytes as u64;
            self.file
                .read_exact_at(out, at)
                .map_err(|source| EmbedError::Io {
                    path: self.path.clone(),
                    source,
                })?;
        }
        let t = Tensor::from_raw_buffer(&bytes, self.dtype, &[ids.len(), self.cols], &Device::Cpu)?;
        Ok(t.to_dtype(DType::F32)?)
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// One entry of the safetensors header.
#[derive(serde::Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (u64, u64),
}

fn dtype(name: &str) -> Option<DType> {
    Some(match name {
        "F32" => DType::F32,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "F64" => DType::F64,
        _ => return None,
    })
}

/// The header's tensors in file order, and the header's length, hashed.
fn header(
    file: &mut File,
    hasher: &mut Sha256,
    path: &Path,
) -> Result<(Vec<(String, Entry)>, u64), EmbedError> {
    let bad = |reason: String| EmbedError::BadFile {
        path: path.to_path_buf(),
        reason,
    };
    let io = |source| EmbedError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(io)?;
    hasher.update(len);
    let header_len = u64::from_le_bytes(len);
    if header_len > 100 << 20 {
        return Err(bad(format!("a {header_len}-byte header: not safetensors")));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(io)?;
    hasher.update(&header);
    let mut entries: HashMap<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| bad(format!("not a safetensors header: {e}")))?;
    entries.remove("__metadata__");
    let mut entries: Vec<(String, Entry)> = entries
        .into_iter()
        .map(|(name, v)| {
            serde_json::from_value(v)
                .map(|e| (name.clone(), e))
                .map_err(|e| bad(format!("tensor {name}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|(_, e)| e.data_offsets.0);
    Ok((entries, header_len))
}

/// Reads `path` as described in the module docs.
pub(super) fn read(path: &Path) -> Result<Weights, EmbedError> {
    let bad = |reason: String| EmbedError::BadFile {
        path: path.to_path_buf(),
        reason,
    };
    let io = |source| EmbedError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let (entries, header_len) = header(&mut file, &mut hasher, path)?;
    let data_start = 8 + header_len;
    let mut pass = Pass {
        file: &mut file,
        hasher: &mut hasher,
        pos: 0,
        buf: vec![0u8; CHUNK],
    };
    let mut tensors = HashMap::with_capacity(entries.len());
    let mut words = None;
    for (name, e) in entries {
        let (begin, end) = e.data_offsets;
        if begin < pass.pos || end < begin {
            return Err(bad(format!(
                "tensor {name}: offsets {begin}..{end} overlap"
            )));
        }
        pass.skip(begin - pass.pos).map_err(io)?;
        // Integer buffers (e.g. `position_ids`) are not weights: hashed only.
        let Some(dt) = dtype(&e.dtype) else {
            pass.skip(end - begin).map_err(io)?;
            continue;
        };
        let size = e.shape.iter().product::<usize>() * dt.size_in_bytes();
        if end - begin != size as u64 {
            return Err(bad(format!(
                "tensor {name}: {} bytes for shape {:?}",
                end - begin,
                e.shape
            )));
        }
        if let Some(prefix) = name.strip_suffix(WORD_TABLE) {
            let [rows, cols] = e.shape[..] else {
                return Err(bad(format!("tensor {name}: shape {:?}", e.shape)));
            };
            words = Some((prefix.to_string(), data_start + begin, dt, rows, cols));
            pass.skip(end - begin).map_err(io)?;
        } else {
            let bytes = pass.take(size).map_err(io)?;
            let t = Tensor::from_raw_buffer(&bytes, dt, &e.shape, &Device::Cpu)?;
            tensors.insert(name, t.to_dtype(DType::F32)?);
        }
    }
    // Anything after the last tensor still belongs to the file's hash.
    loop {
        let n = pass.file.read(&mut pass.buf).map_err(io)?;
        if n == 0 {
            break;
        }
        pass.hasher.update(&pass.buf[..n]);
    }
    let Some((prefix, offset, dtype, rows, cols)) = words else {
        return Err(bad(format!("no tensor named …{WORD_TABLE}")));
    };
    let digest = hasher.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Weights {
        tensors,
        prefix,
        words: WordRows {
            file,
            path: path.to_path_buf(),
            offset,
            dtype,
            rows,
            cols,
        },
        digest,
    })
}

/// The read position in the data section, hashing what it reads.
struct Pass<'a> {
    file: &'a mut File,
    hasher: &'a mut Sha256,
    pos: u64,
    buf: Vec<u8>,
}

impl Pass<'_> {
    /// Reads and hashes `n` bytes without keeping them.
    fn skip(&mut self, mut n: u64) -> std::io::Result<()> {
        while n > 0 {
            let k = (n as usize).min(self.buf.len());
            self.file.read_exact(&mut self.buf[..k])?;
            self.hasher.update(&self.buf[..k]);
            n -= k as u64;
            self.pos += k as u64;
        }
        Ok(())
    }

    /// Reads and hashes `n` bytes.
    fn take(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        let mut out = vec![0u8; n];
        self.file.read_exact(&mut out)?;
        self.hasher.update(&out);
        self.pos += n as u64;
        Ok(out)
    }
}
