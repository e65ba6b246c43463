//! `[subscribe]`: confirmation links and the limits that keep the
//! subscribe form from being used to mail-bomb anyone.

use super::values::{at_least, within};
use super::ConfigError;
use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    confirm_ttl_hours: u32,
    pending_expiry_days: u32,
    per_ip_per_minute: u32,
    per_address_min_interval_minutes: u32,
    per_address_per_day: u32,
    global_per_hour: u32,
    record_ip: bool,
}

#[derive(Debug, Clone)]
pub struct SubscribeConfig {
    /// How long a confirmation link stays valid (1 hour to 14 days).
    pub confirm_ttl: TimeDelta,
    /// Unconfirmed subscriptions are purged after this.
    pub pending_expiry: TimeDelta,
    /// Form requests per minute per client IP.
    pub per_ip_per_minute: u32,
    /// At most one confirmation mail per address per this…
    pub per_address_min_interval: TimeDelta,
    /// …and at most this many per 24 hours.
    pub per_address_per_day: u32,
    /// Confirmation mails per hour across all addresses.
    pub global_per_hour: u32,
    /// Record the subscriber's IP address in the consent record.
    pub record_ip: bool,
}

impl TryFrom<&Raw> for SubscribeConfig {
    type Error = ConfigError;

    fn try_from(r: &Raw) -> Result<SubscribeConfig, ConfigError> {
        let ttl = within(
            "subscribe.confirm_ttl_hours",
            r.confirm_ttl_hours,
            1,
            24 * 14,
        )?;
        let expiry = at_least("subscribe.pending_expiry_days", r.pending_expiry_days, 1)?;
        Ok(SubscribeConfig {
            confirm_ttl: TimeDelta::hours(ttl.into()),
            pending_expiry: TimeDelta::days(expiry.into()),
            per_ip_per_minute: at_least("subscribe.per_ip_per_minute", r.per_ip_per_minute, 1)?,
            per_address_min_interval: TimeDelta::minutes(r.per_address_min_interval_minutes.into()),
            per_address_per_day: at_least(
                "subscribe.per_address_per_day",
                r.per_address_per_day,
                1,
            )?,
            global_per_hour: at_least("subscribe.global_per_hour", r.global_per_hour, 1)?,
            record_ip: r.record_ip,
        })
    }
}
