//! `[server]`: where the web server listens, the public base URL, the
//! shutdown grace and the trusted proxy.

use super::values::{http_url, is_loopback_host, within};
use super::{invalid, ConfigError};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use url::Url;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    bind: String,
    base_url: String,
    shutdown_grace_secs: u64,
    request_timeout_secs: u64,
    trusted_proxy: String,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    /// The public base URL every mailed link starts with; no query or
    /// fragment.
    pub base_url: Url,
    /// What in-flight requests and sends get to finish on SIGTERM.
    pub shutdown_grace: Duration,
    /// A single request is cut off after this.
    pub request_timeout: Duration,
    /// The reverse proxy whose `X-Forwarded-For` is believed; `None`: the
    /// TCP peer is the client.
    pub trusted_proxy: Option<IpAddr>,
}

impl TryFrom<&Raw> for ServerConfig {
    type Error = ConfigError;

    fn try_from(r: &Raw) -> Result<ServerConfig, ConfigError> {
        let bind = r.bind.parse().map_err(|_| {
            invalid(
                "server.bind",
                format!("{:?} is not an address like 127.0.0.1:8080", r.bind),
            )
        })?;
        let base_url = http_url("server.base_url", &r.base_url)?;
        if base_url.query().is_some() || base_url.fragment().is_some() {
            return Err(invalid(
                "server.base_url",
                "must not have a query or fragment",
            ));
        }
        if base_url.scheme() == "http" && !is_loopback_host(base_url.host_str().unwrap_or("")) {
            tracing::warn!(
                "server.base_url is plain http on a non-loopback host; mail links should be https"
            );
        }
        let trusted_proxy =
            match r.trusted_proxy.as_str() {
                "" => None,
                ip => Some(ip.parse().map_err(|_| {
                    invalid("server.trusted_proxy", "must be an IP address or empty")
                })?),
            };
        let grace = within("server.shutdown_grace_secs", r.shutdown_grace_secs, 1, 600)?;
        if r.request_timeout_secs == 0 {
            return Err(invalid("server.request_timeout_secs", "must be at least 1"));
        }
        Ok(ServerConfig {
            bind,
            base_url,
            shutdown_grace: Duration::from_secs(grace),
            request_timeout: Duration::from_secs(r.request_timeout_secs),
            trusted_proxy,
        })
    }
}
