//! Layered configuration: the embedded `config/default.toml`, then an
//! optional `--config FILE`, then `PAPERBOY__SECTION__KEY` environment
//! variables. Everything is parsed and validated here, at start-up, and a
//! bad value is reported with the dotted name of its key.

use chrono::NaiveTime;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use url::Url;

mod bounces;
pub mod synonyms;
pub use bounces::{BouncesConfig, MailboxConfig, WebhooksConfig};

/// The defaults, embedded so an installed binary needs no config file.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "PAPERBOY__";

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: String, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

/// A secret string: `Debug` and `Serialize` print `<redacted>` (R26).
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "<redacted>"
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "<redacted>" })
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub mail: MailConfig,
    pub subscribe: SubscribeConfig,
    pub sources: SourcesConfig,
    pub digest: DigestConfig,
    pub rank: RankConfig,
    pub security: SecurityConfig,
    pub logging: LoggingConfig,
    pub retention: RetentionConfig,
    pub bounces: BouncesConfig,
    pub templates: TemplatesConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub bind: String,
    pub base_url: String,
    pub shutdown_grace_secs: u64,
    pub request_timeout_secs: u64,
    pub trusted_proxy: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub path: PathBuf,
    pub busy_timeout_ms: u64,
    pub max_connections: u32,
    pub synchronous: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    pub transport: String,
    pub outbox_dir: PathBuf,
    pub from: String,
    pub reply_to: String,
    pub list_id: String,
    pub message_id_domain: String,
    pub max_message_bytes: usize,
    pub smtp: SmtpConfig,
    pub dkim: DkimConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: String,
    pub username: String,
    pub password_env: String,
    pub password_file: String,
    pub pool_size: u32,
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DkimConfig {
    pub enabled: bool,
    pub selector: String,
    pub domain: String,
    pub private_key_file: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeConfig {
    pub confirm_ttl_hours: u32,
    pub pending_expiry_days: u32,
    pub per_ip_per_minute: u32,
    pub per_address_min_interval_minutes: u32,
    pub per_address_per_day: u32,
    pub global_per_hour: u32,
    pub record_ip: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourcesConfig {
    pub contact: String,
    pub connect_timeout_secs: u64,
    pub timeout_secs: u64,
    pub max_retries: u32,
    pub max_body_bytes: usize,
    pub huggingface: HuggingFaceConfig,
    pub arxiv: ArxivConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HuggingFaceConfig {
    pub enabled: bool,
    pub base_url: String,
    pub page_size: u32,
    pub cron: String,
    pub refresh_days: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ArxivConfig {
    pub enabled: bool,
    pub categories: Vec<String>,
    pub feed_format: String,
    pub feed_base_url: String,
    pub api_base_url: String,
    pub cron: String,
    pub api_min_interval_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DigestConfig {
    pub cron: String,
    pub default_send_time: String,
    pub default_time_zone: String,
    pub default_size: u8,
    pub catch_up_hours: u32,
    pub candidate_days: u32,
    /// The longest window a digest covers (first digest after a long
    /// pause or downtime); see `domain::window`.
    pub max_window_days: u32,
    pub unknown_policy: String,
    pub max_per_second: u32,
    pub concurrency: u32,
    pub lease_secs: u64,
    pub retry_base_secs: u64,
    pub retry_cap_secs: u64,
    pub retry_max_age_hours: u32,
    pub max_consecutive_failures: u32,
    pub max_bounce_percent: f64,
    pub domain_max_per_second: u32,
    pub domain_limits: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RankConfig {
    pub synonyms_file: String,
    pub preview_size: usize,
    pub semantic: SemanticConfig,
}

/// `[rank.semantic]`: the sentence-embedding side of ranking (issue #10).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SemanticConfig {
    /// Off: rank lexically only, never load or download a model.
    pub enabled: bool,
    /// Hugging Face Hub repository of a BERT-family sentence encoder.
    pub model: String,
    /// A local folder with `config.json`, `tokenizer.json` and
    /// `model.safetensors`, used instead of downloading `model`; empty:
    /// download.
    pub model_dir: String,
    /// Base URL of the Hub (a mirror, or a test server).
    pub hub_url: String,
    /// Query/passage prefixes: `auto` (from the model name), `e5`, `bge`
    /// or `plain`.
    pub prefixes: crate::domain::embedding::Family,
    /// Inputs are cut to this many tokens.
    pub max_tokens: usize,
    /// Weight of meaning in the fused score, 0 to 1.
    pub dense_weight: f32,
    /// Cosine below which a paper is unrelated to a topic; 0: the model
    /// family's calibrated floor.
    pub min_similarity: f32,
    /// Papers listed within this many days are embedded (older ones are
    /// never candidates again).
    pub embed_days: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    pub secret_key: Secret,
}

/// Operator templates: `dir` holds files named like the embedded ones
/// (`pages/layout.hbs`, `email/digest.subject.hbs`, …) that replace them;
/// empty for none. Checked when the renderer is built at start-up.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TemplatesConfig {
    pub dir: PathBuf,
}

impl TemplatesConfig {
    /// The override directory, if one is configured.
    pub fn override_dir(&self) -> Option<&std::path::Path> {
        (!self.dir.as_os_str().is_empty()).then_some(self.dir.as_path())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    pub level: String,
    pub format: String,
}

/// TLS mode towards the SMTP relay (R25).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    Implicit,
    StartTls,
    /// Plain text; only accepted for loopback hosts.
    None,
}

/// How to handle a delivery whose outcome is unknown after a crash (R54).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownPolicy {
    Resend,
    Skip,
}

impl Config {
    /// Loads defaults, then `file` (if any), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with_env(file, std::env::vars())
    }

    /// As [`Config::load`], with the environment given explicitly (tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table = parse_toml("config/default.toml (embedded)", DEFAULT_TOML)?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let overlay = parse_toml(&path.display().to_string(), &text)?;
            merge(&mut table, overlay, "")?;
        }
        apply_env(&mut table, env)?;
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                invalid(&key, e.into_inner().to_string())
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Every check that needs more than a type: cron expressions, URLs,
    /// addresses, names from fixed sets, ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.bind_addr()?;
        let base = self.base_url()?;
        if base.scheme() == "http" && !is_loopback_host(base.host_str().unwrap_or("")) {
            tracing::warn!(
                "server.base_url is plain http on a non-loopback host; mail links should be https"
            );
        }
        if !self.server.trusted_proxy.is_empty() {
            IpAddr::from_str(&self.server.trusted_proxy)
                .map_err(|_| invalid("server.trusted_proxy", "must be an IP address or empty"))?;
        }
        if self.server.shutdown_grace_secs == 0 || self.server.shutdown_grace_secs > 600 {
            return Err(invalid("server.shutdown_grace_secs", "must be 1–600"));
        }
        if self.server.request_timeout_secs == 0 {
            return Err(invalid("server.request_timeout_secs", "must be at least 1"));
        }

        if self.database.path.as_os_str().is_empty() {
            return Err(invalid("database.path", "must not be empty"));
        }
        if self.database.max_connections == 0 || self.database.max_connections > 64 {
            return Err(invalid("database.max_connections", "must be 1–64"));
        }
        if !matches!(self.database.synchronous.as_str(), "normal" | "full") {
            return Err(invalid(
                "database.synchronous",
                "must be \"normal\" or \"full\"",
            ));
        }

        match self.mail.transport.as_str() {
            "file" => {
                if self.mail.outbox_dir.as_os_str().is_empty() {
                    return Err(invalid("mail.outbox_dir", "must not be empty"));
                }
            }
            "smtp" => {
                self.smtp_tls()?;
                // Read now, so an unreadable file fails `config check` and
                // start-up before anything is created on disk.
                self.smtp_password()?;
            }
            other => {
                return Err(invalid(
                    "mail.transport",
                    format!("unknown transport {other:?}; expected \"file\" or \"smtp\""),
                ))
            }
        }
        self.from_mailbox()?;
        if !self.mail.reply_to.is_empty() {
            self.mail
                .reply_to
                .parse::<lettre::message::Mailbox>()
                .map_err(|e| invalid("mail.reply_to", format!("not a valid address: {e}")))?;
        }
        validate_list_id(&self.mail.list_id)?;
        if !self.mail.message_id_domain.is_empty() && !is_hostname(&self.mail.message_id_domain) {
            return Err(invalid("mail.message_id_domain", "must be a domain name"));
        }
        if self.mail.max_message_bytes < 10_000 {
            return Err(invalid("mail.max_message_bytes", "must be at least 10000"));
        }
        if self.mail.smtp.pool_size == 0 || self.mail.smtp.pool_size > 32 {
            return Err(invalid("mail.smtp.pool_size", "must be 1–32"));
        }
        if self.mail.smtp.timeout_secs == 0 {
            return Err(invalid("mail.smtp.timeout_secs", "must be at least 1"));
        }
        if self.mail.dkim.enabled {
            if self.mail.dkim.selector.is_empty() {
                return Err(invalid(
                    "mail.dkim.selector",
                    "required when DKIM is enabled",
                ));
            }
            if !is_hostname(&self.mail.dkim.domain) {
                return Err(invalid("mail.dkim.domain", "must be a domain name"));
            }
            if self.mail.dkim.private_key_file.is_empty() {
                return Err(invalid(
                    "mail.dkim.private_key_file",
                    "required when DKIM is enabled",
                ));
            }
            std::fs::metadata(&self.mail.dkim.private_key_file)
                .and_then(|_| std::fs::File::open(&self.mail.dkim.private_key_file))
                .map_err(|e| {
                    invalid(
                        "mail.dkim.private_key_file",
                        format!("cannot read {}: {e}", self.mail.dkim.private_key_file),
                    )
                })?;
        }

        let s = &self.subscribe;
        if s.confirm_ttl_hours == 0 || s.confirm_ttl_hours > 24 * 14 {
            return Err(invalid("subscribe.confirm_ttl_hours", "must be 1–336"));
        }
        if s.pending_expiry_days == 0 {
            return Err(invalid(
                "subscribe.pending_expiry_days",
                "must be at least 1",
            ));
        }
        if s.per_ip_per_minute == 0 {
            return Err(invalid("subscribe.per_ip_per_minute", "must be at least 1"));
        }
        if s.per_address_per_day == 0 {
            return Err(invalid(
                "subscribe.per_address_per_day",
                "must be at least 1",
            ));
        }
        if s.global_per_hour == 0 {
            return Err(invalid("subscribe.global_per_hour", "must be at least 1"));
        }

        let src = &self.sources;
        if src.contact.is_empty() || src.contact.chars().any(|c| c.is_control()) {
            return Err(invalid(
                "sources.contact",
                "must be a contact address or URL",
            ));
        }
        if src.timeout_secs == 0 || src.connect_timeout_secs == 0 {
            return Err(invalid(
                "sources.timeout_secs",
                "timeouts must be at least 1 second",
            ));
        }
        if src.max_body_bytes < 1024 {
            return Err(invalid("sources.max_body_bytes", "must be at least 1024"));
        }
        parse_http_url("sources.huggingface.base_url", &src.huggingface.base_url)?;
        validate_cron("sources.huggingface.cron", &src.huggingface.cron)?;
        if src.huggingface.page_size == 0 || src.huggingface.page_size > 100 {
            return Err(invalid("sources.huggingface.page_size", "must be 1–100"));
        }
        if src.huggingface.refresh_days > 14 {
            return Err(invalid("sources.huggingface.refresh_days", "must be 0–14"));
        }
        parse_http_url("sources.arxiv.feed_base_url", &src.arxiv.feed_base_url)?;
        parse_http_url("sources.arxiv.api_base_url", &src.arxiv.api_base_url)?;
        validate_cron("sources.arxiv.cron", &src.arxiv.cron)?;
        if !matches!(src.arxiv.feed_format.as_str(), "rss" | "atom") {
            return Err(invalid(
                "sources.arxiv.feed_format",
                "must be \"rss\" or \"atom\"",
            ));
        }
        if let Some(c) = src
            .arxiv
            .categories
            .iter()
            .find(|c| !crate::domain::is_category(c))
        {
            return Err(invalid(
                "sources.arxiv.categories",
                format!("{c:?} is not an arXiv category"),
            ));
        }
        if src.arxiv.enabled && src.arxiv.categories.is_empty() {
            return Err(invalid(
                "sources.arxiv.categories",
                "at least one category is needed when arXiv is enabled",
            ));
        }

        let d = &self.digest;
        validate_cron("digest.cron", &d.cron)?;
        self.default_send_time()?;
        self.default_time_zone()?;
        if !(1..=50).contains(&d.default_size) {
            return Err(invalid("digest.default_size", "must be 1–50"));
        }
        if d.catch_up_hours > 23 {
            return Err(invalid("digest.catch_up_hours", "must be 0–23"));
        }
        if d.candidate_days == 0 || d.candidate_days > 30 {
            return Err(invalid("digest.candidate_days", "must be 1–30"));
        }
        self.validate_window()?;
        self.unknown_policy()?;
        if d.max_per_second == 0 {
            return Err(invalid("digest.max_per_second", "must be at least 1"));
        }
        if d.concurrency == 0 || d.concurrency > 64 {
            return Err(invalid("digest.concurrency", "must be 1–64"));
        }
        if d.lease_secs < 10 {
            return Err(invalid("digest.lease_secs", "must be at least 10"));
        }
        if d.retry_base_secs == 0 || d.retry_cap_secs < d.retry_base_secs {
            return Err(invalid(
                "digest.retry_cap_secs",
                "retry_base_secs must be at least 1 and retry_cap_secs at least retry_base_secs",
            ));
        }
        if d.retry_max_age_hours == 0 || d.retry_max_age_hours > 23 {
            return Err(invalid("digest.retry_max_age_hours", "must be 1–23"));
        }
        if !(0.0..=100.0).contains(&d.max_bounce_percent) {
            return Err(invalid("digest.max_bounce_percent", "must be 0–100"));
        }

        self.synonyms()?;
        if self.rank.preview_size == 0 || self.rank.preview_size > 50 {
            return Err(invalid("rank.preview_size", "must be 1–50"));
        }
        self.validate_semantic()?;
        if !self.security.secret_key.is_empty() {
            self.secret_key_bytes()?;
        }
        if !matches!(self.logging.format.as_str(), "text" | "json") {
            return Err(invalid("logging.format", "must be \"text\" or \"json\""));
        }
        validate_log_level(&self.logging.level)?;
        self.validate_retention()?;
        self.validate_window_retention()?;
        self.domain_limits()?;
        self.bounces.validate()?;
        Ok(())
    }

    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        SocketAddr::from_str(&self.server.bind).map_err(|_| {
            invalid(
                "server.bind",
                format!(
                    "{:?} is not an address like 127.0.0.1:8080",
                    self.server.bind
                ),
            )
        })
    }

    /// The public base URL, without a trailing slash in its path.
    pub fn base_url(&self) -> Result<Url, ConfigError> {
        let url = parse_http_url("server.base_url", &self.server.base_url)?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(
                "server.base_url",
                "must not have a query or fragment",
            ));
        }
        Ok(url)
    }

    pub fn from_mailbox(&self) -> Result<lettre::message::Mailbox, ConfigError> {
        let mb: lettre::message::Mailbox = self
            .mail
            .from
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

    /// The domain used in Message-IDs.
    pub fn message_id_domain(&self) -> String {
        if self.mail.message_id_domain.is_empty() {
            self.from_mailbox()
                .map(|m| m.email.domain().to_string())
                .unwrap_or_else(|_| "localhost.localdomain".into())
        } else {
            self.mail.message_id_domain.clone()
        }
    }

    pub fn smtp_tls(&self) -> Result<SmtpTls, ConfigError> {
        let smtp = &self.mail.smtp;
        if smtp.host.is_empty() {
            return Err(invalid(
                "mail.smtp.host",
                "required when mail.transport = \"smtp\"",
            ));
        }
        if !is_hostname(&smtp.host) && IpAddr::from_str(&smtp.host).is_err() {
            return Err(invalid(
                "mail.smtp.host",
                "must be a host name or IP address",
            ));
        }
        let tls = match smtp.tls.as_str() {
            "implicit" => SmtpTls::Implicit,
            "starttls" => SmtpTls::StartTls,
            "none" => SmtpTls::None,
            other => {
                return Err(invalid(
                    "mail.smtp.tls",
                    format!("unknown mode {other:?}; expected implicit, starttls or none"),
                ))
            }
        };
        if tls == SmtpTls::None && !is_loopback_host(&smtp.host) {
            return Err(invalid(
                "mail.smtp.tls",
                "\"none\" sends mail and credentials in plain text; it is only allowed for a loopback host",
            ));
        }
        Ok(tls)
    }

    pub fn smtp_port(&self) -> u16 {
        match (self.mail.smtp.port, self.smtp_tls()) {
            (0, Ok(SmtpTls::Implicit)) => 465,
            (0, Ok(SmtpTls::None)) => 25,
            (0, _) => 587,
            (p, _) => p,
        }
    }

    /// The SMTP password from `password_file` or `password_env`.
    pub fn smtp_password(&self) -> Result<Option<Secret>, ConfigError> {
        let smtp = &self.mail.smtp;
        if !smtp.password_file.is_empty() {
            let text = std::fs::read_to_string(&smtp.password_file)
                .map_err(|e| invalid("mail.smtp.password_file", format!("cannot read: {e}")))?;
            return Ok(Some(Secret::new(
                text.lines().next().unwrap_or("").to_string(),
            )));
        }
        if !smtp.password_env.is_empty() {
            if let Ok(v) = std::env::var(&smtp.password_env) {
                return Ok(Some(Secret::new(v)));
            }
        }
        Ok(None)
    }

    pub fn default_send_time(&self) -> Result<NaiveTime, ConfigError> {
        crate::domain::parse_send_time(&self.digest.default_send_time)
            .ok_or_else(|| invalid("digest.default_send_time", "must be HH:MM"))
    }

    pub fn default_time_zone(&self) -> Result<Tz, ConfigError> {
        crate::domain::parse_time_zone(&self.digest.default_time_zone)
            .ok_or_else(|| invalid("digest.default_time_zone", "must be an IANA time zone name"))
    }

    /// `digest.max_window_days` covers a weekly digest's 7 days and
    /// `digest.candidate_days`, and stays within 60 days.
    fn validate_window(&self) -> Result<(), ConfigError> {
        let d = &self.digest;
        if d.max_window_days < 7 || d.max_window_days < d.candidate_days || d.max_window_days > 60 {
            return Err(invalid(
                "digest.max_window_days",
                "must be 7–60 and at least digest.candidate_days (a weekly digest covers 7 days)",
            ));
        }
        Ok(())
    }

    /// A paper still inside some reader's window must keep its
    /// never-repeat rows (one day of slack for time zones). Checked after
    /// `[retention]` itself is valid.
    fn validate_window_retention(&self) -> Result<(), ConfigError> {
        let d = &self.digest;
        let keep = self.retention.never_repeat_days;
        if keep != 0 && keep <= d.max_window_days + 1 {
            return Err(invalid(
                "digest.max_window_days",
                format!(
                    "must be less than retention.never_repeat_days − 1 ({}): a paper inside \
                     a digest's window must not be mailed twice",
                    keep.saturating_sub(1)
                ),
            ));
        }
        Ok(())
    }

    /// The bounds of every digest's window of listing days.
    pub fn window_limits(&self) -> crate::domain::WindowLimits {
        crate::domain::WindowLimits {
            min_days: self.digest.candidate_days,
            max_days: self.digest.max_window_days,
        }
    }

    pub fn unknown_policy(&self) -> Result<UnknownPolicy, ConfigError> {
        match self.digest.unknown_policy.as_str() {
            "resend" => Ok(UnknownPolicy::Resend),
            "skip" => Ok(UnknownPolicy::Skip),
            _ => Err(invalid(
                "digest.unknown_policy",
                "must be \"resend\" or \"skip\"",
            )),
        }
    }

    /// The synonym data: built-in entries plus the operator's file.
    pub fn synonyms(&self) -> Result<Vec<synonyms::SynonymConcept>, ConfigError> {
        let key = "rank.synonyms_file";
        let text = if self.rank.synonyms_file.is_empty() {
            None
        } else {
            Some(
                std::fs::read_to_string(&self.rank.synonyms_file).map_err(|e| {
                    invalid(key, format!("cannot read {}: {e}", self.rank.synonyms_file))
                })?,
            )
        };
        synonyms::load(text.as_deref()).map_err(|e| invalid(key, e.to_string()))
    }

    /// The configured HMAC key, decoded, if one is set.
    pub fn secret_key_bytes(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        if self.security.secret_key.is_empty() {
            return Ok(None);
        }
        use base64::Engine;
        let raw = self.security.secret_key.expose().trim();
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
        Ok(Some(bytes))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.server.shutdown_grace_secs)
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot print config: {e}\n"))
    }
}

