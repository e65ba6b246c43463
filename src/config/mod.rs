//! Layered configuration: the embedded `config/default.toml`, then an
//! optional `--config FILE`, then `PAPERBOY__SECTION__KEY` environment
//! variables (`layers.rs`). The layered input is parsed once into typed
//! sections, each checking its own keys (one file per section); a bad
//! value is reported with the dotted name of its key.
//!
//! Nothing here imports a module above it: what a section shares with
//! its users (the retention policy, the embedding model family, the
//! database's durability) lives in `domain`.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod bounces;
mod database;
mod digest;
mod layers;
mod logging;
mod mail;
mod rank;
mod retention;
mod security;
mod server;
mod sources;
mod subscribe;
pub mod synonyms;
mod templates;
mod values;

pub use bounces::{BouncesConfig, MailboxConfig, NonReports, WebhooksConfig};
pub use database::DatabaseConfig;
pub use digest::{DigestConfig, UnknownPolicy};
pub use logging::{LogFilter, LogFormat, LoggingConfig};
pub use mail::{DkimConfig, MailConfig, MailTransport, SmtpConfig, SmtpTls};
pub use rank::{RankConfig, SemanticConfig};
pub use security::{SecretKey, SecurityConfig};
pub use server::ServerConfig;
pub use sources::{ArxivConfig, FeedFormat, HuggingFaceConfig, SourcesConfig};
pub use subscribe::SubscribeConfig;
pub use templates::TemplatesConfig;
pub use values::{is_loopback_host, Cron, PerSecond, Secret};

use crate::domain::RetentionPolicy;

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

/// The effective configuration, every value parsed and checked.
#[derive(Debug, Clone)]
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
    pub retention: RetentionPolicy,
    pub bounces: BouncesConfig,
    pub templates: TemplatesConfig,
    /// The layered input as read, for `config check` to print.
    input: Input,
}

/// The layered TOML as written, section by section: every key the
/// defaults have, with the value the layers gave it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Input {
    server: server::Raw,
    database: database::Raw,
    mail: mail::Raw,
    subscribe: subscribe::Raw,
    sources: sources::Raw,
    digest: digest::Raw,
    rank: rank::Raw,
    security: security::Raw,
    logging: logging::Raw,
    retention: retention::Raw,
    bounces: BouncesConfig,
    templates: templates::Raw,
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
        let mut table = layers::parse_toml("config/default.toml (embedded)", DEFAULT_TOML)?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let overlay = layers::parse_toml(&path.display().to_string(), &text)?;
            layers::merge(&mut table, overlay, "")?;
        }
        layers::apply_env(&mut table, env)?;
        let input: Input =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                invalid(&key, e.into_inner().to_string())
            })?;
        Config::try_from(input)
    }

    /// The bounds of every digest's window of listing days.
    pub fn window_limits(&self) -> crate::domain::WindowLimits {
        crate::domain::WindowLimits {
            min_days: self.digest.candidate_days,
            max_days: self.digest.max_window_days,
        }
    }

    pub fn shutdown_grace(&self) -> Duration {
        self.server.shutdown_grace
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(&self.input)
            .unwrap_or_else(|e| format!("# cannot print config: {e}\n"))
    }
}

impl TryFrom<Input> for Config {
    type Error = ConfigError;

    /// Each section in turn; `[retention]` after `[digest]`, whose windows
    /// it must outlive.
    fn try_from(input: Input) -> Result<Config, ConfigError> {
        let server = ServerConfig::try_from(&input.server)?;
        let database = DatabaseConfig::try_from(&input.database)?;
        let mail = MailConfig::try_from(&input.mail)?;
        let subscribe = SubscribeConfig::try_from(&input.subscribe)?;
        let sources = SourcesConfig::try_from(&input.sources)?;
        let digest = DigestConfig::try_from(&input.digest)?;
        let rank = RankConfig::try_from(&input.rank)?;
        let security = SecurityConfig::try_from(&input.security)?;
        let logging = LoggingConfig::try_from(&input.logging)?;
        let retention = retention::policy(&input.retention, &digest)?;
        input.bounces.validate()?;
        Ok(Config {
            server,
            database,
            mail,
            subscribe,
            sources,
            digest,
            rank,
            security,
            logging,
            retention,
            bounces: input.bounces.clone(),
            templates: TemplatesConfig::from(&input.templates),
            input,
        })
    }
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
        assert_eq!(c.server.bind.to_string(), "127.0.0.1:8080");
        assert!(matches!(c.mail.transport, MailTransport::File { .. }));
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
        assert_eq!(c.server.bind.to_string(), "0.0.0.0:9000");
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
        let limits = &c.digest.domain_limits;
        assert_eq!(limits.get("gmail.com").map(|r| r.get()), Some(10));
        assert_eq!(limits.get("yahoo.com").map(|r| r.get()), Some(5));
        assert_eq!(c.digest.domain_rate.get(), 20);
        assert_eq!(c.retention.deliveries, None, "0 days keeps for ever");
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
        let MailTransport::Smtp(smtp) = &local.mail.transport else {
            panic!("an smtp transport: {:?}", local.mail.transport)
        };
        assert_eq!(smtp.port, 25);
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
        assert_eq!(c.server.bind.to_string(), "127.0.0.1:9999");

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
