//! VERP envelope senders: each digest leaves with
//! `bounces+<delivery id>.<mac>@domain` as its SMTP `MAIL FROM`, so a
//! bounce that quotes nothing else still names its delivery. The mac is
//! an HMAC of the delivery id under the links key (`links.rs`): nothing
//! is stored, and a forged or altered address is recognised and ignored.

use crate::links::Links;

/// Characters of the mac: 10 bytes of HMAC-SHA256 in lower-case base32,
/// so the local part survives MTAs that fold case.
const MAC_BYTES: usize = 10;

/// What an address says about a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerpMatch {
    /// Not one of paperboy's VERP addresses.
    NotVerp,
    /// A genuine token for this delivery id.
    Delivery(i64),
    /// The shape of a VERP address, but the mac does not verify.
    Forged,
}

/// Builds and checks the VERP addresses of one configured bounce address.
#[derive(Clone)]
pub struct Verp {
    local: String,
    domain: String,
    links: Links,
}

impl std::fmt::Debug for Verp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Verp({}+…@{})", self.local, self.domain)
    }
}

impl Verp {
    /// `base` is the configured bounce address (`bounces@example.org`).
    pub fn new(base: &str, links: Links) -> Option<Verp> {
        let (local, domain) = base.trim().rsplit_once('@')?;
        if local.is_empty() || domain.is_empty() || local.contains('+') {
            return None;
        }
        Some(Verp {
            local: local.to_string(),
            domain: domain.to_ascii_lowercase(),
            links,
        })
    }

    fn mac(&self, delivery_id: i64) -> String {
        let mac = self
            .links
            .keyed_digest("paperboy/verp/v1", &delivery_id.to_be_bytes());
        data_encoding::BASE32_NOPAD
            .encode(&mac[..MAC_BYTES])
            .to_ascii_lowercase()
    }

    /// The envelope sender for a delivery.
    pub fn address(&self, delivery_id: i64) -> String {
        format!(
            "{}+{}.{}@{}",
            self.local,
            delivery_id,
            self.mac(delivery_id),
            self.domain
        )
    }

    /// Checks an address (case-insensitively; the mac compare is constant
    /// time).
    pub fn parse(&self, address: &str) -> VerpMatch {
        use subtle::ConstantTimeEq;
        let Some((local, domain)) = address.trim().rsplit_once('@') else {
            return VerpMatch::NotVerp;
        };
        if !domain.eq_ignore_ascii_case(&self.domain) {
            return VerpMatch::NotVerp;
        }
        let Some(rest) = local
            .get(..self.local.len() + 1)
            .filter(|p| p.eq_ignore_ascii_case(&format!("{}+", self.local)))
            .map(|p| &local[p.len()..])
        else {
            return VerpMatch::NotVerp;
        };
        let Some((id, mac)) = rest.split_once('.') else {
            return VerpMatch::Forged;
        };
        let Ok(id) = id.parse::<i64>() else {
            return VerpMatch::Forged;
        };
        let expected = self.mac(id);
        let given = mac.to_ascii_lowercase();
        if given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
        {
            VerpMatch::Delivery(id)
        } else {
            VerpMatch::Forged
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verp(key: u8) -> Verp {
        let links = Links::new(
            url::Url::parse("https://p.example.org").unwrap(),
            vec![key; 32],
        );
        Verp::new("bounces@Example.org", links).unwrap()
    }

    #[test]
    fn an_address_round_trips_to_its_delivery() {
        let v = verp(1);
        let a = v.address(4711);
        assert!(a.starts_with("bounces+4711."), "{a}");
        assert!(a.ends_with("@example.org"));
        assert_eq!(v.parse(&a), VerpMatch::Delivery(4711));
        assert_eq!(v.parse(&a.to_ascii_uppercase()), VerpMatch::Delivery(4711));
    }

    #[test]
    fn a_changed_id_or_another_key_is_forged() {
        let v = verp(1);
        let a = v.address(4711);
        let tampered = a.replacen("4711", "4712", 1);
        assert_eq!(v.parse(&tampered), VerpMatch::Forged);
        assert_eq!(verp(2).parse(&a), VerpMatch::Forged);
        assert_eq!(v.parse("bounces+4711@example.org"), VerpMatch::Forged);
    }

    #[test]
    fn other_addresses_are_not_verp() {
        let v = verp(1);
        assert_eq!(v.parse("bounces@example.org"), VerpMatch::NotVerp);
        assert_eq!(v.parse("reader@example.org"), VerpMatch::NotVerp);
        assert_eq!(
            v.parse(&v.address(1).replace("example.org", "evil.test")),
            VerpMatch::NotVerp
        );
        assert!(Verp::new("no-at-sign", verp(1).links).is_none());
    }
}