fn parse_toml(origin: &str, text: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>()
        .map_err(|e| ConfigError::Syntax {
            path: origin.to_string(),
            message: e.to_string(),
        })
}

/// Merges `overlay` into `base`. Keys unknown to the defaults are refused
/// here so a typo in a file names itself rather than being ignored.
fn merge(base: &mut toml::Table, overlay: toml::Table, prefix: &str) -> Result<(), ConfigError> {
    for (k, v) in overlay {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o, &key)?,
            (Some(toml::Value::Table(_)), _) => {
                return Err(invalid(&key, "is a section; expected a [table]"))
            }
            (Some(slot), v) => *slot = v,
            (None, _) => return Err(invalid(&key, "unknown key")),
        }
    }
    Ok(())
}

fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(|p| p.to_ascii_lowercase())
            .collect();
        let key = path.join(".");
        let unknown = || {
            invalid(
                &key,
                format!("unknown key (from environment variable {name})"),
            )
        };
        let (leaf, parents) = path.split_last().ok_or_else(unknown)?;
        let mut cursor = &mut *table;
        for part in parents {
            cursor = match cursor.get_mut(part) {
                Some(toml::Value::Table(t)) => t,
                _ => return Err(unknown()),
            };
        }
        match cursor.get_mut(leaf) {
            Some(slot) if !slot.is_table() => *slot = env_value(&raw, slot),
            _ => return Err(unknown()),
        }
    }
    Ok(())
}

