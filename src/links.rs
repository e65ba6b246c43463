//! Links mailed to subscribers, and the secrets behind them.
//!
//! Manage tokens are derived, not stored: `HMAC-SHA256(key, "manage" ‖ id
//! ‖ generation)`, so a digest can carry the subscriber's link without the
//! database ever holding a plaintext token (R30); the database stores the
//! token's SHA-256 and every lookup goes through that hash, so a token can
//! still be revoked or rotated (bump the generation). The key lives in a
//! file beside the database (or in config), not in the database, so a
//! leaked database backup does not leak working links.

use crate::domain::{SubscriberId, Token};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::path::Path;
use std::sync::Arc;
use url::Url;

type HmacSha256 = Hmac<Sha256>;

/// Builds every URL paperboy puts into mail and pages.
#[derive(Clone)]
pub struct Links {
    base: Url,
    key: Arc<[u8]>,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links")
            .field("base", &self.base.as_str())
            .finish()
    }
}

impl Links {
    pub fn new(base: Url, key: Vec<u8>) -> Links {
        Links {
            base,
            key: key.into(),
        }
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC accepts any key length");
        for p in parts {
            mac.update(&(p.len() as u32).to_be_bytes());
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// The subscriber's manage token for a generation.
    pub fn manage_token(&self, id: SubscriberId, generation: i64) -> Token {
        Token::from_bytes(self.mac(&[
            b"paperboy/manage/v1",
            &id.0.to_be_bytes(),
            &generation.to_be_bytes(),
        ]))
    }

    /// SHA-256 of the manage token: what the database stores.
    pub fn manage_token_hash(&self, id: SubscriberId, generation: i64) -> String {
        self.manage_token(id, generation).hash()
    }

    /// An HMAC over arbitrary labelled data, for Message-IDs (R2).
    pub fn keyed_digest(&self, label: &str, data: &[u8]) -> [u8; 32] {
        self.mac(&[label.as_bytes(), data])
    }

    fn join(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        let base_path = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base_path}{path}"));
        url
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    pub fn home_url(&self) -> String {
        self.join("/").to_string()
    }

    pub fn confirm_url(&self, token: &Token) -> String {
        self.join(&format!("/confirm/{}", token.as_str()))
            .to_string()
    }

    pub fn manage_url(&self, token: &Token) -> String {
        self.join(&format!("/manage/{}", token.as_str()))
            .to_string()
    }

    pub fn unsubscribe_url(&self, token: &Token) -> String {
        self.join(&format!("/unsubscribe/{}", token.as_str()))
            .to_string()
    }

    /// The host part of the base URL, for origin checks.
    pub fn host_with_port(&self) -> String {
        match (self.base.host_str(), self.base.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => String::new(),
        }
    }
}

/// Loads the HMAC key: the configured one, else `secret.key` beside the
/// database, generated (32 random bytes, mode 0600) on first start.
pub fn load_or_create_key(configured: Option<Vec<u8>>, db_path: &Path) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    use base64::Engine;
    if let Some(k) = configured {
        return Ok(k);
    }
    let dir = db_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("secret.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let key = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .with_context(|| format!("{} is not base64", path.display()))?;
            anyhow::ensure!(
                key.len() >= 32,
                "{} holds fewer than 32 bytes",
                path.display()
            );
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use rand::RngCore;
            let mut key = vec![0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            let text = base64::engine::general_purpose::STANDARD.encode(&key);
            // Written to a temporary file and renamed, so a crash never
            // leaves a truncated key that would invalidate every link.
            let tmp = dir.join(".secret.key.tmp");
            write_private(&tmp, text.as_bytes())
                .with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &path).with_context(|| format!("creating {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a new secret key for links and Message-IDs");
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(base: &str) -> Links {
        Links::new(Url::parse(base).unwrap(), vec![7; 32])
    }

    #[test]
    fn manage_tokens_are_stable_per_subscriber_and_generation() {
        let l = links("https://p.example.org");
        let a = l.manage_token(SubscriberId(1), 0);
        assert_eq!(a, l.manage_token(SubscriberId(1), 0));
        assert_ne!(a, l.manage_token(SubscriberId(2), 0));
        assert_ne!(a, l.manage_token(SubscriberId(1), 1));
        assert!(Token::decode(a.as_str()).is_some());
        let other_key = Links::new(Url::parse("https://p.example.org").unwrap(), vec![8; 32]);
        assert_ne!(a, other_key.manage_token(SubscriberId(1), 0));
    }

    #[test]
    fn urls_keep_a_base_path() {
        let l = links("https://example.org/paperboy/");
        let t = Token::generate();
        assert_eq!(
            l.unsubscribe_url(&t),
            format!("https://example.org/paperboy/unsubscribe/{}", t.as_str())
        );
        assert_eq!(l.home_url(), "https://example.org/paperboy/");
    }

    #[test]
    fn the_generated_key_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        let k1 = load_or_create_key(None, &db).unwrap();
        let k2 = load_or_create_key(None, &db).unwrap();
        assert_eq!(k1, k2);
        assert_eq!(k1.len(), 32);
    }
}
