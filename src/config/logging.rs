//! `[logging]`: the tracing filter and the output format.

use super::{invalid, ConfigError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    level: String,
    format: String,
}

#[derive(Debug, Clone)]
pub struct LoggingConfig {
    pub level: LogFilter,
    pub format: LogFormat,
}

/// How log lines are written (`logging.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A tracing filter whose every directive is a level or `target=level`
/// (`logging.level`). Reads as the `&str` the filter is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFilter(String);

impl std::ops::Deref for LogFilter {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&Raw> for LoggingConfig {
    type Error = ConfigError;

    fn try_from(r: &Raw) -> Result<LoggingConfig, ConfigError> {
        let format = match r.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => return Err(invalid("logging.format", "must be \"text\" or \"json\"")),
        };
        Ok(LoggingConfig {
            level: LogFilter::parse(&r.level)?,
            format,
        })
    }
}

impl LogFilter {
    /// Comma-separated directives, each a level (`info`) or `target=level`
    /// (`paperboy::digest=debug`). The tracing filter itself takes any
    /// bare word as a target name, so a typo such as `verbose` would be
    /// accepted and silently log nothing.
    fn parse(s: &str) -> Result<LogFilter, ConfigError> {
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
                Some((_, level)) if !is_level(level) => {
                    return Err(bad(d, "does not end in a level"))
                }
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
        Ok(LogFilter(s.to_string()))
    }
}
