//! Links mailed to subscribers, and the secrets behind them.
//!
//! Manage tokens are derived, not stored: `HMAC-SHA256(key, "manage" ‖ id
//! ‖ generation)`, so a digest can carry the subscriber's link without the
//! database ever holding a plaintext token; the database stores the
//! token's SHA-256 and every lookup goes through that hash, so a token can
//! still be revoked or rotated (bump the generation). The key lives in a
//! file beside the database (or in config), not in the database, so a
//! leaked database backup does not leak working links.

use crate::domain::{FeedbackAction, PaperId, SubscriberId, Token};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
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
    /// The HMAC keyed once: every MAC starts from a copy of this state
    /// instead of hashing the key again (a digest signs ~30 links).
    keyed: HmacSha256,
    /// The base up to and including its path, without a trailing `/`,
    /// and what follows the path (query, fragment): a link is
    /// `prefix + path + suffix`, built without parsing a URL per link.
    prefix: Arc<str>,
    suffix: Arc<str>,
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
        let path = base.path().trim_end_matches('/');
        let prefix = format!("{}{path}", &base[..url::Position::BeforePath]);
        let suffix = base[url::Position::AfterPath..].to_string();
        Links {
            keyed: HmacSha256::new_from_slice(&key).expect("HMAC accepts any key length"),
            prefix: prefix.into(),
            suffix: suffix.into(),
            base,
        }
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.keyed.clone();
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

    /// An HMAC over arbitrary labelled data, for Message-IDs.
    pub fn keyed_digest(&self, label: &str, data: &[u8]) -> [u8; 32] {
        self.mac(&[label.as_bytes(), data])
    }

    /// The signed token of a digest's feedback link: subscriber, action
    /// and paper in the clear, then `HMAC(key, "feedback" ‖ id ‖ manage
    /// generation ‖ paper ‖ action)`. Nothing is stored; rotating the
    /// manage link (or deleting the subscriber) invalidates every
    /// feedback link too. Shape: `42.more.<base64url paper id>.<base64url MAC>`.
    pub fn feedback_token(
        &self,
        id: SubscriberId,
        generation: i64,
        paper: &PaperId,
        action: FeedbackAction,
    ) -> String {
        let mac = self.feedback_mac(id, generation, paper, action);
        format!(
            "{}.{}.{}.{}",
            id.0,
            action.as_str(),
            URL_SAFE_NO_PAD.encode(paper.as_str()),
            URL_SAFE_NO_PAD.encode(mac)
        )
    }

    fn feedback_mac(
        &self,
        id: SubscriberId,
        generation: i64,
        paper: &PaperId,
        action: FeedbackAction,
    ) -> [u8; 32] {
        self.mac(&[
            b"paperboy/feedback/v1",
            &id.0.to_be_bytes(),
            &generation.to_be_bytes(),
            paper.as_str().as_bytes(),
            action.as_str().as_bytes(),
        ])
    }

    /// Whether a parsed feedback token was signed by us for this
    /// subscriber's current manage generation (constant-time compare).
    pub fn verify_feedback(&self, claim: &FeedbackClaim, generation: i64) -> bool {
        let want = self.feedback_mac(claim.subscriber, generation, &claim.paper, claim.action);
        constant_time_eq(&want, &claim.mac)
    }

    pub fn feedback_url(&self, token: &str) -> String {
        self.join(&["/feedback/", token])
    }

    /// The base URL with `parts` appended to its path. The parts are
    /// paperboy's own paths and tokens (base64url, digits and dots), which
    /// a URL path carries as they are: nothing to escape.
    fn join(&self, parts: &[&str]) -> String {
        debug_assert!(parts.iter().all(|p| p
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b))));
        let len = parts.iter().map(|p| p.len()).sum::<usize>();
        let mut url = String::with_capacity(self.prefix.len() + len + self.suffix.len());
        url.push_str(&self.prefix);
        for p in parts {
            url.push_str(p);
        }
        url.push_str(&self.suffix);
        url
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    pub fn home_url(&self) -> String {
        self.join(&["/"])
    }

    pub fn confirm_url(&self, token: &Token) -> String {
        self.join(&["/confirm/", token.as_str()])
    }

    pub fn manage_url(&self, token: &Token) -> String {
        self.join(&["/manage/", token.as_str()])
    }

    pub fn unsubscribe_url(&self, token: &Token) -> String {
        self.join(&["/unsubscribe/", token.as_str()])
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

/// What a feedback token claims, before its MAC is checked against the
/// subscriber's current generation ([`Links::verify_feedback`]).
#[derive(Clone, PartialEq, Eq)]
pub struct FeedbackClaim {
    pub subscriber: SubscriberId,
    pub action: FeedbackAction,
    pub paper: PaperId,
    mac: [u8; 32],
}

impl std::fmt::Debug for FeedbackClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedbackClaim")
            .field("subscriber", &self.subscriber)
            .field("action", &self.action)
            .field("paper", &self.paper)
            .finish_non_exhaustive()
    }
}

/// Longest paper id a feedback token may carry (ids are ~10–30 bytes).
const MAX_TOKEN_PAPER_BYTES: usize = 128;

