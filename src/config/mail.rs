//! `[mail]`, `[mail.smtp]`, `[mail.dkim]`: the sender identity, the
//! transport (a folder of `.eml` files or an SMTP relay) and signing.

use super::values::{at_least, is_hostname, is_loopback_host, read_secret, within, Secret};
use super::{invalid, ConfigError};
use lettre::message::Mailbox;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    transport: String,
    outbox_dir: PathBuf,
    from: String,
    reply_to: String,
    list_id: String,
    message_id_domain: String,
    max_message_bytes: usize,
    smtp: RawSmtp,
    dkim: RawDkim,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: String,
    port: u16,
    tls: String,
    username: String,
    password_env: String,
    password_file: String,
    pool_size: u32,
    timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawDkim {
    enabled: bool,
    selector: String,
    domain: String,
    private_key_file: String,
}

#[derive(Debug, Clone)]
pub struct MailConfig {
    pub transport: MailTransport,
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    /// The `List-Id` header: a phrase and `<label.domain>`.
    pub list_id: String,
    /// The domain in Message-IDs: `mail.message_id_domain`, else the From
    /// address's.
    pub message_id_domain: String,
    pub max_message_bytes: usize,
    /// DKIM signing, when enabled.
    pub dkim: Option<DkimConfig>,
}

/// Where mail goes (`mail.transport`).
#[derive(Debug, Clone)]
pub enum MailTransport {
    /// Each message as an `.eml` file in this folder.
    File { outbox_dir: PathBuf },
    /// Through a relay.
    Smtp(SmtpConfig),
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    /// The configured port, or the TLS mode's default (465, 587, 25).
    pub port: u16,
    pub tls: SmtpTls,
    /// Login name; empty for no authentication.
    pub username: String,
    /// From `password_file` or the variable `password_env` names, read at
    /// load.
    pub password: Option<Secret>,
    pub pool_size: u32,
    /// A stalled SMTP command fails after this.
    pub timeout: Duration,
}

/// TLS mode towards the SMTP relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    Implicit,
    StartTls,
    /// Plain text; only accepted for loopback hosts.
    None,
}

#[derive(Debug, Clone)]
pub struct DkimConfig {
    pub selector: String,
    pub domain: String,
    /// PKCS#1 PEM RSA key; readable when the configuration loaded.
    pub private_key_file: PathBuf,
}

impl TryFrom<&Raw> for MailConfig {
    type Error = ConfigError;

    fn try_from(r: &Raw) -> Result<MailConfig, ConfigError> {
        let transport = match r.transport.as_str() {
            "file" if r.outbox_dir.as_os_str().is_empty() => {
                return Err(invalid("mail.outbox_dir", "must not be empty"))
            }
            "file" => MailTransport::File {
                outbox_dir: r.outbox_dir.clone(),
            },
            "smtp" => MailTransport::Smtp(SmtpConfig::try_from(&r.smtp)?),
            other => {
                return Err(invalid(
                    "mail.transport",
                    format!("unknown transport {other:?}; expected \"file\" or \"smtp\""),
                ))
            }
        };
        let from = from_mailbox(&r.from)?;
        let reply_to = match r.reply_to.as_str() {
            "" => None,
            s => Some(
                s.parse::<Mailbox>()
                    .map_err(|e| invalid("mail.reply_to", format!("not a valid address: {e}")))?,
            ),
        };
        check_list_id(&r.list_id)?;
        let message_id_domain = match r.message_id_domain.as_str() {
            "" => from.email.domain().to_string(),
            d if is_hostname(d) => d.to_string(),
            _ => return Err(invalid("mail.message_id_domain", "must be a domain name")),
        };
        let max_message_bytes = at_least("mail.max_message_bytes", r.max_message_bytes, 10_000)?;
        // Checked whatever the transport, so switching to SMTP later
        // cannot reveal an old mistake.
        within("mail.smtp.pool_size", r.smtp.pool_size, 1, 32)?;
        at_least("mail.smtp.timeout_secs", r.smtp.timeout_secs, 1)?;
        Ok(MailConfig {
            transport,
            from,
            reply_to,
            list_id: r.list_id.clone(),
            message_id_domain,
            max_message_bytes,
            dkim: dkim(&r.dkim)?,
        })
    }
}

