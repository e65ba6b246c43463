//! Email addresses: validation and canonicalisation.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// Longest address accepted (RFC 5321 path limit less the angle brackets).
pub const MAX_ADDRESS_LEN: usize = 254;
/// Longest local part (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_LEN: usize = 64;

/// A validated address, as typed (trimmed) plus its canonical key.
///
/// Only [`EmailAddress::parse`] creates one, so holding an `EmailAddress`
/// means the address passed every check below.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EmailAddress {
    display: String,
    canonical: String,
}

/// Why an address was refused; the message is safe to show to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("Please enter an email address.")]
    Empty,
    #[error("That address is too long.")]
    TooLong,
    #[error("That address contains characters that are not allowed.")]
    ControlCharacters,
    #[error("Addresses with non-ASCII characters before the @ are not supported.")]
    NonAsciiLocalPart,
    #[error("That does not look like an email address (expected name@example.org).")]
    Invalid,
}

impl EmailAddress {
    /// Trims, rejects controls and over-long input, requires both lettre's
    /// parser and `email_address` (no display text, no domain literal,
    /// a TLD required) to accept, and derives the canonical key: the whole
    /// address lower-cased (the local part is ASCII), the domain in
    /// punycode. Case folding makes `Keeper@`, `keeper@` and `KEEPER@` one
    /// subscriber: RFC 5321 lets a host treat local parts case-sensitively,
    /// but no mailbox provider in practice does, and three subscriptions
    /// for one person is the real harm. No provider-specific folding
    /// (Gmail dots) happens: that would merge distinct mailboxes elsewhere.
    pub fn parse(raw: &str) -> Result<EmailAddress, EmailError> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(EmailError::Empty);
        }
        if s.chars().any(|c| c.is_control()) {
            return Err(EmailError::ControlCharacters);
        }
        if s.len() > MAX_ADDRESS_LEN {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = s.rsplit_once('@').ok_or(EmailError::Invalid)?;
        if local.len() > MAX_LOCAL_LEN {
            return Err(EmailError::TooLong);
        }
        if !local.is_ascii() {
            return Err(EmailError::NonAsciiLocalPart);
        }
        // Dot-atom only: quoted local parts are legal but almost never real,
        // and they are how markup and header tricks sneak into addresses.
        let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
        if local.is_empty()
            || local.starts_with('.')
            || local.ends_with('.')
            || local.contains("..")
            || !local.chars().all(|c| c == '.' || atext(c))
        {
            return Err(EmailError::Invalid);
        }
        if domain.ends_with('.') || domain.starts_with('.') || domain.contains("..") {
            return Err(EmailError::Invalid);
        }
        let opts = email_address::Options::default()
            .without_display_text()
            .without_domain_literal()
            .with_required_tld();
        email_address::EmailAddress::parse_with_options(s, opts)
            .map_err(|_| EmailError::Invalid)?;
        s.parse::<lettre::Address>()
            .map_err(|_| EmailError::Invalid)?;
        let ascii_domain = idna::domain_to_ascii(domain).map_err(|_| EmailError::Invalid)?;
        if ascii_domain.is_empty() || !ascii_domain.contains('.') {
            return Err(EmailError::Invalid);
        }
        Ok(EmailAddress {
            display: s.to_string(),
            canonical: format!(
                "{}@{}",
                local.to_ascii_lowercase(),
                ascii_domain.to_ascii_lowercase()
            ),
        })
    }

    /// Rebuilds an address read back from storage, where it was stored
    /// only after [`EmailAddress::parse`] accepted it.
    pub fn from_stored(display: String, canonical: String) -> EmailAddress {
        EmailAddress { display, canonical }
    }

    /// The address as the subscriber typed it; mail goes here.
    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The uniqueness key.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// SHA-256 of the canonical key, hex: what suppression and rate-limit
    /// tables store instead of the address.
    pub fn hash(&self) -> String {
        hash_canonical(&self.canonical)
    }

    /// The hash this address had when canonical keys kept the local part's
    /// case (before migration `20261204000400`). Suppressions store only
    /// hashes, so the ones recorded then cannot be re-keyed; lookups check
    /// this hash too, which still matches the address as it was typed.
    pub fn legacy_hash(&self) -> String {
        let local = self.display.rsplit_once('@').map_or("", |(l, _)| l);
        let domain = self.canonical.rsplit_once('@').map_or("", |(_, d)| d);
        hash_canonical(&format!("{local}@{domain}"))
    }

    /// Every hash a suppression of this address may be stored under: the
    /// current one, then the [legacy](EmailAddress::legacy_hash) one when
    /// it differs.
    pub fn suppression_hashes(&self) -> Vec<String> {
        let (now, old) = (self.hash(), self.legacy_hash());
        if now == old {
            vec![now]
        } else {
            vec![now, old]
        }
    }

    /// `j***@example.org`: safe for logs.
    pub fn masked(&self) -> String {
        let (local, domain) = self.display.rsplit_once('@').unwrap_or(("", ""));
        let first: String = local.chars().take(1).collect();
        format!("{first}***@{domain}")
    }
}