/// Parses an environment value as the type the default has, so
/// `PAPERBOY__SERVER__BIND=0.0.0.0:8080` stays a string while
/// `PAPERBOY__DIGEST__DEFAULT_SIZE=5` becomes a number.
fn env_value(raw: &str, like: &toml::Value) -> toml::Value {
    if like.is_str() {
        return toml::Value::String(raw.to_string());
    }
    match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// `logging.level`: comma-separated directives, each a level (`info`) or
/// `target=level` (`paperboy::digest=debug`). The tracing filter itself
/// takes any bare word as a target name, so a typo such as `verbose`
/// would be accepted and silently log nothing.
fn validate_log_level(s: &str) -> Result<(), ConfigError> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let is_level = |l: &str| LEVELS.contains(&l.trim().to_ascii_lowercase().as_str());
    let bad = |d: &str, why: &str| {
        invalid(
            "logging.level",
            format!(
                "{d:?} {why}; expected a level (trace, debug, info, warn, error, off) or \
                 target=level, comma-separated"
            ),
        )
    };
    if s.trim().is_empty() {
        return Err(bad(s, "is empty"));
    }
    for d in s.split(',').map(str::trim) {
        match d.split_once('=') {
            None if d.is_empty() => return Err(bad(d, "is an empty directive")),
            None if !is_level(d) => return Err(bad(d, "is not a level")),
            None => {}
            Some((_, level)) if !is_level(level) => return Err(bad(d, "does not end in a level")),
            Some((target, _)) => {
                let path = target.split('[').next().unwrap_or("");
                let module_char = |c: char| c.is_ascii_alphanumeric() || "_:-.".contains(c);
                if path.is_empty() || !path.chars().all(module_char) {
                    return Err(bad(d, "does not start with a module path"));
                }
            }
        }
    }
    tracing_subscriber::EnvFilter::try_new(s)
        .map_err(|e| invalid("logging.level", e.to_string()))?;
    Ok(())
}

