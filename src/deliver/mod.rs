//! Builds MIME messages and hands them to a
//! transport: an SMTP relay, an outbox folder of `.eml` files (the
//! default), or lettre's in-memory stub in unit tests. Deciding *who*
//! gets mail is not this module's business.

use crate::config::{Config, MailTransport};
use crate::domain::EmailAddress;
use crate::render::{sanitize_header_text, RenderedEmail};
use chrono::{DateTime, Utc};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{dkim, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, AsyncTransport, Message};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod outcome;
mod qp;
mod smtp;

/// A delivery failure, classified the way the retry policy needs.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DeliverError {
    /// 4xx: try again later.
    #[error("transient SMTP failure {code}: {message}")]
    Transient { code: u16, message: String },
    /// 5xx: do not retry.
    #[error("permanent SMTP failure {code}: {message}")]
    Permanent {
        code: u16,
        enhanced: Option<String>,
        message: String,
    },
    /// Connection, TLS, timeout, I/O: retry, without blaming the recipient.
    #[error("network failure: {0}")]
    Network(String),
    /// The relay did not answer in time during the exchange: it may or may
    /// not have taken the message (an unknown outcome).
    #[error("timed out: {0}")]
    Timeout(String),
    /// The message could not be built (a bug or bad data): do not retry.
    #[error("cannot build message: {0}")]
    Compose(String),
}

impl DeliverError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            DeliverError::Transient { .. } | DeliverError::Network(_) | DeliverError::Timeout(_)
        )
    }

    /// A permanent failure that says the mailbox does not exist or is
    /// unavailable (enhanced status 5.1.x, or 550/551/553 without one):
    /// the address must be suppressed.
    pub fn is_hard_bounce(&self) -> bool {
        match self {
            DeliverError::Permanent { code, enhanced, .. } => match enhanced {
                Some(e) => e.starts_with("5.1."),
                None => matches!(code, 550 | 551 | 553),
            },
            _ => false,
        }
    }

    /// A rate-limit reply (421 or 4.7.x): the sender should slow down.
    pub fn is_rate_limit(&self) -> bool {
        matches!(self, DeliverError::Transient { code: 421, .. })
            || matches!(self, DeliverError::Transient { message, .. } if message.contains("4.7."))
    }

    /// The relay is no longer there: the connection failed, or it said
    /// 421 (closing the channel). On a connection reused without a check
    /// this says nothing about the message.
    fn connection_gone(&self) -> bool {
        matches!(
            self,
            DeliverError::Network(_) | DeliverError::Transient { code: 421, .. }
        )
    }

    fn from_lettre(e: lettre::transport::smtp::Error) -> DeliverError {
        let message = sanitize_header_text(&e.to_string(), 300);
        match e.status() {
            Some(code) if e.is_permanent() => DeliverError::Permanent {
                code: u16::from(code),
                enhanced: enhanced_status(&message),
                message,
            },
            Some(code) if e.is_transient() => DeliverError::Transient {
                code: u16::from(code),
                message,
            },
            _ => DeliverError::Network(message),
        }
    }
}

/// The first `class.subject.detail` enhanced status code in a reply.
pub fn enhanced_status(reply: &str) -> Option<String> {
    reply
        .split(|c: char| c.is_whitespace() || c == ':' || c == '(' || c == ')')
        .find(|tok| {
            let parts: Vec<&str> = tok.split('.').collect();
            parts.len() == 3
                && matches!(parts[0], "2" | "4" | "5")
                && parts[1..]
                    .iter()
                    .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_string)
}

/// A fully built message, ready for any transport: the exact bytes are
/// what gets sent (and, for crash-safe resends, what gets stored).
#[derive(Debug, Clone)]
pub struct Composed {
    pub envelope: lettre::address::Envelope,
    pub bytes: Vec<u8>,
    pub message_id: String,
}

/// What varies per message.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub to: &'a EmailAddress,
    pub content: &'a RenderedEmail,
    /// The full `<…@domain>` Message-ID.
    pub message_id: String,
    /// HTTPS one-click unsubscribe URL; adds `List-Unsubscribe` and
    /// `List-Unsubscribe-Post`.
    pub unsubscribe_url: Option<String>,
    /// The Date header; `None` means now.
    pub date: Option<DateTime<Utc>>,
}

