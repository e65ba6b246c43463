//! Encryption of stored message bytes.
//!
//! A prepared digest is stored before sending so a resend is
//! byte-identical, but its bytes carry the subscriber's manage link.
//! They are sealed with XChaCha20-Poly1305 under a key derived from the
//! secret key (which lives outside the database), so the database never
//! holds a usable token.
//!
//! They are compressed (LZ4) before sealing: a digest is ~20 KB of
//! repetitive HTML that shrinks several times over, and every stored byte
//! is written to the WAL and again to the database. Sealed plaintext is
//! `COMPRESSED ‖ lz4 block with its size prepended`; a plaintext without
//! the marker is a message stored uncompressed by an older version (a
//! message always starts with a header name, never a NUL byte).

use crate::links::Links;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const NONCE_LEN: usize = 24;
/// Marks a compressed plaintext.
const COMPRESSED: [u8; 2] = [0x00, 0x01];
/// No stored message is anywhere near this; a larger claimed size is
/// corruption, refused before allocating.
const MAX_MESSAGE: usize = 64 << 20;

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

    /// nonce ‖ ciphertext+tag of the compressed message.
    pub fn seal(&self, plain: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut packed = Vec::with_capacity(COMPRESSED.len() + 4 + plain.len() / 2);
        packed.extend_from_slice(&COMPRESSED);
        packed.extend_from_slice(&lz4_flex::compress_prepend_size(plain));
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = self
            .cipher
            .encrypt(&nonce, packed.as_slice())
            .map_err(|_| anyhow::anyhow!("cannot encrypt stored message"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
        anyhow::ensure!(sealed.len() > NONCE_LEN, "stored message is truncated");
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), ct)
            .map_err(|_| {
                anyhow::anyhow!("stored message does not decrypt (was the secret key changed?)")
            })?;
        let Some(block) = plain.strip_prefix(&COMPRESSED) else {
            return Ok(plain);
        };
        let size = block
            .get(..4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize);
        anyhow::ensure!(
            size.is_some_and(|n| n <= MAX_MESSAGE),
            "stored message has a corrupt size"
        );
        lz4_flex::decompress_size_prepended(block)
            .map_err(|e| anyhow::anyhow!("stored message does not decompress: {e}"))
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

    #[test]
    fn repetitive_messages_are_stored_compressed() {
        let s = Sealer::new(&Links::new(
            url::Url::parse("https://x.example").unwrap(),
            vec![1; 32],
        ));
        let plain = "<p style=\"margin:0 0 8px\">a paper</p>\r\n".repeat(500);
        let sealed = s.seal(plain.as_bytes()).unwrap();
        assert!(sealed.len() * 4 < plain.len(), "{} bytes", sealed.len());
        assert_eq!(s.open(&sealed).unwrap(), plain.as_bytes());
    }

    #[test]
    fn messages_sealed_uncompressed_by_older_versions_still_open() {
        let links = Links::new(url::Url::parse("https://x.example").unwrap(), vec![1; 32]);
        let s = Sealer::new(&links);
        let plain = b"From: paperboy <digest@x.example>\r\n\r\nhello";
        // The old format: nonce ‖ ciphertext of the message itself.
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut old = nonce.to_vec();
        old.extend(s.cipher.encrypt(&nonce, &plain[..]).unwrap());
        assert_eq!(s.open(&old).unwrap(), plain);
    }

    #[test]
    fn a_compressed_message_claiming_a_huge_size_is_refused() {
        let links = Links::new(url::Url::parse("https://x.example").unwrap(), vec![1; 32]);
        let s = Sealer::new(&links);
        let mut packed = COMPRESSED.to_vec();
        packed.extend_from_slice(&u32::MAX.to_le_bytes());
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut sealed = nonce.to_vec();
        sealed.extend(s.cipher.encrypt(&nonce, packed.as_slice()).unwrap());
        let err = s.open(&sealed).unwrap_err().to_string();
        assert!(err.contains("corrupt size"), "{err}");
    }
}
