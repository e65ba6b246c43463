//! Downloading a model from the Hugging Face Hub (or a mirror of its API),
//! with every file's size and hash checked against the Hub's listing.
//!
//! `GET {hub}/api/models/{repo}/tree/main` lists the files: each has a
//! `size` and a git blob id (`oid`, SHA-1 of `"blob {len}\0" + bytes`);
//! large files also have `lfs.oid`, their SHA-256. Files come from
//! `{hub}/{repo}/resolve/main/{path}`, are written to `{path}.part` and
//! renamed into place only once checked, so a folder never holds a file
//! that failed its check.

use super::{EmbedError, MODEL_FILES};
use futures::StreamExt;
use serde::Deserialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
struct Entry {
    path: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    oid: Option<String>,
    #[serde(default)]
    lfs: Option<Lfs>,
}

#[derive(Debug, Deserialize)]
struct Lfs {
    oid: String,
    size: u64,
}

/// What a listed file must be.
#[derive(Debug, Clone)]
enum Expect {
    Sha256(String),
    GitBlob(String),
}

/// The folder a Hub model is kept in under `models_dir`.
pub fn model_folder(models_dir: &Path, repo: &str) -> PathBuf {
    models_dir.join(repo.replace('/', "--"))
}

/// Whether `dir` holds every file a model needs.
pub fn is_complete(dir: &Path) -> bool {
    MODEL_FILES.iter().all(|f| dir.join(f).is_file())
}

/// Downloads `repo`'s model files into `dir` (created if needed), checking
/// sizes and hashes; files already present and complete are kept.
pub async fn fetch(
    client: &reqwest::Client,
    hub: &str,
    repo: &str,
    dir: &Path,
) -> Result<(), EmbedError> {
    let hub = hub.trim_end_matches('/');
    let list_url = format!("{hub}/api/models/{repo}/tree/main");
    let body = get(client, &list_url)
        .await?
        .bytes()
        .await
        .map_err(|e| EmbedError::Download {
            url: list_url.clone(),
            reason: e.to_string(),
        })?;
    let entries: Vec<Entry> = serde_json::from_slice(&body).map_err(|e| EmbedError::Download {
        url: list_url.clone(),
        reason: format!("not a file listing: {e}"),
    })?;
    std::fs::create_dir_all(dir).map_err(|source| EmbedError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for file in MODEL_FILES {
        let target = dir.join(file);
        if target.is_file() {
            continue;
        }
        let entry =
            entries
                .iter()
                .find(|e| e.path == file)
                .ok_or_else(|| EmbedError::Download {
                    url: list_url.clone(),
                    reason: format!("the repository has no {file}"),
                })?;
        let (size, expect) = match (&entry.lfs, &entry.oid) {
            (Some(l), _) => (l.size, Expect::Sha256(l.oid.to_ascii_lowercase())),
            (None, Some(oid)) => (entry.size, Expect::GitBlob(oid.to_ascii_lowercase())),
            (None, None) => {
                return Err(EmbedError::Download {
                    url: list_url.clone(),
                    reason: format!("the listing gives no hash for {file}"),
                })
            }
        };
        let url = format!("{hub}/{repo}/resolve/main/{file}");
        download(client, &url, file, size, &expect, &target).await?;
    }
    Ok(())
}

async fn get(client: &reqwest::Client, url: &str) -> Result<reqwest::Response, EmbedError> {
    let err = |reason: String| EmbedError::Download {
        url: url.to_string(),
        reason,
    };
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| err(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(err(format!("HTTP {}", resp.status())));
    }
    Ok(resp)
}

/// Streams one file into `{target}.part`, hashing as it goes, then checks
/// and renames it.
async fn download(
    client: &reqwest::Client,
    url: &str,
    file: &str,
    size: u64,
    expect: &Expect,
    target: &Path,
) -> Result<(), EmbedError> {
    let part = target.with_extension("part");
    let io = |source| EmbedError::Io {
        path: part.clone(),
        source,
    };
    let integrity = |reason: String| EmbedError::Integrity {
        file: file.to_string(),
        url: url.to_string(),
        reason,
    };
    tracing::info!(file, url, bytes = size, "downloading model file");
    let resp = get(client, url).await?;
    let mut out = std::fs::File::create(&part).map_err(io)?;
    let mut sha256 = Sha256::new();
    let mut sha1 = Sha1::new();
    sha1.update(format!("blob {size}\0").as_bytes());
    let (mut got, mut next_report) = (0u64, size / 10);
    let mut body = resp.bytes_stream();
    let result = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| EmbedError::Download {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
            got += chunk.len() as u64;
            if got > size {
                return Err(integrity(format!("more than the listed {size} bytes")));
            }
            sha256.update(&chunk);
            sha1.update(&chunk);
            out.write_all(&chunk).map_err(io)?;
            if size >= 10 << 20 && got >= next_report {
                tracing::info!(
                    file,
                    percent = got * 100 / size.max(1),
                    "downloading model file"
                );
                next_report += size / 10;
            }
        }
        if got != size {
            return Err(integrity(format!("{got} bytes, the listing says {size}")));
        }
        let (kind, want, have) = match expect {
            Expect::Sha256(want) => ("SHA-256", want, super::encoder::hex(&sha256.finalize())),
            Expect::GitBlob(want) => ("git blob id", want, super::encoder::hex(&sha1.finalize())),
        };
        if &have != want {
            return Err(integrity(format!("{kind} {have}, the listing says {want}")));
        }
        out.sync_all().map_err(io)?;
        Ok(())
    }
    .await;
    drop(out);
    match result {
        Ok(()) => std::fs::rename(&part, target).map_err(|source| EmbedError::Io {
            path: target.to_path_buf(),
            source,
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            Err(e)
        }
    }
}
