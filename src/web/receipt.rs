//! What the "Check your inbox" page says after a subscribe request: the
//! address as typed, and honestly whether a mail went out now, or one went
//! out recently and when another can be asked for, or the hour's budget is
//! spent. The words depend only on that state, never on whether the
//! address is subscribed: subscribing, subscribed and suppressed addresses
//! share the per-address limits (a suppressed address's requests are
//! counted without a mail), so each answers alike.
//!
//! The POST redirects to `/subscribe/sent?r=…` (post/redirect/get); `r`
//! is the answer sealed with XChaCha20-Poly1305 under a key derived from
//! the secret key, so the address never appears in a URL, a log or a
//! Referer, and nobody can make the page show words of their choosing.
//! A receipt is good for [`RECEIPT_TTL`]; later the page shows the
//! general answer.

use crate::links::Links;
use crate::store::subscribers::ConfirmLimits;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Duration, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// How long the page can be reloaded with the address on it.
pub(super) const RECEIPT_TTL: Duration = Duration::hours(1);
const NONCE_LEN: usize = 24;

/// What happened to the mail a subscribe request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum MailAnswer {
    /// Queued now (or, for a suppressed address, counted as if it were).
    Sent,
    /// Held back by the per-address limits: the last one went out at
    /// `last`; another can be asked for from `next`.
    Recent {
        last: DateTime<Utc>,
        next: DateTime<Utc>,
    },
    /// Held back by the global hourly limit.
    Busy,
}

impl MailAnswer {
    /// The answer for a request whose mail was `queued` (or not), from
    /// when mails to the address went out in the last 24 hours (oldest
    /// first, `Store::recent_mails_to`), by the rules the store applies.
    /// Held back with the address under its limits, it was the global
    /// limit.
    pub(super) fn of(
        queued: bool,
        times: &[DateTime<Utc>],
        limits: &ConfirmLimits,
        now: DateTime<Utc>,
    ) -> MailAnswer {
        if queued {
            return MailAnswer::Sent;
        }
        let recent = times.iter().any(|t| *t > now - limits.min_interval);
        let day_full = times.len() >= limits.per_day as usize && limits.per_day > 0;
        let (Some(&last), true) = (times.last(), recent || day_full) else {
            return MailAnswer::Busy;
        };
        let mut next = last + limits.min_interval;
        if day_full {
            // When the oldest counted mail leaves the 24 hours, one fewer
            // than the limit is left.
            let frees = times[times.len() - limits.per_day as usize] + Duration::hours(24);
            next = next.max(frees);
        }
        MailAnswer::Recent { last, next }
    }
}

/// The sealed content of `r`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Receipt {
    /// The address as typed (validated).
    pub to: String,
    /// The time zone chosen on the form, for the times shown.
    pub zone: String,
    pub answer: MailAnswer,
    pub issued: DateTime<Utc>,
}

fn cipher(links: &Links, label: &str) -> XChaCha20Poly1305 {
    let key = links.keyed_digest(label, b"");
    XChaCha20Poly1305::new(&key.into())
}

const RECEIPT_LABEL: &str = "paperboy/subscribe-receipt/v1";

/// `value` as JSON sealed with XChaCha20-Poly1305 under a key derived
/// from the secret key and `label` (one label per kind of value, so one
/// kind never opens as another), as a URL-safe string.
pub(super) fn seal_json<T: Serialize>(
    links: &Links,
    label: &str,
    value: &T,
) -> anyhow::Result<String> {
    let plain = serde_json::to_vec(value)?;
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let ct = cipher(links, label)
        .encrypt(&nonce, plain.as_slice())
        .map_err(|_| anyhow::anyhow!("cannot seal a {label} value"))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(URL_SAFE_NO_PAD.encode(out))
}

/// The value [`seal_json`] sealed in `raw` under `label`, if it was sealed
/// here and `raw` is at most `max_len` characters.
pub(super) fn open_json<T: DeserializeOwned>(
    links: &Links,
    label: &str,
    raw: &str,
    max_len: usize,
) -> Option<T> {
    if raw.len() > max_len {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    if bytes.len() <= NONCE_LEN {
        return None;
    }
    let (nonce, ct) = bytes.split_at(NONCE_LEN);
    let plain = cipher(links, label)
        .decrypt(XNonce::from_slice(nonce), ct)
        .ok()?;
    serde_json::from_slice(&plain).ok()
}

impl Receipt {
    /// The receipt as a URL-safe string.
    pub(super) fn seal(&self, links: &Links) -> anyhow::Result<String> {
        seal_json(links, RECEIPT_LABEL, self)
    }

    /// The receipt in `raw`, if it was sealed here and is still current.
    pub(super) fn open(links: &Links, raw: &str, now: DateTime<Utc>) -> Option<Receipt> {
        let r: Receipt = open_json(links, RECEIPT_LABEL, raw, 2048)?;
        let fresh = r.issued <= now + Duration::minutes(1) && now - r.issued <= RECEIPT_TTL;
        fresh.then_some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn limits() -> ConfirmLimits {
        ConfirmLimits {
            min_interval: Duration::minutes(15),
            per_day: 3,
            global_per_hour: 500,
        }
    }

    fn history(times: &[&str]) -> Vec<DateTime<Utc>> {
        times.iter().map(|t| at(t)).collect()
    }

    #[test]
    fn a_held_back_mail_says_when_the_last_went_and_when_another_can() {
        let now = at("2026-06-12T12:05:00Z");
        let h = history(&["2026-06-12T12:00:00Z"]);
        assert_eq!(
            MailAnswer::of(false, &h, &limits(), now),
            MailAnswer::Recent {
                last: at("2026-06-12T12:00:00Z"),
                next: at("2026-06-12T12:15:00Z"),
            }
        );
        // Three today: the next frees up when the oldest is a day old.
        let h = history(&[
            "2026-06-11T20:00:00Z",
            "2026-06-12T08:00:00Z",
            "2026-06-12T11:00:00Z",
        ]);
        assert_eq!(
            MailAnswer::of(false, &h, &limits(), now),
            MailAnswer::Recent {
                last: at("2026-06-12T11:00:00Z"),
                next: at("2026-06-12T20:00:00Z"),
            }
        );
        assert_eq!(MailAnswer::of(true, &h, &limits(), now), MailAnswer::Sent);
        // Nothing held back for this address: the global budget did it.
        let quiet = history(&["2026-06-12T08:00:00Z"]);
        assert_eq!(
            MailAnswer::of(false, &quiet, &limits(), now),
            MailAnswer::Busy
        );
    }

    #[test]
    fn a_receipt_opens_only_where_it_was_sealed_and_only_for_an_hour() {
        let links = Links::new("https://example.org/".parse().unwrap(), vec![7; 32]);
        let now = at("2026-06-12T12:00:00Z");
        let r = Receipt {
            to: "<b>a@example.org</b>".into(),
            zone: "Europe/Berlin".into(),
            answer: MailAnswer::Sent,
            issued: now,
        };
        let sealed = r.seal(&links).unwrap();
        assert!(!sealed.contains("example"));
        assert_eq!(Receipt::open(&links, &sealed, now), Some(r.clone()));
        assert_eq!(
            Receipt::open(&links, &sealed, now + Duration::minutes(61)),
            None
        );
        let other = Links::new("https://example.org/".parse().unwrap(), vec![8; 32]);
        assert_eq!(Receipt::open(&other, &sealed, now), None);
        let mut tampered = sealed.into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            Receipt::open(&links, &String::from_utf8(tampered).unwrap(), now),
            None
        );
    }
}