/// Header policy shared by every message, built once from config.
pub struct Composer {
    from: Mailbox,
    reply_to: Option<Mailbox>,
    list_id: String,
    list_subscribe: String,
    message_id_domain: String,
    max_bytes: usize,
    dkim: Option<dkim::DkimConfig>,
}

impl std::fmt::Debug for Composer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Composer")
            .field("from", &self.from.to_string())
            .field("list_id", &self.list_id)
            .field("dkim", &self.dkim.is_some())
            .finish()
    }
}

/// Headers covered by the DKIM signature: relaxed/relaxed over
/// these verifies with independent verifiers; `Content-Type` is left out
/// because lettre writes it together with the body.
pub const DKIM_SIGNED_HEADERS: &[&str] = &[
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

fn raw_header(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
}

impl Composer {
    pub fn from_config(cfg: &Config, home_url: &str) -> anyhow::Result<Composer> {
        use anyhow::Context;
        let mail = &cfg.mail;
        let dkim = match &mail.dkim {
            Some(d) => {
                let pem = std::fs::read_to_string(&d.private_key_file).with_context(|| {
                    format!(
                        "config key `mail.dkim.private_key_file`: cannot read {}",
                        d.private_key_file.display()
                    )
                })?;
                Some(dkim_config(&d.selector, &d.domain, &pem)?)
            }
            None => None,
        };
        Ok(Composer {
            from: mail.from.clone(),
            reply_to: mail.reply_to.clone(),
            list_id: mail.list_id.clone(),
            list_subscribe: home_url.to_string(),
            message_id_domain: mail.message_id_domain.clone(),
            max_bytes: mail.max_message_bytes,
            dkim,
        })
    }

    /// The SMTP envelope for a message to `to` (From: the configured
    /// sender), for resending stored bytes.
    pub fn envelope_for(
        &self,
        to: &EmailAddress,
    ) -> Result<lettre::address::Envelope, DeliverError> {
        self.envelope_from(to, None)
    }

    /// The SMTP envelope for a message to `to` whose `MAIL FROM` is
    /// `sender` (a VERP bounce address, see `bounces::verp`), or the
    /// configured From address when `None`.
    pub fn envelope_from(
        &self,
        to: &EmailAddress,
        sender: Option<&str>,
    ) -> Result<lettre::address::Envelope, DeliverError> {
        let to: Address = to
            .as_str()
            .parse()
            .map_err(|e| DeliverError::Compose(format!("recipient address: {e}")))?;
        let from = match sender {
            Some(s) => s
                .parse()
                .map_err(|e| DeliverError::Compose(format!("envelope sender: {e}")))?,
            None => self.from.email.clone(),
        };
        lettre::address::Envelope::new(Some(from), vec![to])
            .map_err(|e| DeliverError::Compose(e.to_string()))
    }

    pub fn message_id_domain(&self) -> &str {
        &self.message_id_domain
    }

    /// Builds the message: multipart/alternative (text, then HTML),
    /// explicit Message-ID and Date, Auto-Submitted, List-Id,
    /// List-Subscribe, List-Post: NO, and the one-click pair when an
    /// unsubscribe URL is given; DKIM-signed last when configured.
    pub fn compose(&self, m: &Outgoing<'_>) -> Result<Composed, DeliverError> {
        let to_addr: Address =
            m.to.as_str()
                .parse()
                .map_err(|e| DeliverError::Compose(format!("recipient address: {e}")))?;
        let mut b = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to_addr))
            .subject(sanitize_header_text(
                &m.content.subject,
                crate::render::MAX_SUBJECT_CHARS,
            ))
            .message_id(Some(m.message_id.clone()))
            .date(
                m.date
                    .map(Into::into)
                    .unwrap_or_else(std::time::SystemTime::now),
            )
            .raw_header(raw_header("Auto-Submitted", "auto-generated".into()))
            .raw_header(raw_header("List-Id", self.list_id.clone()))
            .raw_header(raw_header(
                "List-Subscribe",
                format!("<{}>", self.list_subscribe),
            ))
            .raw_header(raw_header("List-Post", "NO".into()));
        if let Some(r) = &self.reply_to {
            b = b.reply_to(r.clone());
        }
        if let Some(url) = &m.unsubscribe_url {
            if !url.starts_with("https://") && !url.starts_with("http://") {
                return Err(DeliverError::Compose(
                    "unsubscribe URL must be http(s)".into(),
                ));
            }
            b = b
                .raw_header(raw_header("List-Unsubscribe", format!("<{url}>")))
                .raw_header(raw_header(
                    "List-Unsubscribe-Post",
                    "List-Unsubscribe=One-Click".into(),
                ));
        }
        let mut msg = b
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(qp::text_body(&m.content.text)),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(qp::text_body(&m.content.html)),
                    ),
            )
            .map_err(|e| DeliverError::Compose(e.to_string()))?;
        if let Some(cfg) = &self.dkim {
            msg.sign(cfg);
        }
        let bytes = msg.formatted();
        if bytes.len() > self.max_bytes {
            return Err(DeliverError::Compose(format!(
                "message is {} bytes, above mail.max_message_bytes = {}",
                bytes.len(),
                self.max_bytes
            )));
        }
        Ok(Composed {
            envelope: msg.envelope().clone(),
            bytes,
            message_id: m.message_id.clone(),
        })
    }

    /// A Message-ID that is deterministic for `(label, key_parts)` but
    /// not guessable without the secret key:
    /// `<base32(HMAC)[..26].{tag}@{domain}>`.
    pub fn message_id(
        &self,
        links: &crate::links::Links,
        label: &str,
        data: &[u8],
        tag: &str,
    ) -> String {
        let mac = links.keyed_digest(label, data);
        let b32 = data_encoding::BASE32_NOPAD
            .encode(&mac)
            .to_ascii_lowercase();
        let tag: String = tag
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        format!("<{}.{}@{}>", &b32[..26], tag, self.message_id_domain)
    }
}

