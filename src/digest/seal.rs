//! Encryption of stored message bytes.
//!
//! A prepared digest is stored before sending so a resend is
//! byte-identical (R54), but its bytes carry the subscriber's manage link.
//! They are sealed with XChaCha20-Poly1305 under a key derived from the
//! secret key (which lives outside the database), so the database never
//! holds a usable token (R30).

use crate::links::Links;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const NONCE_LEN: usize = 24;

#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(…)")
    }
}

impl Sealer {
    pub fn new(links: &Links) -> Sealer {
        let key = links.keyed_digest("paperboy/stored-message-key/v1", b"");
        Sealer {
            cipher: XChaCha20Poly1305::new(&key.into()),
        }
    }

    /// nonce ‖ ciphertext+tag.
    pub fn seal(&self, plain: &[u8]) -> anyhow::Result<Vec<u8>> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = self
            .cipher
            .encrypt(&nonce, plain)
            .map_err(|_| anyhow::anyhow!("cannot encrypt stored message"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
        anyhow::ensure!(sealed.len() > NONCE_LEN, "stored message is truncated");
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(XNonce::from_slice(nonce), ct)
            .map_err(|_| {
                anyhow::anyhow!("stored message does not decrypt (was the secret key changed?)")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_round_trip_and_hide_the_plaintext() {
        let links = Links::new(url::Url::parse("https://x.example").unwrap(), vec![1; 32]);
        let s = Sealer::new(&links);
        let plain = b"List-Unsubscribe: <https://x.example/unsubscribe/secret-token>";
        let sealed = s.seal(plain).unwrap();
        assert!(!sealed.windows(12).any(|w| w == b"secret-token"));
        assert_eq!(s.open(&sealed).unwrap(), plain);
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(s.open(&tampered).is_err());
        let other = Sealer::new(&Links::new(
            url::Url::parse("https://x.example").unwrap(),
            vec![2; 32],
        ));
        assert!(other.open(&sealed).is_err());
    }
}
