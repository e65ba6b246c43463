//! `[database]`: the SQLite file and how it is opened.

use super::values::within;
use super::{invalid, ConfigError};
use crate::domain::Synchronous;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    path: PathBuf,
    busy_timeout_ms: u64,
    max_connections: u32,
    synchronous: String,
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub path: PathBuf,
    /// How long a connection waits for another process's lock.
    pub busy_timeout: Duration,
    /// Connections in the read pool (1–64).
    pub max_connections: u32,
    pub synchronous: Synchronous,
}

impl TryFrom<&Raw> for DatabaseConfig {
    type Error = ConfigError;

    fn try_from(r: &Raw) -> Result<DatabaseConfig, ConfigError> {
        if r.path.as_os_str().is_empty() {
            return Err(invalid("database.path", "must not be empty"));
        }
        let synchronous = match r.synchronous.as_str() {
            "normal" => Synchronous::Normal,
            "full" => Synchronous::Full,
            _ => {
                return Err(invalid(
                    "database.synchronous",
                    "must be \"normal\" or \"full\"",
                ))
            }
        };
        Ok(DatabaseConfig {
            path: r.path.clone(),
            busy_timeout: Duration::from_millis(r.busy_timeout_ms),
            max_connections: within("database.max_connections", r.max_connections, 1, 64)?,
            synchronous,
        })
    }
}