impl Composer {
    /// The Message-ID of `subscriber`'s digest of `date`:
    /// [`Composer::message_id`] over the date and the subscriber id, tagged
    /// with the date (`<mac.20261201@domain>`).
    pub fn digest_message_id(
        &self,
        links: &crate::links::Links,
        subscriber: crate::domain::SubscriberId,
        date: chrono::NaiveDate,
    ) -> String {
        let data = [date.to_string().as_bytes(), &subscriber.0.to_be_bytes()].concat();
        self.message_id(links, "digest", &data, &date.format("%Y%m%d").to_string())
    }

    /// The digest date of `message_id` when it is the Message-ID paperboy
    /// gave `subscriber`'s digest of that date (its mac verifies, compared
    /// in constant time; the domain is compared without case), else `None`.
    pub fn digest_date_of(
        &self,
        links: &crate::links::Links,
        message_id: &str,
        subscriber: crate::domain::SubscriberId,
    ) -> Option<chrono::NaiveDate> {
        use subtle::ConstantTimeEq;
        let inner = message_id.trim().strip_prefix('<')?.strip_suffix('>')?;
        let (local, domain) = inner.rsplit_once('@')?;
        let (_, tag) = local.split_once('.')?;
        if !domain.eq_ignore_ascii_case(&self.message_id_domain) || tag.len() != 8 {
            return None;
        }
        let date = chrono::NaiveDate::parse_from_str(tag, "%Y%m%d").ok()?;
        let expected = self.digest_message_id(links, subscriber, date);
        let given = format!("<{}@{}>", local, self.message_id_domain);
        let same = given.len() == expected.len()
            && bool::from(given.as_bytes().ct_eq(expected.as_bytes()));
        same.then_some(date)
    }
}