fn parse_http_url(key: &str, s: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(s).map_err(|e| invalid(key, format!("{s:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(
            key,
            format!("{s:?} must be an http(s) URL with a host"),
        ));
    }
    Ok(url)
}

/// tokio-cron-scheduler uses croner with seconds: six fields.
impl SemanticConfig {
    /// The local model folder, when one is configured.
    pub fn local_dir(&self) -> Option<std::path::PathBuf> {
        (!self.model_dir.trim().is_empty()).then(|| self.model_dir.trim().into())
    }
}

impl Config {
    /// `[rank.semantic]`: ranges, a Hub URL, a `owner/name` model.
    fn validate_semantic(&self) -> Result<(), ConfigError> {
        let s = &self.rank.semantic;
        if !(0.0..=1.0).contains(&s.dense_weight) {
            return Err(invalid("rank.semantic.dense_weight", "must be 0–1"));
        }
        if !(0.0..1.0).contains(&s.min_similarity) {
            return Err(invalid(
                "rank.semantic.min_similarity",
                "must be 0 (auto) or below 1",
            ));
        }
        if !(16..=512).contains(&s.max_tokens) {
            return Err(invalid("rank.semantic.max_tokens", "must be 16–512"));
        }
        if s.embed_days == 0 {
            return Err(invalid("rank.semantic.embed_days", "must be at least 1"));
        }
        url::Url::parse(&s.hub_url)
            .map_err(|e| invalid("rank.semantic.hub_url", format!("not a URL: {e}")))?;
        let ok_part = |p: &str| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        match s.model.split_once('/') {
            Some((a, b)) if ok_part(a) && ok_part(b) => Ok(()),
            _ => Err(invalid(
                "rank.semantic.model",
                format!("{:?} is not a Hub repository (owner/name)", s.model),
            )),
        }
    }
}