impl TryFrom<&RawSmtp> for SmtpConfig {
    type Error = ConfigError;

    /// Checked only when `mail.transport = "smtp"`. The password is read
    /// now, so an unreadable file fails `config check` and start-up before
    /// anything is created on disk.
    fn try_from(s: &RawSmtp) -> Result<SmtpConfig, ConfigError> {
        if s.host.is_empty() {
            return Err(invalid(
                "mail.smtp.host",
                "required when mail.transport = \"smtp\"",
            ));
        }
        if !is_hostname(&s.host) && s.host.parse::<IpAddr>().is_err() {
            return Err(invalid(
                "mail.smtp.host",
                "must be a host name or IP address",
            ));
        }
        let tls = match s.tls.as_str() {
            "implicit" => SmtpTls::Implicit,
            "starttls" => SmtpTls::StartTls,
            "none" if !is_loopback_host(&s.host) => return Err(invalid(
                "mail.smtp.tls",
                "\"none\" sends mail and credentials in plain text; it is only allowed for a loopback host",
            )),
            "none" => SmtpTls::None,
            other => {
                return Err(invalid(
                    "mail.smtp.tls",
                    format!("unknown mode {other:?}; expected implicit, starttls or none"),
                ))
            }
        };
        let password = read_secret(
            "mail.smtp.password_file",
            &s.password_file,
            &s.password_env,
            false,
        )?;
        Ok(SmtpConfig {
            host: s.host.clone(),
            port: match (s.port, tls) {
                (0, SmtpTls::Implicit) => 465,
                (0, SmtpTls::None) => 25,
                (0, SmtpTls::StartTls) => 587,
                (p, _) => p,
            },
            tls,
            username: s.username.clone(),
            password,
            pool_size: s.pool_size,
            timeout: Duration::from_secs(s.timeout_secs),
        })
    }
}

fn from_mailbox(from: &str) -> Result<Mailbox, ConfigError> {
    let mb: Mailbox = from
        .parse()
        .map_err(|e| invalid("mail.from", format!("not a valid mailbox: {e}")))?;
    if !mb.email.domain().contains('.') {
        return Err(invalid(
            "mail.from",
            "the address needs a fully qualified domain",
        ));
    }
    Ok(mb)
}

fn check_list_id(v: &str) -> Result<(), ConfigError> {
    let key = "mail.list_id";
    if v.len() > 255 || v.chars().any(|c| c.is_control() || !c.is_ascii()) {
        return Err(invalid(
            key,
            "must be printable ASCII of at most 255 octets",
        ));
    }
    let open = v
        .rfind('<')
        .ok_or_else(|| invalid(key, "must contain <label.domain>"))?;
    let inner = v[open + 1..]
        .strip_suffix('>')
        .ok_or_else(|| invalid(key, "must end with <label.domain>"))?;
    if !inner.contains('.') || !is_hostname(inner) {
        return Err(invalid(
            key,
            "the part in angle brackets must look like label.example.org",
        ));
    }
    Ok(())
}

fn dkim(d: &RawDkim) -> Result<Option<DkimConfig>, ConfigError> {
    if !d.enabled {
        return Ok(None);
    }
    if d.selector.is_empty() {
        return Err(invalid(
            "mail.dkim.selector",
            "required when DKIM is enabled",
        ));
    }
    if !is_hostname(&d.domain) {
        return Err(invalid("mail.dkim.domain", "must be a domain name"));
    }
    if d.private_key_file.is_empty() {
        return Err(invalid(
            "mail.dkim.private_key_file",
            "required when DKIM is enabled",
        ));
    }
    std::fs::metadata(&d.private_key_file)
        .and_then(|_| std::fs::File::open(&d.private_key_file))
        .map_err(|e| {
            invalid(
                "mail.dkim.private_key_file",
                format!("cannot read {}: {e}", d.private_key_file),
            )
        })?;
    Ok(Some(DkimConfig {
        selector: d.selector.clone(),
        domain: d.domain.clone(),
        private_key_file: PathBuf::from(&d.private_key_file),
    }))
}
