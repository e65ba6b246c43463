//! Capability tokens carried in confirm / manage / unsubscribe links.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;

/// What a token authorises. Tokens are bound to one purpose: a confirm
/// token cannot manage, and a manage token cannot confirm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    /// Single use, expires.
    Confirm,
    /// Long-lived and rotatable; also authorises unsubscribe and export.
    Manage,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::Confirm => "confirm",
            TokenPurpose::Manage => "manage",
        }
    }
}

/// A plaintext token: 32 random bytes, base64url without padding
/// (43 characters). It exists only in memory and in the links mailed to
/// the subscriber; the database stores [`Token::hash`].
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

/// Length of an encoded token.
pub const TOKEN_LEN: usize = 43;

impl Token {
    /// A fresh token from the operating system's CSPRNG.
    pub fn generate() -> Token {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Token(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A token from 32 bytes the caller derived (e.g. an HMAC output).
    pub fn from_bytes(bytes: [u8; 32]) -> Token {
        Token(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accepts exactly the canonical encoding of 32 bytes; anything else
    /// (wrong length, padding, non-canonical trailing bits) is refused
    /// without touching the database.
    pub fn decode(s: &str) -> Option<Token> {
        if s.len() != TOKEN_LEN {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
        if bytes.len() != 32 || URL_SAFE_NO_PAD.encode(&bytes) != s {
            return None;
        }
        Some(Token(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the token, hex: the only form ever stored.
    pub fn hash(&self) -> String {
        data_encoding::HEXLOWER.encode(&Sha256::digest(self.0.as_bytes()))
    }
}

/// Never print a token by accident.
impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn generated_tokens_are_43_chars_and_distinct() {
        let mut seen = HashSet::new();
        for _ in 0..100_000 {
            let t = Token::generate();
            assert_eq!(t.as_str().len(), TOKEN_LEN);
            assert!(Token::decode(t.as_str()).is_some());
            assert!(seen.insert(t.0));
        }
    }

    #[test]
    fn non_canonical_or_malformed_tokens_are_refused() {
        let t = Token::generate();
        let s = t.as_str();
        assert!(Token::decode(&s[..42]).is_none());
        assert!(Token::decode(&format!("{s}=")).is_none());
        assert!(Token::decode(&s.replace(|c: char| c.is_ascii_alphanumeric(), "+")).is_none());
        // The last character carries 2 unused bits; flipping them is non-canonical.
        let canonical = URL_SAFE_NO_PAD.encode([0u8; 32]);
        let mut bad = canonical.clone();
        bad.pop();
        bad.push('B');
        assert!(Token::decode(&canonical).is_some());
        assert!(Token::decode(&bad).is_none());
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let t = Token::generate();
        assert!(!format!("{t:?}").contains(t.as_str()));
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(s in ".{0,64}") {
            let _ = Token::decode(&s);
        }
    }
}