/// A relaxed/relaxed DKIM configuration over [`DKIM_SIGNED_HEADERS`].
pub fn dkim_config(
    selector: &str,
    domain: &str,
    pkcs1_pem: &str,
) -> anyhow::Result<dkim::DkimConfig> {
    let key = dkim::DkimSigningKey::new(pkcs1_pem, dkim::DkimSigningAlgorithm::Rsa).map_err(|e| {
        anyhow::anyhow!(
            "config key `mail.dkim.private_key_file`: not a PKCS#1 RSA key (-----BEGIN RSA PRIVATE KEY-----): {e}"
        )
    })?;
    Ok(dkim::DkimConfig::new(
        selector.to_string(),
        domain.to_string(),
        key,
        DKIM_SIGNED_HEADERS
            .iter()
            .map(|h| HeaderName::new_from_ascii_str(h))
            .collect(),
        dkim::DkimCanonicalization {
            header: dkim::DkimCanonicalizationType::Relaxed,
            body: dkim::DkimCanonicalizationType::Relaxed,
        },
    ))
}

/// Where composed messages go.
#[derive(Clone)]
pub enum Transport {
    /// One `.eml` file per message in a folder, written atomically.
    File(Arc<PathBuf>),
    /// Pooled SMTP relay connections.
    Smtp(Arc<smtp::SmtpPool>),
    /// lettre's in-memory stub (unit tests).
    Stub(lettre::transport::stub::AsyncStubTransport),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::File(dir) => write!(f, "Transport::File({})", dir.display()),
            Transport::Smtp(_) => f.write_str("Transport::Smtp"),
            Transport::Stub(_) => f.write_str("Transport::Stub"),
        }
    }
}

impl Transport {
    /// Builds the configured transport. SMTP credentials come from the
    /// environment or a file and are never logged.
    pub fn from_config(cfg: &Config) -> anyhow::Result<Transport> {
        match &cfg.mail.transport {
            MailTransport::Smtp(smtp) => {
                let credentials = if smtp.username.is_empty() {
                    None
                } else {
                    let password = smtp.password.as_ref().ok_or_else(|| {
                        anyhow::anyhow!(
                            "config key `mail.smtp.username` is set but no password was found in `mail.smtp.password_file` or the variable named by `mail.smtp.password_env`"
                        )
                    })?;
                    Some(Credentials::new(
                        smtp.username.clone(),
                        password.expose().to_string(),
                    ))
                };
                Ok(Transport::Smtp(Arc::new(smtp::SmtpPool::new(
                    &smtp.host,
                    smtp.port,
                    // Validation allows `none` only for loopback hosts.
                    smtp.tls,
                    credentials,
                    smtp.timeout,
                    smtp.pool_size as usize,
                )?)))
            }
            MailTransport::File { outbox_dir } => Ok(Transport::File(Arc::new(outbox_dir.clone()))),
        }
    }

    /// Sends one message. `Ok` means the relay (or the folder) accepted it.
    /// Sends `m` once `ready` has resolved, overlapping what comes before
    /// the message data with it (see [`smtp::SmtpPool::send_when`]). The
    /// outer error is `ready`'s: then nothing reached the relay.
    pub async fn send_when<G>(
        &self,
        m: &Composed,
        ready: G,
    ) -> anyhow::Result<Result<(), DeliverError>>
    where
        G: std::future::Future<Output = anyhow::Result<()>>,
    {
        match self {
            Transport::Smtp(pool) => pool.send_when(&m.envelope, &m.bytes, ready).await,
            _ => {
                ready.await?;
                Ok(self.send(m).await)
            }
        }
    }

    pub async fn send(&self, m: &Composed) -> Result<(), DeliverError> {
        match self {
            Transport::File(dir) => write_eml(dir, m).await.map_err(|e| {
                DeliverError::Network(format!("outbox folder {}: {e}", dir.display()))
            }),
            Transport::Smtp(pool) => pool.send(&m.envelope, &m.bytes).await,
            Transport::Stub(t) => t
                .send_raw(&m.envelope, &m.bytes)
                .await
                .map_err(|e| DeliverError::Network(e.to_string())),
        }
    }

