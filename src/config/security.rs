//! `[security]`: the HMAC key behind links, Message-IDs and stored bytes.

use super::values::Secret;
use super::{invalid, ConfigError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    secret_key: Secret,
}

#[derive(Debug, Clone)]
pub struct SecurityConfig {
    /// The configured key, decoded; `None`: one is generated beside the
    /// database at first start.
    pub secret_key: Option<SecretKey>,
}

/// Key bytes; `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(Vec<u8>);

impl SecretKey {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl TryFrom<&Raw> for SecurityConfig {
    type Error = ConfigError;

    /// Base64 (standard, or URL-safe without padding) of at least 32 bytes.
    fn try_from(r: &Raw) -> Result<SecurityConfig, ConfigError> {
        if r.secret_key.is_empty() {
            return Ok(SecurityConfig { secret_key: None });
        }
        use base64::Engine;
        let raw = r.secret_key.expose().trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw))
            .map_err(|_| invalid("security.secret_key", "must be base64"))?;
        if bytes.len() < 32 {
            return Err(invalid(
                "security.secret_key",
                "must decode to at least 32 bytes",
            ));
        }
        Ok(SecurityConfig {
            secret_key: Some(SecretKey(bytes)),
        })
    }
}
