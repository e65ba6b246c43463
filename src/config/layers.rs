//! The layers a configuration is read from: the embedded defaults, a
//! file over them, environment variables over both. A key the defaults do
//! not have is refused here, so a typo names itself.

use super::{invalid, ConfigError, ENV_PREFIX};

pub(super) fn parse_toml(origin: &str, text: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>()
        .map_err(|e| ConfigError::Syntax {
            path: origin.to_string(),
            message: e.to_string(),
        })
}

/// Merges `overlay` into `base`. Keys unknown to the defaults are refused
/// here so a typo in a file names itself rather than being ignored.
pub(super) fn merge(
    base: &mut toml::Table,
    overlay: toml::Table,
    prefix: &str,
) -> Result<(), ConfigError> {
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

pub(super) fn apply_env(
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
