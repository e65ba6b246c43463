//! Value types and checks shared by the sections: secrets, cron
//! expressions, rates, URLs and host names, and the range checks whose
//! messages name the key.

use super::{invalid, ConfigError};
use serde::{Deserialize, Serialize};
use std::fmt::Display;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::str::FromStr;
use url::Url;

/// A secret string: `Debug` and `Serialize` print `<redacted>`.
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

/// Reads a secret: the first line of `file` when set (an unreadable file
/// fails naming `file_key`), else the variable named by `env`.
pub(super) fn read_secret(
    file_key: &str,
    file: &str,
    env: &str,
    trim: bool,
) -> Result<Option<Secret>, ConfigError> {
    if !file.is_empty() {
        let text = std::fs::read_to_string(file)
            .map_err(|e| invalid(file_key, format!("cannot read: {e}")))?;
        let line = text.lines().next().unwrap_or("");
        return Ok(Some(Secret::new(if trim { line.trim() } else { line })));
    }
    if !env.is_empty() {
        if let Ok(v) = std::env::var(env) {
            return Ok(Some(Secret::new(v)));
        }
    }
    Ok(None)
}

/// A cron expression with seconds (six fields), checked at load. Reads as
/// the `&str` the scheduler takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron(String);

impl Cron {
    /// `expr` if it parses as tokio-cron-scheduler will parse it (croner,
    /// seconds required); the error names `key`.
    pub fn parse(key: &str, expr: &str) -> Result<Cron, ConfigError> {
        croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Required)
            .build()
            .parse(expr)
            .map(|_| Cron(expr.to_string()))
            .map_err(|e| {
                invalid(
                    key,
                    format!("{expr:?} is not a cron expression with seconds (sec min hour day month weekday): {e}"),
                )
            })
    }
}

impl std::ops::Deref for Cron {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// A rate of messages per second, at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PerSecond(NonZeroU32);

impl PerSecond {
    pub fn new(n: u32) -> Option<PerSecond> {
        NonZeroU32::new(n).map(PerSecond)
    }
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

/// `v` when it lies in `lo..=hi`, else "must be lo–hi".
pub(super) fn within<T: PartialOrd + Display + Copy>(
    key: &str,
    v: T,
    lo: T,
    hi: T,
) -> Result<T, ConfigError> {
    if lo <= v && v <= hi {
        Ok(v)
    } else {
        Err(invalid(key, format!("must be {lo}–{hi}")))
    }
}

/// `v` when it is at least `min`, else "must be at least min".
pub(super) fn at_least<T: PartialOrd + Display + Copy>(
    key: &str,
    v: T,
    min: T,
) -> Result<T, ConfigError> {
    if v >= min {
        Ok(v)
    } else {
        Err(invalid(key, format!("must be at least {min}")))
    }
}

/// An absolute `http`/`https` URL with a host.
pub(super) fn http_url(key: &str, s: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(s).map_err(|e| invalid(key, format!("{s:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(
            key,
            format!("{s:?} must be an http(s) URL with a host"),
        ));
    }
    Ok(url)
}

pub(super) fn is_hostname(s: &str) -> bool {
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