impl FeedbackClaim {
    /// Parses the token's shape only: canonical base64url, a known
    /// action, a positive id. Anything else is `None` and never reaches
    /// the database.
    pub fn parse(token: &str) -> Option<FeedbackClaim> {
        let mut parts = token.split('.');
        let (id, action, paper, mac) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || id.len() > 19 || paper.len() > MAX_TOKEN_PAPER_BYTES * 2 {
            return None;
        }
        if !id.bytes().all(|b| b.is_ascii_digit()) || id.starts_with('0') {
            return None;
        }
        let id: i64 = id.parse().ok()?;
        let action = FeedbackAction::parse(action)?;
        let paper_bytes = canonical_b64(paper)?;
        let paper = String::from_utf8(paper_bytes).ok()?;
        if paper.is_empty() || paper.len() > MAX_TOKEN_PAPER_BYTES {
            return None;
        }
        let mac: [u8; 32] = canonical_b64(mac)?.try_into().ok()?;
        Some(FeedbackClaim {
            subscriber: SubscriberId(id),
            action,
            paper: PaperId::from_stored(paper),
            mac,
        })
    }
}

fn canonical_b64(s: &str) -> Option<Vec<u8>> {
    let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
    (URL_SAFE_NO_PAD.encode(&bytes) == s).then_some(bytes)
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

    /// Links are built by string concatenation; they must be what the url
    /// crate makes of the base with the path appended.
    #[test]
    fn links_are_the_base_url_with_the_path_appended() {
        for base in [
            "https://p.example.org",
            "https://p.example.org/",
            "http://127.0.0.1:8080/news/",
            "https://p.example.org/%7Elab/digest?src=mail#top",
            "https://P.Example.ORG:443/a//",
        ] {
            let l = links(base);
            let token = l.manage_token(SubscriberId(42), 3);
            let (paper, _) = PaperId::parse_arxiv("2406.01234").unwrap();
            let feedback = l.feedback_token(SubscriberId(42), 3, &paper, FeedbackAction::More);
            let by_url = |path: String| {
                let mut url = Url::parse(base).unwrap();
                let base_path = url.path().trim_end_matches('/').to_string();
                url.set_path(&format!("{base_path}{path}"));
                url.to_string()
            };
            assert_eq!(l.home_url(), by_url("/".into()), "{base}");
            assert_eq!(
                l.manage_url(&token),
                by_url(format!("/manage/{}", token.as_str()))
            );
            assert_eq!(
                l.confirm_url(&token),
                by_url(format!("/confirm/{}", token.as_str()))
            );
            assert_eq!(
                l.unsubscribe_url(&token),
                by_url(format!("/unsubscribe/{}", token.as_str()))
            );
            assert_eq!(
                l.feedback_url(&feedback),
                by_url(format!("/feedback/{feedback}"))
            );
        }
    }

    /// The once-keyed HMAC state gives the MAC of a freshly keyed one.
    #[test]
    fn a_copied_keyed_state_signs_as_a_fresh_key_does() {
        let l = links("https://p.example.org");
        let mut fresh = HmacSha256::new_from_slice(&[7; 32]).unwrap();
        for p in [&b"label"[..], b"data"] {
            fresh.update(&(p.len() as u32).to_be_bytes());
            fresh.update(p);
        }
        let want: [u8; 32] = fresh.finalize().into_bytes().into();
        assert_eq!(l.keyed_digest("label", b"data"), want);
        assert_eq!(
            l.keyed_digest("label", b"data"),
            want,
            "the state is not consumed"
        );
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
    fn feedback_tokens_verify_only_for_their_subscriber_generation_paper_and_action() {
        let l = links("https://p.example.org");
        let (paper, _) = PaperId::parse_arxiv("hep-th/9901001").unwrap();
        let t = l.feedback_token(SubscriberId(42), 3, &paper, FeedbackAction::More);
        let c = FeedbackClaim::parse(&t).unwrap();
        assert_eq!(
            (c.subscriber, c.action, c.paper.as_str()),
            (SubscriberId(42), FeedbackAction::More, "hep-th/9901001")
        );
        assert!(l.verify_feedback(&c, 3));
        assert!(
            !l.verify_feedback(&c, 4),
            "a rotated manage link invalidates it"
        );
        let other_key = Links::new(Url::parse("https://p.example.org").unwrap(), vec![8; 32]);
        assert!(!other_key.verify_feedback(&c, 3));
        // Changing any clear part breaks the MAC.
        let parts: Vec<&str> = t.split('.').collect();
        let forged = [
            format!("43.{}.{}.{}", parts[1], parts[2], parts[3]),
            format!("{}.not_for_me.{}.{}", parts[0], parts[2], parts[3]),
            format!(
                "{}.{}.{}.{}",
                parts[0],
                parts[1],
                URL_SAFE_NO_PAD.encode("2606.00001"),
                parts[3]
            ),
        ];
        for f in &forged {
            let c = FeedbackClaim::parse(f).unwrap();
            assert!(!l.verify_feedback(&c, 3), "{f}");
        }
        assert!(l
            .feedback_url(&t)
            .starts_with("https://p.example.org/feedback/42.more."));
    }

    #[test]
    fn malformed_feedback_tokens_do_not_parse() {
        let l = links("https://p.example.org");
        let (paper, _) = PaperId::parse_arxiv("2606.00001").unwrap();
        let t = l.feedback_token(SubscriberId(7), 0, &paper, FeedbackAction::Save);
        for bad in [
            String::new(),
            "7.save".to_string(),
            format!("{t}.x"),
            t.replacen("7.", "07.", 1),
            t.replacen("7.", "-7.", 1),
            t.replacen(".save.", ".like.", 1),
            t[..t.len() - 1].to_string(),
            format!("{t}A"),
            "99999999999999999999.more.MA.AAAA".to_string(),
        ] {
            assert!(FeedbackClaim::parse(&bad).is_none(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_arbitrary_feedback_tokens_never_panics(s in ".{0,120}") {
            let _ = FeedbackClaim::parse(&s);
        }
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
