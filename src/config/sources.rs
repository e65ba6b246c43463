//! `[sources]`, `[sources.huggingface]`, `[sources.arxiv]`: the upstreams
//! papers are fetched from, and how politely.

use super::values::{at_least, http_url, within, Cron};
use super::{invalid, ConfigError};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use url::Url;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    contact: String,
    connect_timeout_secs: u64,
    timeout_secs: u64,
    max_retries: u32,
    max_body_bytes: usize,
    huggingface: RawHuggingFace,
    arxiv: RawArxiv,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawHuggingFace {
    enabled: bool,
    base_url: String,
    page_size: u32,
    cron: String,
    refresh_days: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawArxiv {
    enabled: bool,
    categories: Vec<String>,
    feed_format: String,
    feed_base_url: String,
    api_base_url: String,
    cron: String,
    api_min_interval_secs: u64,
}

#[derive(Debug, Clone)]
pub struct SourcesConfig {
    /// Sent in the User-Agent so upstreams can reach the operator.
    pub contact: String,
    pub connect_timeout: Duration,
    /// A whole request fails after this.
    pub timeout: Duration,
    /// Retries on 429, 5xx and timeouts.
    pub max_retries: u32,
    pub max_body_bytes: usize,
    pub huggingface: HuggingFaceConfig,
    pub arxiv: ArxivConfig,
}

#[derive(Debug, Clone)]
pub struct HuggingFaceConfig {
    pub enabled: bool,
    pub base_url: Url,
    /// Items per page (1–100).
    pub page_size: u32,
    pub cron: Cron,
    /// Previous days' lists re-read by a scheduled fetch (0–14).
    pub refresh_days: u32,
}

#[derive(Debug, Clone)]
pub struct ArxivConfig {
    pub enabled: bool,
    /// arXiv categories whose listing feeds are fetched.
    pub categories: Vec<String>,
    pub feed_format: FeedFormat,
    pub feed_base_url: Url,
    pub api_base_url: Url,
    pub cron: Cron,
    /// The export API is asked at most once per this.
    pub api_min_interval: Duration,
}

/// Which listing feed arXiv is read from (`sources.arxiv.feed_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedFormat {
    Rss,
    Atom,
}

impl FeedFormat {
    /// The feed's path segment on `feed_base_url`.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedFormat::Rss => "rss",
            FeedFormat::Atom => "atom",
        }
    }
}

impl TryFrom<&Raw> for SourcesConfig {
    type Error = ConfigError;

    fn try_from(r: &Raw) -> Result<SourcesConfig, ConfigError> {
        if r.contact.is_empty() || r.contact.chars().any(|c| c.is_control()) {
            return Err(invalid(
                "sources.contact",
                "must be a contact address or URL",
            ));
        }
        if r.timeout_secs == 0 || r.connect_timeout_secs == 0 {
            return Err(invalid(
                "sources.timeout_secs",
                "timeouts must be at least 1 second",
            ));
        }
        Ok(SourcesConfig {
            contact: r.contact.clone(),
            connect_timeout: Duration::from_secs(r.connect_timeout_secs),
            timeout: Duration::from_secs(r.timeout_secs),
            max_retries: r.max_retries,
            max_body_bytes: at_least("sources.max_body_bytes", r.max_body_bytes, 1024)?,
            huggingface: HuggingFaceConfig::try_from(&r.huggingface)?,
            arxiv: ArxivConfig::try_from(&r.arxiv)?,
        })
    }
}

impl TryFrom<&RawHuggingFace> for HuggingFaceConfig {
    type Error = ConfigError;

    fn try_from(r: &RawHuggingFace) -> Result<HuggingFaceConfig, ConfigError> {
        Ok(HuggingFaceConfig {
            enabled: r.enabled,
            base_url: http_url("sources.huggingface.base_url", &r.base_url)?,
            cron: Cron::parse("sources.huggingface.cron", &r.cron)?,
            page_size: within("sources.huggingface.page_size", r.page_size, 1, 100)?,
            refresh_days: within("sources.huggingface.refresh_days", r.refresh_days, 0, 14)?,
        })
    }
}

impl TryFrom<&RawArxiv> for ArxivConfig {
    type Error = ConfigError;

    fn try_from(r: &RawArxiv) -> Result<ArxivConfig, ConfigError> {
        let feed_base_url = http_url("sources.arxiv.feed_base_url", &r.feed_base_url)?;
        let api_base_url = http_url("sources.arxiv.api_base_url", &r.api_base_url)?;
        let cron = Cron::parse("sources.arxiv.cron", &r.cron)?;
        let feed_format = match r.feed_format.as_str() {
            "rss" => FeedFormat::Rss,
            "atom" => FeedFormat::Atom,
            _ => {
                return Err(invalid(
                    "sources.arxiv.feed_format",
                    "must be \"rss\" or \"atom\"",
                ))
            }
        };
        let key = "sources.arxiv.categories";
        if let Some(c) = r.categories.iter().find(|c| !crate::domain::is_category(c)) {
            return Err(invalid(key, format!("{c:?} is not an arXiv category")));
        }
        if r.enabled && r.categories.is_empty() {
            return Err(invalid(
                key,
                "at least one category is needed when arXiv is enabled",
            ));
        }
        Ok(ArxivConfig {
            enabled: r.enabled,
            categories: r.categories.clone(),
            feed_format,
            feed_base_url,
            api_base_url,
            cron,
            api_min_interval: Duration::from_secs(r.api_min_interval_secs),
        })
    }
}