    /// Checks the relay at start-up; the result is logged, never fatal,
    /// since the relay may come up later.
    pub async fn check(&self) {
        match self {
            Transport::Smtp(pool) => match pool.test_connection().await {
                Ok(()) => tracing::info!("SMTP relay reachable"),
                Err(_) => {
                    tracing::warn!("SMTP relay not reachable now; mail will be retried")
                }
            },
            Transport::File(dir) => {
                if let Err(e) = tokio::fs::create_dir_all(dir.as_path()).await {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot create outbox folder");
                }
            }
            Transport::Stub(_) => {}
        }
    }

    pub async fn shutdown(&self) {
        if let Transport::Smtp(pool) = self {
            pool.shutdown().await;
        }
    }
}

/// Writes `<dir>/<time>-<id>.eml` via a temporary file, fsync and rename,
/// so a reader never sees a half-written message.
async fn write_eml(dir: &Path, m: &Composed) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let id: String = m
        .message_id
        .trim_matches(['<', '>'])
        .split('@')
        .next()
        .unwrap_or("msg")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
        .take(60)
        .collect();
    let stamp = Utc::now().format("%Y%m%dT%H%M%S%.6f");
    let name = format!("{stamp}-{id}.eml");
    let tmp = dir.join(format!(".{name}.tmp"));
    let bytes = m.bytes.clone();
    let dest = dir.join(&name);
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &dest)
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_message_id_verifies_only_for_its_subscriber_and_domain() {
        use crate::domain::SubscriberId;
        let config = Config::load_with_env(
            None,
            [("PAPERBOY__MAIL__MESSAGE_ID_DOMAIN", "News.Example.org")]
                .map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .unwrap();
        let composer = Composer::from_config(&config, "https://news.example.org/").unwrap();
        let key =
            |b| crate::links::Links::new(url::Url::parse("https://x.test").unwrap(), vec![b; 32]);
        let links = key(7);
        let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let (sub, other) = (SubscriberId(42), SubscriberId(43));
        let id = composer.digest_message_id(&links, sub, day);
        assert!(id.ends_with(".20261201@News.Example.org>"), "{id}");
        assert_eq!(composer.digest_date_of(&links, &id, sub), Some(day));
        let folded = id.replace("News.Example.org", "news.example.org");
        assert_eq!(composer.digest_date_of(&links, &folded, sub), Some(day));
        assert_eq!(composer.digest_date_of(&links, &id, other), None);
        assert_eq!(composer.digest_date_of(&key(8), &id, sub), None);
        let next_day = id.replace(".20261201@", ".20261202@");
        assert_eq!(composer.digest_date_of(&links, &next_day, sub), None);
        let mut forged = id.clone();
        forged.replace_range(1..2, if &id[1..2] == "a" { "b" } else { "a" });
        assert_eq!(composer.digest_date_of(&links, &forged, sub), None);
        let elsewhere = id.replace("News.Example.org", "evil.test");
        assert_eq!(composer.digest_date_of(&links, &elsewhere, sub), None);
        assert_eq!(
            composer.digest_date_of(&links, "<reply.1@example.com>", sub),
            None
        );
    }

    #[test]
    fn enhanced_status_codes_are_found_in_replies() {
        assert_eq!(
            enhanced_status("permanent error (550): 5.1.1 no such user").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(
            enhanced_status("451 4.7.28 rate limited").as_deref(),
            Some("4.7.28")
        );
        assert_eq!(enhanced_status("550 mailbox unavailable"), None);
        assert_eq!(enhanced_status("version 1.2.3"), None);
    }

    #[test]
    fn hard_bounces_are_recognised() {
        let p = |code, enhanced: Option<&str>| DeliverError::Permanent {
            code,
            enhanced: enhanced.map(str::to_string),
            message: String::new(),
        };
        assert!(p(550, Some("5.1.1")).is_hard_bounce());
        assert!(p(550, None).is_hard_bounce());
        assert!(!p(552, Some("5.2.2")).is_hard_bounce());
        assert!(!p(554, None).is_hard_bounce());
        let t = DeliverError::Transient {
            code: 421,
            message: "4.7.28".into(),
        };
        assert!(t.is_retryable() && t.is_rate_limit() && !t.is_hard_bounce());
    }
}
