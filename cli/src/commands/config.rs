//! `halfveil config show|validate --home DIR`: the configuration a node in `DIR` would run
//! with (`config.toml`, then `HALFVEIL_*` variables; `halfveil start`'s flags come last), and
//! where each value came from.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use halfveil_node::config::{Config, Source};
use serde::Serialize;

use crate::commands::node::config_variables;
use crate::failure::{CommandResult, Failure};
use crate::output::{emit, OutputFormat};

/// `halfveil config`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration of a home: every value and where it came from
    Show(ConfigArgs),
    /// Check a home's configuration with the environment's overrides; exit 3 if invalid
    Validate(ConfigArgs),
    /// Set `[p2p] peers` from the other nodes' `public.json` files (`halfveil init`)
    Peers(PeersArgs),
}

#[derive(Debug, Args)]
pub struct PeersArgs {
    #[arg(long)]
    pub home: PathBuf,
    /// The nodes' `public.json` files; this node's own and auditors' are skipped.
    #[arg(required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[arg(long)]
    pub home: PathBuf,
}

#[derive(Debug, Serialize)]
struct Entry {
    value: toml::Value,
    source: Source,
}

#[derive(Debug, Serialize)]
struct Shown {
    home: String,
    values: BTreeMap<String, Entry>,
}

/// Keys whose values are secrets, shown as `<redacted>` (none today: the config names key
/// and password files, never their contents).
fn secret(key: &str) -> bool {
    key.ends_with("token") || key.ends_with("password") || key.ends_with("secret")
}

impl ConfigCommand {
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        match self {
            ConfigCommand::Show(args) => show(args, output),
            ConfigCommand::Validate(args) => validate(args, output),
            ConfigCommand::Peers(args) => peers(args, output),
        }
    }
}

fn load(args: &ConfigArgs) -> Result<halfveil_node::config::Effective, Failure> {
    Config::effective(&args.home, &config_variables(), &[]).map_err(Failure::from)
}

fn show(args: &ConfigArgs, output: OutputFormat) -> CommandResult {
    let effective = load(args)?;
    let table = toml::Value::try_from(&effective.config)
        .map_err(|error| Failure::error(format!("cannot show the config: {error}")))?;
    let mut values = BTreeMap::new();
    for (key, source) in effective.sources {
        let value = if secret(&key) {
            toml::Value::String("<redacted>".into())
        } else {
            lookup(&table, &key)
                .cloned()
                .unwrap_or(toml::Value::String(String::new()))
        };
        values.insert(key, Entry { value, source });
    }
    let shown = Shown {
        home: args.home.display().to_string(),
        values,
    };
    emit(output, &shown, || render(&shown));
    Ok(())
}

fn lookup<'a>(table: &'a toml::Value, key: &str) -> Option<&'a toml::Value> {
    key.split('.')
        .try_fold(table, |value, part| value.get(part))
}

fn render(shown: &Shown) -> String {
    let width = shown.values.keys().map(String::len).max().unwrap_or(0);
    let mut text = format!("# effective configuration of {}\n", shown.home);
    for (key, entry) in &shown.values {
        let source = match &entry.source {
            Source::Default => "default".to_owned(),
            Source::File => "config.toml".to_owned(),
            Source::Env(name) => format!("environment {name}"),
            Source::Flag => "flag".to_owned(),
        };
        text.push_str(&format!("{key:<width$} = {}  # {source}\n", entry.value));
    }
    text.trim_end().to_owned()
}

#[derive(Debug, Serialize)]
struct Validated {
    valid: bool,
    home: String,
}

fn validate(args: &ConfigArgs, output: OutputFormat) -> CommandResult {
    load(args)?;
    let report = Validated {
        valid: true,
        home: args.home.display().to_string(),
    };
    emit(output, &report, || {
        format!("the configuration of {} is valid", report.home)
    });
    Ok(())
}

#[derive(Debug, Serialize)]
struct PeersSet {
    home: String,
    peers: Vec<String>,
}

/// Writes `[p2p] peers`: every other node's announced address.
fn peers(args: &PeersArgs, output: OutputFormat) -> CommandResult {
    let mut config = Config::load(&args.home)?;
    let own = halfveil_genesis::keystore::read_node_key(&args.home.join(&config.keys.node_key))?
        .public()
        .to_peer_id()
        .to_string();
    let mut peers = Vec::new();
    for path in &args.files {
        let entry = crate::commands::init::read_public(path)?;
        if entry.peer_id.is_none() || entry.peer_id.as_deref() == Some(own.as_str()) {
            continue;
        }
        let address = entry.p2p_address.ok_or_else(|| {
            Failure::usage(format!(
                "{} gives no address to dial ({}'s operator: `halfveil init \
                 --external-address`)",
                path.display(),
                entry.name
            ))
        })?;
        if !peers.contains(&address) {
            peers.push(address);
        }
    }
    config.p2p.peers = peers.clone();
    halfveil_genesis::keystore::replace_private(
        &args.home.join(halfveil_node::config::CONFIG_FILE),
        config.to_toml().as_bytes(),
    )?;
    let report = PeersSet {
        home: args.home.display().to_string(),
        peers,
    };
    emit(output, &report, || {
        format!(
            "{} dials {} peers:\n  {}",
            report.home,
            report.peers.len(),
            report.peers.join("\n  ")
        )
    });
    Ok(())
}
