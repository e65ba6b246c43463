//! `[digest]`: when digests are planned and sent, what a new subscriber
//! starts with, what a digest covers, and the delivery engine's pacing,
//! leases, retries and error budget.

use super::values::{at_least, within, Cron, PerSecond};
use super::{invalid, ConfigError};
use chrono::{NaiveTime, TimeDelta};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    cron: String,
    default_send_time: String,
    default_time_zone: String,
    default_size: u8,
    catch_up_hours: u32,
    candidate_days: u32,
    max_window_days: u32,
    unknown_policy: String,
    max_per_second: u32,
    concurrency: u32,
    lease_secs: u64,
    retry_base_secs: u64,
    retry_cap_secs: u64,
    retry_max_age_hours: u32,
    max_consecutive_failures: u32,
    max_bounce_percent: f64,
    domain_max_per_second: u32,
    domain_limits: String,
}

#[derive(Debug, Clone)]
pub struct DigestConfig {
    /// The scheduler tick.
    pub cron: Cron,
    /// Defaults for new subscribers.
    pub default_send_time: NaiveTime,
    pub default_time_zone: Tz,
    pub default_size: u8,
    /// A send time missed while the daemon was down is made up when at
    /// most this late.
    pub catch_up: TimeDelta,
    /// Every digest covers at least the papers listed this many days
    /// before its date.
    pub candidate_days: u32,
    /// The longest window a digest covers (first digest after a long
    /// pause or downtime); see `domain::window`.
    pub max_window_days: u32,
    pub unknown_policy: UnknownPolicy,
    /// The global send rate.
    pub max_per_second: PerSecond,
    /// Parallel sends.
    pub concurrency: u32,
    /// How long a claimed delivery is leased to a sender.
    pub lease: TimeDelta,
    /// Retry backoff: first delay and cap.
    pub retry_base: TimeDelta,
    pub retry_cap: TimeDelta,
    /// A delivery is given up this long after it was due.
    pub retry_max_age: TimeDelta,
    pub max_consecutive_failures: u32,
    pub max_bounce_percent: f64,
    /// The rate to any one recipient domain: `domain_max_per_second`
    /// capped by the global rate, or the global rate when that is 0.
    pub domain_rate: PerSecond,
    /// Rates of named domains (lower case), from `domain_limits`.
    pub domain_limits: BTreeMap<String, PerSecond>,
}

/// How to handle a delivery whose outcome is unknown after a crash
/// mid-send (`digest.unknown_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownPolicy {
    /// Send the identical stored bytes once more.
    Resend,
    /// Leave it unknown and report it.
    Skip,
}

impl std::fmt::Display for UnknownPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UnknownPolicy::Resend => "resend",
            UnknownPolicy::Skip => "skip",
        })
    }
}

impl TryFrom<&Raw> for DigestConfig {
    type Error = ConfigError;

    fn try_from(r: &Raw) -> Result<DigestConfig, ConfigError> {
        let cron = Cron::parse("digest.cron", &r.cron)?;
        let default_send_time = crate::domain::parse_send_time(&r.default_send_time)
            .ok_or_else(|| invalid("digest.default_send_time", "must be HH:MM"))?;
        let default_time_zone = crate::domain::parse_time_zone(&r.default_time_zone)
            .ok_or_else(|| invalid("digest.default_time_zone", "must be an IANA time zone name"))?;
        let default_size = within("digest.default_size", r.default_size, 1, 50)?;
        let catch_up_hours = within("digest.catch_up_hours", r.catch_up_hours, 0, 23)?;
        let candidate_days = within("digest.candidate_days", r.candidate_days, 1, 30)?;
        let w = r.max_window_days;
        if w < 7 || w < candidate_days || w > 60 {
            return Err(invalid(
                "digest.max_window_days",
                "must be 7–60 and at least digest.candidate_days (a weekly digest covers 7 days)",
            ));
        }
        let unknown_policy = match r.unknown_policy.as_str() {
            "resend" => UnknownPolicy::Resend,
            "skip" => UnknownPolicy::Skip,
            _ => {
                return Err(invalid(
                    "digest.unknown_policy",
                    "must be \"resend\" or \"skip\"",
                ))
            }
        };
        let sending = Sending::try_from(r)?;
        Ok(DigestConfig {
            cron,
            default_send_time,
            default_time_zone,
            default_size,
            catch_up: TimeDelta::hours(catch_up_hours.into()),
            candidate_days,
            max_window_days: w,
            unknown_policy,
            max_per_second: sending.max_per_second,
            concurrency: sending.concurrency,
            lease: sending.lease,
            retry_base: sending.retry_base,
            retry_cap: sending.retry_cap,
            retry_max_age: sending.retry_max_age,
            max_consecutive_failures: r.max_consecutive_failures,
            max_bounce_percent: within(
                "digest.max_bounce_percent",
                r.max_bounce_percent,
                0.0,
                100.0,
            )?,
            domain_rate: match PerSecond::new(r.domain_max_per_second) {
                None => sending.max_per_second,
                Some(n) => n.min(sending.max_per_second),
            },
            domain_limits: domain_limits(&r.domain_limits)?,
        })
    }
}

/// The delivery engine's rates and timings, checked together.
struct Sending {
    max_per_second: PerSecond,
    concurrency: u32,
    lease: TimeDelta,
    retry_base: TimeDelta,
    retry_cap: TimeDelta,
    retry_max_age: TimeDelta,
}

impl TryFrom<&Raw> for Sending {
    type Error = ConfigError;

    fn try_from(r: &Raw) -> Result<Sending, ConfigError> {
        let max_per_second = PerSecond::new(r.max_per_second)
            .ok_or_else(|| invalid("digest.max_per_second", "must be at least 1"))?;
        let concurrency = within("digest.concurrency", r.concurrency, 1, 64)?;
        let lease = at_least("digest.lease_secs", r.lease_secs, 10)?;
        if r.retry_base_secs == 0 || r.retry_cap_secs < r.retry_base_secs {
            return Err(invalid(
                "digest.retry_cap_secs",
                "retry_base_secs must be at least 1 and retry_cap_secs at least retry_base_secs",
            ));
        }
        let max_age = within("digest.retry_max_age_hours", r.retry_max_age_hours, 1, 23)?;
        let secs = |s: u64| TimeDelta::seconds(s as i64);
        Ok(Sending {
            max_per_second,
            concurrency,
            lease: secs(lease),
            retry_base: secs(r.retry_base_secs),
            retry_cap: secs(r.retry_cap_secs),
            retry_max_age: TimeDelta::hours(max_age.into()),
        })
    }
}

/// `digest.domain_limits` ("gmail.com=10, yahoo.com=5") as lower-case
/// domain → rate.
fn domain_limits(text: &str) -> Result<BTreeMap<String, PerSecond>, ConfigError> {
    let key = "digest.domain_limits";
    let mut out = BTreeMap::new();
    for item in text.split([',', ' ', '\n']) {
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
        let rate = rate
            .trim()
            .parse()
            .ok()
            .and_then(PerSecond::new)
            .ok_or_else(|| invalid(key, format!("{domain}: the rate must be a whole number of messages per second, at least 1")))?;
        if out.insert(domain.clone(), rate).is_some() {
            return Err(invalid(key, format!("{domain} is listed twice")));
        }
    }
    Ok(out)
}
