//! The configuration a node runs with, in layers: `config.toml`, then `HALFVEIL_*`
//! environment variables, then command-line flags, each overriding the one before (one
//! figment loader, no hand-written merging). A variable names a key as
//! `HALFVEIL_<SECTION>__<KEY>` (`HALFVEIL_RPC__LISTEN=0.0.0.0:26657`) or `HALFVEIL_MONIKER`;
//! other `HALFVEIL_` variables (`HALFVEIL_PASSWORD`, ...) are not configuration. Unknown
//! keys are errors in every layer, and the result is checked as the file alone is.

use std::collections::BTreeMap;
use std::path::Path;

use figment::providers::{Format, Toml};
use figment::Figment;
use serde::Serialize;

use super::{read_config_text, Config, ConfigError, InvalidConfig, CONFIG_FILE};

/// The prefix of configuration variables.
pub const ENV_PREFIX: &str = "HALFVEIL_";
/// The file's top-level tables: a variable `HALFVEIL_<TABLE>__<KEY>` sets `<table>.<key>`.
const TABLES: [&str; 7] = ["p2p", "rpc", "metrics", "storage", "keys", "log", "runtime"];

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The built-in default (the key is absent everywhere).
    Default,
    /// `config.toml`.
    File,
    /// This environment variable.
    Env(String),
    /// A command-line flag.
    Flag,
}

/// A config and where each of its values (by dotted key) came from.
#[derive(Debug)]
pub struct Effective {
    pub config: Config,
    pub sources: BTreeMap<String, Source>,
}

/// The variable that sets `key` (`rpc.listen` is `HALFVEIL_RPC__LISTEN`).
pub fn env_name(key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        key.replace('.', "__").to_ascii_uppercase()
    )
}

/// Whether `variable` (without the prefix, lower case) is configuration.
fn is_config_variable(name: &str) -> bool {
    match name.split_once("__") {
        Some((table, _)) => TABLES.contains(&table),
        None => name == "moniker",
    }
}

/// A `HALFVEIL_X__Y` variable whose table `X` does not exist: a typo, refused.
fn unknown_table(variables: &[(String, String)]) -> Option<String> {
    variables.iter().find_map(|(name, _)| {
        let rest = name.strip_prefix(ENV_PREFIX)?.to_ascii_lowercase();
        let (table, _) = rest.split_once("__")?;
        (!TABLES.contains(&table)).then(|| name.clone())
    })
}

impl Config {
    /// The config `halfveil start` runs with: `home/config.toml`, overridden by the
    /// configuration variables of `variables` (the process environment, usually), then by
    /// `flags` (dotted key, value as TOML would write it).
    pub fn effective(
        home: &Path,
        variables: &[(String, String)],
        flags: &[(String, String)],
    ) -> Result<Effective, ConfigError> {
        let path = home.join(CONFIG_FILE);
        let display = path.display().to_string();
        let invalid = |reason| ConfigError::Invalid {
            path: display.clone(),
            reason,
        };
        let text = read_config_text(&path)?;
        if let Some(name) = unknown_table(variables) {
            return Err(invalid(InvalidConfig::Variable(name)));
        }
        let config_variables: Vec<(String, String)> = variables
            .iter()
            .filter_map(|(name, value)| {
                let key = name.strip_prefix(ENV_PREFIX)?.to_ascii_lowercase();
                is_config_variable(&key).then(|| (key.replace("__", "."), value.clone()))
            })
            .collect();
        let mut figment = Figment::from(Toml::string(&text));
        for (key, value) in &config_variables {
            figment = figment.merge((key.as_str(), parse_value(value)));
        }
        for (key, value) in flags {
            figment = figment.merge((key.as_str(), parse_value(value)));
        }
        let config: Config = figment
            .extract()
            .map_err(|error| invalid(InvalidConfig::Layered(error.to_string())))?;
        config.check().map_err(invalid)?;
        let sources = sources(&config, &text, &config_variables, flags);
        Ok(Effective { config, sources })
    }
}

/// A value as a TOML value (`64`, `true`, `["a", "b"]`), else as the string itself.
fn parse_value(text: &str) -> figment::value::Value {
    let wrapped = format!("value = {text}");
    match toml::from_str::<BTreeMap<String, figment::value::Value>>(&wrapped) {
        Ok(mut table) => table
            .remove("value")
            .unwrap_or_else(|| figment::value::Value::from(text.to_owned())),
        Err(_) => figment::value::Value::from(text.to_owned()),
    }
}

/// Where each leaf key of `config` came from: a flag, a variable, the file, or a default.
fn sources(
    config: &Config,
    text: &str,
    variables: &[(String, String)],
    flags: &[(String, String)],
) -> BTreeMap<String, Source> {
    let file: toml::Table = toml::from_str(text).unwrap_or_default();
    let mut keys = Vec::new();
    if let Ok(toml::Value::Table(table)) = toml::Value::try_from(config) {
        leaf_keys(&table, "", &mut keys);
    }
    keys.into_iter()
        .map(|key| {
            let source = if flags.iter().any(|(flag, _)| *flag == key) {
                Source::Flag
            } else if variables.iter().any(|(name, _)| *name == key) {
                Source::Env(env_name(&key))
            } else if in_table(&file, &key) {
                Source::File
            } else {
                Source::Default
            };
            (key, source)
        })
        .collect()
}

fn leaf_keys(table: &toml::Table, prefix: &str, keys: &mut Vec<String>) {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            toml::Value::Table(inner) => leaf_keys(inner, &key, keys),
            _ => keys.push(key),
        }
    }
}

fn in_table(table: &toml::Table, key: &str) -> bool {
    let mut current = table;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        match (current.get(part), parts.peek()) {
            (Some(_), None) => return true,
            (Some(toml::Value::Table(inner)), Some(_)) => current = inner,
            _ => return false,
        }
    }
    false
}
