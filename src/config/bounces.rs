//! `[bounces]`: asynchronous bounces and complaints: the VERP envelope
//! sender, the policy, the bounce mailbox and provider webhooks.

use super::values::{at_least, read_secret, within, Cron, Secret};
use super::{invalid, ConfigError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BouncesConfig {
    pub verp_address: String,
    pub soft_bounce_limit: u32,
    pub soft_bounce_window_days: u32,
    pub complaint_max_percent: f64,
    pub complaint_window_hours: u32,
    pub complaint_min_sent: u64,
    pub mailbox: MailboxConfig,
    pub webhooks: WebhooksConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxConfig {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password_env: String,
    pub password_file: String,
    pub folder: String,
    pub processed_folder: String,
    pub non_reports: NonReports,
    pub non_reports_folder: String,
    pub ca_file: String,
    pub cron: String,
    pub timeout_secs: u64,
    pub max_messages: u32,
}

/// What the poller does with mail in the bounce folder that is not a
/// report (`bounces.mailbox.non_reports`). Either way it is read once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NonReports {
    /// Keyword `$PaperboyIgnored` and `\Seen`; the message stays.
    Flag,
    /// Moved to `bounces.mailbox.non_reports_folder`.
    Move,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    pub enabled: bool,
    pub secret_env: String,
    pub secret_file: String,
    pub sns_cert_base_url: String,
    pub mailgun_signing_key_env: String,
}

impl MailboxConfig {
    /// Moving mail out of the folder it is read from would move nothing.
    fn validate_folders(&self) -> Result<(), ConfigError> {
        let same = |f: &str| f.eq_ignore_ascii_case(&self.folder);
        if same(&self.processed_folder) {
            return Err(invalid(
                "bounces.mailbox.processed_folder",
                "must differ from bounces.mailbox.folder (or be empty to flag instead)",
            ));
        }
        if self.non_reports == NonReports::Move
            && (self.non_reports_folder.trim().is_empty() || same(&self.non_reports_folder))
        {
            return Err(invalid(
                "bounces.mailbox.non_reports_folder",
                "with non_reports = \"move\", name a folder other than bounces.mailbox.folder",
            ));
        }
        Ok(())
    }
}

impl BouncesConfig {
    /// The whole section: its own keys, then the mailbox and the webhooks.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.verp_address.is_empty() {
            let ok = self
                .verp_address
                .rsplit_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && !l.contains('+') && d.contains('.'));
            if !ok {
                return Err(invalid(
                    "bounces.verp_address",
                    "must be an address like bounces@example.org (no '+'), or empty",
                ));
            }
        }
        at_least("bounces.soft_bounce_limit", self.soft_bounce_limit, 1)?;
        at_least(
            "bounces.soft_bounce_window_days",
            self.soft_bounce_window_days,
            1,
        )?;
        within(
            "bounces.complaint_max_percent",
            self.complaint_max_percent,
            0.0,
            100.0,
        )?;
        at_least(
            "bounces.complaint_window_hours",
            self.complaint_window_hours,
            1,
        )?;
        if self.mailbox.enabled {
            self.validate_mailbox()?;
        }
        if self.webhooks.enabled {
            self.validate_webhooks()?;
        }
        Ok(())
    }

    /// `[bounces.mailbox]`, when enabled: where to log in, and a password.
    fn validate_mailbox(&self) -> Result<(), ConfigError> {
        let mb = &self.mailbox;
        if mb.host.is_empty() {
            return Err(invalid(
                "bounces.mailbox.host",
                "required when the mailbox is enabled",
            ));
        }
        if mb.username.is_empty() {
            return Err(invalid(
                "bounces.mailbox.username",
                "required when the mailbox is enabled",
            ));
        }
        if mb.folder.is_empty() {
            return Err(invalid("bounces.mailbox.folder", "must not be empty"));
        }
        mb.validate_folders()?;
        Cron::parse("bounces.mailbox.cron", &mb.cron)?;
        at_least("bounces.mailbox.timeout_secs", mb.timeout_secs, 1)?;
        at_least("bounces.mailbox.max_messages", mb.max_messages, 1)?;
        if !mb.ca_file.is_empty() && !std::path::Path::new(&mb.ca_file).is_file() {
            return Err(invalid(
                "bounces.mailbox.ca_file",
                format!("{} is not a readable file", mb.ca_file),
            ));
        }
        if self.mailbox_password()?.is_none() {
            return Err(invalid(
                "bounces.mailbox.password_env",
                "no password found in `bounces.mailbox.password_file` or the variable this names",
            ));
        }
        Ok(())
    }

    /// `[bounces.webhooks]`, when enabled: a long enough secret.
    fn validate_webhooks(&self) -> Result<(), ConfigError> {
        match self.webhook_secret()? {
            Some(s) if s.expose().len() >= 16 => {}
            _ => {
                return Err(invalid(
                    "bounces.webhooks.secret_env",
                    "webhooks are enabled but no secret of at least 16 characters was found in `bounces.webhooks.secret_file` or the variable this names",
                ))
            }
        }
        let base = &self.webhooks.sns_cert_base_url;
        if !base.is_empty() && url::Url::parse(base).is_err() {
            return Err(invalid(
                "bounces.webhooks.sns_cert_base_url",
                "must be a URL or empty",
            ));
        }
        Ok(())
    }

    /// The bounce mailbox password.
    pub fn mailbox_password(&self) -> Result<Option<Secret>, ConfigError> {
        let mb = &self.mailbox;
        read_secret(
            "bounces.mailbox.password_file",
            &mb.password_file,
            &mb.password_env,
            true,
        )
    }

    /// The shared secret that authenticates webhook requests.
    pub fn webhook_secret(&self) -> Result<Option<Secret>, ConfigError> {
        let w = &self.webhooks;
        read_secret(
            "bounces.webhooks.secret_file",
            &w.secret_file,
            &w.secret_env,
            true,
        )
    }

    /// Mailgun's webhook signing key, when configured: its signature is
    /// then checked too.
    pub fn mailgun_signing_key(&self) -> Option<Secret> {
        let env = &self.webhooks.mailgun_signing_key_env;
        if env.is_empty() {
            return None;
        }
        std::env::var(env)
            .ok()
            .filter(|v| !v.is_empty())
            .map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, String> {
        let env: Vec<(String, String)> = [
            ("PAPERBOY__BOUNCES__MAILBOX__ENABLED", "true"),
            ("PAPERBOY__BOUNCES__MAILBOX__HOST", "imap.example.org"),
            ("PAPERBOY__BOUNCES__MAILBOX__USERNAME", "bounces"),
            (
                "PAPERBOY__BOUNCES__MAILBOX__PASSWORD_ENV",
                "PAPERBOY_TEST_CONFIG_BOUNCE_PW",
            ),
        ]
        .iter()
        .chain(pairs)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        // The password is read from the process environment; the name is
        // unique to this test module.
        std::env::set_var("PAPERBOY_TEST_CONFIG_BOUNCE_PW", "x");
        Config::load_with_env(None, env).map_err(|e| e.to_string())
    }

    #[test]
    fn mail_is_moved_only_to_a_folder_other_than_the_one_read() {
        let c = load(&[]).unwrap();
        assert_eq!(c.bounces.mailbox.non_reports, super::NonReports::Flag);
        assert!(load(&[("PAPERBOY__BOUNCES__MAILBOX__NON_REPORTS", "move")]).is_ok());
        let same = load(&[
            ("PAPERBOY__BOUNCES__MAILBOX__NON_REPORTS", "move"),
            ("PAPERBOY__BOUNCES__MAILBOX__NON_REPORTS_FOLDER", "inbox"),
        ])
        .unwrap_err();
        assert!(
            same.contains("bounces.mailbox.non_reports_folder"),
            "{same}"
        );
        let processed =
            load(&[("PAPERBOY__BOUNCES__MAILBOX__PROCESSED_FOLDER", "INBOX")]).unwrap_err();
        assert!(
            processed.contains("bounces.mailbox.processed_folder"),
            "{processed}"
        );
        let unknown = load(&[("PAPERBOY__BOUNCES__MAILBOX__NON_REPORTS", "delete")]).unwrap_err();
        assert!(unknown.contains("non_reports"), "{unknown}");
    }
}