pub fn validate_cron(key: &str, expr: &str) -> Result<(), ConfigError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .build()
        .parse(expr)
        .map(|_| ())
        .map_err(|e| {
            invalid(
                key,
                format!("{expr:?} is not a cron expression with seconds (sec min hour day month weekday): {e}"),
            )
        })
}

fn validate_list_id(v: &str) -> Result<(), ConfigError> {
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

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || IpAddr::from_str(h)
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load_with_env(
            None,
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn default_toml_parses_and_validates() {
        let c = load_env(&[]).unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:8080");
        assert_eq!(c.mail.transport, "file");
        assert!(c.sources.huggingface.enabled);
    }

    #[test]
    fn environment_overrides_keep_types() {
        let c = load_env(&[
            ("PAPERBOY__SERVER__BIND", "0.0.0.0:9000"),
            ("PAPERBOY__DIGEST__DEFAULT_SIZE", "5"),
            ("PAPERBOY__SOURCES__ARXIV__CATEGORIES", "[\"hep-th\"]"),
            ("UNRELATED", "x"),
        ])
        .unwrap();
        assert_eq!(c.server.bind, "0.0.0.0:9000");
        assert_eq!(c.digest.default_size, 5);
        assert_eq!(c.sources.arxiv.categories, vec!["hep-th"]);
    }

    #[test]
    fn each_bad_value_fails_naming_its_key() {
        let cases = [
            ("PAPERBOY__DIGEST__CRON", "every minute", "digest.cron"),
            (
                "PAPERBOY__SOURCES__HUGGINGFACE__CRON",
                "* * *",
                "sources.huggingface.cron",
            ),
            ("PAPERBOY__SERVER__BASE_URL", "not a url", "server.base_url"),
            (
                "PAPERBOY__SERVER__BASE_URL",
                "ftp://example.org",
                "server.base_url",
            ),
            ("PAPERBOY__MAIL__FROM", "nobody", "mail.from"),
            ("PAPERBOY__SERVER__BIND", "localhost", "server.bind"),
            ("PAPERBOY__MAIL__TRANSPORT", "pigeon", "mail.transport"),
            (
                "PAPERBOY__DIGEST__DEFAULT_TIME_ZONE",
                "Mars/Base",
                "digest.default_time_zone",
            ),
            (
                "PAPERBOY__DIGEST__DEFAULT_SIZE",
                "500",
                "digest.default_size",
            ),
            (
                "PAPERBOY__DIGEST__UNKNOWN_POLICY",
                "maybe",
                "digest.unknown_policy",
            ),
            ("PAPERBOY__MAIL__LIST_ID", "no brackets", "mail.list_id"),
            (
                "PAPERBOY__SECURITY__SECRET_KEY",
                "c2hvcnQ=",
                "security.secret_key",
            ),
            ("PAPERBOY__LOGGING__FORMAT", "xml", "logging.format"),
            ("PAPERBOY__LOGGING__LEVEL", "verbose??", "logging.level"),
            ("PAPERBOY__LOGGING__LEVEL", "paperboy=loud", "logging.level"),
            ("PAPERBOY__LOGGING__LEVEL", "info,", "logging.level"),
            (
                "PAPERBOY__SOURCES__ARXIV__CATEGORIES",
                "[\"Not A Cat\"]",
                "sources.arxiv.categories",
            ),
            ("PAPERBOY__SERVER__NOPE", "1", "server.nope"),
            (
                "PAPERBOY__DATABASE__MAX_CONNECTIONS",
                "many",
                "database.max_connections",
            ),
        ];
        for (var, value, key) in cases {
            let err = load_env(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{var}={value}: {err}");
        }
    }

    #[test]
    fn a_window_cap_shorter_than_a_week_or_the_candidate_days_is_refused() {
        for (cap, days) in [("6", "3"), ("61", "3"), ("10", "12")] {
            let err = load_env(&[
                ("PAPERBOY__DIGEST__MAX_WINDOW_DAYS", cap),
                ("PAPERBOY__DIGEST__CANDIDATE_DAYS", days),
            ])
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("`digest.max_window_days`"),
                "{cap}/{days}: {err}"
            );
        }
        let c = load_env(&[("PAPERBOY__DIGEST__MAX_WINDOW_DAYS", "7")]).unwrap();
        assert_eq!(c.window_limits().max_days, 7);
        assert_eq!(c.window_limits().min_days, 3);
        // Never-repeat rows must outlive every window.
        let err = load_env(&[
            ("PAPERBOY__DIGEST__MAX_WINDOW_DAYS", "14"),
            ("PAPERBOY__RETENTION__NEVER_REPEAT_DAYS", "14"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("`digest.max_window_days`"), "{err}");
        assert!(load_env(&[
            ("PAPERBOY__DIGEST__MAX_WINDOW_DAYS", "30"),
            ("PAPERBOY__RETENTION__NEVER_REPEAT_DAYS", "0"),
        ])
        .is_ok());
    }

    #[test]
    fn bad_retention_and_domain_pacing_values_fail_naming_their_key() {
        let cases: [(&[(&str, &str)], &str); 6] = [
            (
                &[("PAPERBOY__RETENTION__NEVER_REPEAT_DAYS", "2")],
                "retention.never_repeat_days",
            ),
            (
                &[("PAPERBOY__RETENTION__NEVER_REPEAT_DAYS", "60")],
                "retention.never_repeat_days",
            ),
            (
                &[("PAPERBOY__RETENTION__UPVOTE_DAYS", "3")],
                "retention.upvote_days",
            ),
            (
                &[("PAPERBOY__RETENTION__BATCH_ROWS", "0")],
                "retention.batch_rows",
            ),
            (
                &[("PAPERBOY__DIGEST__DOMAIN_LIMITS", "gmail.com")],
                "digest.domain_limits",
            ),
            (
                &[("PAPERBOY__DIGEST__DOMAIN_LIMITS", "gmail.com=0")],
                "digest.domain_limits",
            ),
        ];
        for (pairs, key) in cases {
            let err = load_env(pairs).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")), "{pairs:?}: {err}");
        }
        let c = load_env(&[
            (
                "PAPERBOY__DIGEST__DOMAIN_LIMITS",
                "Gmail.com=10, yahoo.com=5",
            ),
            ("PAPERBOY__DIGEST__DOMAIN_MAX_PER_SECOND", "20"),
            ("PAPERBOY__RETENTION__DELIVERY_DAYS", "0"),
        ])
        .unwrap();
        let limits = c.domain_limits().unwrap();
        assert_eq!(limits.get("gmail.com"), Some(&10));
        assert_eq!(limits.get("yahoo.com"), Some(&5));
        assert_eq!(c.domain_default_rate(), 20);
        assert_eq!(
            c.retention_policy().deliveries,
            None,
            "0 days keeps for ever"
        );
    }

    #[test]
    fn smtp_without_tls_is_refused_for_remote_hosts() {
        let remote = load_env(&[
            ("PAPERBOY__MAIL__TRANSPORT", "smtp"),
            ("PAPERBOY__MAIL__SMTP__HOST", "smtp.example.org"),
            ("PAPERBOY__MAIL__SMTP__TLS", "none"),
        ]);
        assert!(remote.unwrap_err().to_string().contains("`mail.smtp.tls`"));
        let local = load_env(&[
            ("PAPERBOY__MAIL__TRANSPORT", "smtp"),
            ("PAPERBOY__MAIL__SMTP__HOST", "127.0.0.1"),
            ("PAPERBOY__MAIL__SMTP__TLS", "none"),
        ])
        .unwrap();
        assert_eq!(local.smtp_port(), 25);
        let missing = load_env(&[("PAPERBOY__MAIL__TRANSPORT", "smtp")]);
        assert!(missing
            .unwrap_err()
            .to_string()
            .contains("`mail.smtp.host`"));
    }

    #[test]
    fn a_config_file_overrides_defaults_and_unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.toml");
        std::fs::write(&good, "[server]\nbind = \"127.0.0.1:9999\"\n").unwrap();
        let c = Config::load_with_env(Some(&good), Vec::new()).unwrap();
        assert_eq!(c.server.bind, "127.0.0.1:9999");

        let typo = dir.path().join("typo.toml");
        std::fs::write(&typo, "[mail]\ntransprot = \"smtp\"\n").unwrap();
        let err = Config::load_with_env(Some(&typo), Vec::new()).unwrap_err();
        assert!(err.to_string().contains("`mail.transprot`"), "{err}");

        let broken = dir.path().join("broken.toml");
        std::fs::write(&broken, "[server\n").unwrap();
        let err = Config::load_with_env(Some(&broken), Vec::new()).unwrap_err();
        assert!(err.to_string().contains("broken.toml"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_when_printed() {
        let c = load_env(&[(
            "PAPERBOY__SECURITY__SECRET_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIj",
        )])
        .unwrap();
        let printed = c.to_redacted_toml();
        assert!(printed.contains("<redacted>"));
        assert!(!printed.contains("AAECAwQF"));
        assert!(!format!("{c:?}").contains("AAECAwQF"));
    }
}

// ---- Per-recipient-domain pacing and retention (issue 12) ----

impl Config {
    /// Messages per second to any one recipient domain: the configured
    /// cap, or the global rate when it is 0 (unlimited but the global).
    pub fn domain_default_rate(&self) -> u32 {
        match self.digest.domain_max_per_second {
            0 => self.digest.max_per_second,
            n => n.min(self.digest.max_per_second),
        }
    }

    /// `digest.domain_limits` ("gmail.com=10, yahoo.com=5") as lower-case
    /// domain → messages per second.
    pub fn domain_limits(&self) -> Result<std::collections::BTreeMap<String, u32>, ConfigError> {
        let key = "digest.domain_limits";
        let mut out = std::collections::BTreeMap::new();
        for item in self.digest.domain_limits.split([',', ' ', '\n']) {
            if item.trim().is_empty() {
                continue;
            }
            let (domain, rate) = item.trim().split_once('=').ok_or_else(|| {
                invalid(
                    key,
                    format!("{item:?} is not DOMAIN=RATE, e.g. gmail.com=10"),
                )
            })?;
            let domain = domain.trim().to_ascii_lowercase();
            if !domain.contains('.') || domain.contains('@') || domain.starts_with('.') {
                return Err(invalid(key, format!("{domain:?} is not a mail domain")));
            }
            let rate: u32 = rate
                .trim()
                .parse()
                .ok()
                .filter(|r| *r >= 1)
                .ok_or_else(|| invalid(key, format!("{domain}: the rate must be a whole number of messages per second, at least 1")))?;
            if out.insert(domain.clone(), rate).is_some() {
                return Err(invalid(key, format!("{domain} is listed twice")));
            }
        }
        Ok(out)
    }
}

// Retention

/// How long old rows are kept (`[retention]`); 0 days keeps them for ever.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    pub delivery_days: u32,
    pub never_repeat_days: u32,
    pub fetch_log_days: u32,
    pub upvote_days: u32,
    pub batch_rows: u32,
}

impl Config {
    fn validate_retention(&self) -> Result<(), ConfigError> {
        let r = &self.retention;
        let candidates = self.digest.candidate_days;
        if r.never_repeat_days != 0 && r.never_repeat_days <= candidates {
            return Err(invalid(
                "retention.never_repeat_days",
                format!(
                    "must be 0 (for ever) or more than digest.candidate_days ({candidates}): \
                     a paper that can still be a candidate must not be mailed twice"
                ),
            ));
        }
        if r.delivery_days != 0 && r.never_repeat_days > r.delivery_days {
            return Err(invalid(
                "retention.never_repeat_days",
                "must be at most retention.delivery_days (never-repeat rows are pruned \
                 through the delivery rows, which must still be there)",
            ));
        }
        if r.upvote_days != 0 && r.upvote_days <= candidates + 1 {
            return Err(invalid(
                "retention.upvote_days",
                format!(
                    "must be 0 (for ever) or more than digest.candidate_days + 1 ({}): \
                     trending reads a day of history of every candidate",
                    candidates + 1
                ),
            ));
        }
        if r.batch_rows == 0 || r.batch_rows > 100_000 {
            return Err(invalid("retention.batch_rows", "must be 1–100000"));
        }
        Ok(())
    }

    /// The store's retention policy from `[retention]`.
    pub fn retention_policy(&self) -> crate::domain::RetentionPolicy {
        let r = &self.retention;
        let days = |d: u32| (d > 0).then(|| chrono::Duration::days(d as i64));
        crate::domain::RetentionPolicy {
            deliveries: days(r.delivery_days),
            never_repeat: days(r.never_repeat_days),
            fetch_log: days(r.fetch_log_days),
            upvote_observations: days(r.upvote_days),
            batch: r.batch_rows,
        }
    }
}