pub fn hash_canonical(canonical: &str) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(canonical.as_bytes()))
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_thirty_addresses_are_judged_as_expected() {
        let accepted = [
            ("alice@example.org", "alice@example.org"),
            ("  alice@example.org  ", "alice@example.org"),
            ("Alice@Example.ORG", "alice@example.org"),
            ("alice+papers@example.org", "alice+papers@example.org"),
            (
                "first.last@sub.example.co.uk",
                "first.last@sub.example.co.uk",
            ),
            ("a@b.io", "a@b.io"),
            (
                "user_name-1@example-domain.com",
                "user_name-1@example-domain.com",
            ),
            ("élise@exämple.org", ""),
            ("bob@exämple.org", "bob@xn--exmple-cua.org"),
            ("x@münchen.de", "x@xn--mnchen-3ya.de"),
            ("o'brien@example.ie", "o'brien@example.ie"),
        ];
        for (raw, canonical) in accepted {
            match EmailAddress::parse(raw) {
                Ok(a) => assert_eq!(a.canonical(), canonical, "{raw}"),
                Err(e) => assert!(canonical.is_empty(), "{raw} rejected: {e}"),
            }
        }
        let long_local = format!("{}@example.org", "a".repeat(65));
        let long_total = format!("{}@{}.org", "a".repeat(60), "b".repeat(200));
        let rejected = [
            "",
            "   ",
            "plainaddress",
            "@example.org",
            "alice@",
            "alice@example",
            "alice@localhost",
            "alice@example.org.",
            "alice@.example.org",
            "alice@exa..mple.org",
            "alice@@example.org",
            "alice@[127.0.0.1]",
            "Alice <alice@example.org>",
            "\"><script>\"@example.org",
            "alice@example.org\r\nBcc: victim@example.org",
            "alice\n@example.org",
            "alice@exa mple.org",
            "alice@example.org\0",
            long_local.as_str(),
            long_total.as_str(),
        ];
        for raw in rejected {
            assert!(
                EmailAddress::parse(raw).is_err(),
                "{raw:?} should be rejected"
            );
        }
    }

    #[test]
    fn masking_hides_the_local_part() {
        let a = EmailAddress::parse("jane.doe@example.com").unwrap();
        assert_eq!(a.masked(), "j***@example.com");
    }

    #[test]
    fn one_mailbox_typed_three_ways_has_one_canonical_key() {
        let forms = [
            "keeper@example.com",
            "Keeper@example.com",
            "KEEPER@EXAMPLE.COM",
        ];
        let parsed: Vec<EmailAddress> = forms
            .iter()
            .map(|f| EmailAddress::parse(f).unwrap())
            .collect();
        for (a, form) in parsed.iter().zip(forms) {
            assert_eq!(a.canonical(), "keeper@example.com");
            assert_eq!(a.hash(), parsed[0].hash());
            // Mail still goes to the form the person typed.
            assert_eq!(a.as_str(), form);
        }
    }

    #[test]
    fn the_legacy_hash_keeps_the_typed_local_part() {
        let a = EmailAddress::parse("Keeper@EXAMPLE.com").unwrap();
        assert_eq!(a.legacy_hash(), hash_canonical("Keeper@example.com"));
        assert_eq!(a.suppression_hashes().len(), 2);
        let b = EmailAddress::parse("keeper@example.com").unwrap();
        assert_eq!(b.suppression_hashes(), vec![b.hash()]);
    }

    #[test]
    fn canonicalisation_is_idempotent() {
        let a = EmailAddress::parse("Bob@Exämple.ORG").unwrap();
        let b = EmailAddress::parse(a.canonical()).unwrap();
        assert_eq!(a.canonical(), b.canonical());
    }
}
