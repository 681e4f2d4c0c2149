//! A node's `config.toml`: where it listens, who its peers are, where its data and keys are.
//!
//! Unknown keys are an error (a typo must not silently fall back to a default). Paths are
//! relative to the node's home folder. The role is not configured: it follows from which
//! keys the home holds and where the node's peer id appears in genesis.

mod layers;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use layers::{env_name, Effective, Source, ENV_PREFIX};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A config file larger than this is refused before parsing.
pub const CONFIG_BYTES_MAX: u64 = 1024 * 1024;
/// The file name inside a home folder.
pub const CONFIG_FILE: &str = "config.toml";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is {bytes} bytes, larger than the {CONFIG_BYTES_MAX}-byte limit")]
    TooLarge { path: String, bytes: u64 },
    #[error("{path} is not a valid halfveil config: {reason}")]
    Invalid {
        path: String,
        #[source]
        reason: InvalidConfig,
    },
}

/// What is wrong with a config's text: which key, and what it must be.
#[derive(Debug, Error)]
pub enum InvalidConfig {
    /// Not TOML, an unknown key, or a value of the wrong type.
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    #[error("log.format must be \"text\" or \"json\", not {0:?}")]
    LogFormat(String),
    #[error("p2p.connections_max must be 1..=1024")]
    P2pConnections,
    #[error("rpc.connections_max must be 1..=10000")]
    RpcConnections,
    #[error("rpc.connections_per_address_max must be 1..=rpc.connections_max")]
    RpcConnectionsPerAddress,
    #[error("moniker must be 1 to 64 characters")]
    Moniker,
    #[error("storage.index_epoch_transfers and index_epoch_blocks must be 1..=16777216")]
    IndexEpoch,
    #[error("storage.raft_snapshot_entries and raft_log_kept_entries must be 1..=1048576")]
    RaftLog,
    #[error("runtime.worker_threads must be 0 (one per core) to 256")]
    WorkerThreads,
    /// A `HALFVEIL_<TABLE>__<KEY>` variable whose table does not exist.
    #[error("{0} names no section of the config (p2p, rpc, metrics, storage, keys, log, runtime)")]
    Variable(String),
    /// The file, the variables and the flags together: an unknown key or a wrong type.
    #[error("{0}")]
    Layered(String),
}

/// The whole file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A human name for logs (`im`, `bank-1`).
    pub moniker: String,
    pub p2p: P2pConfig,
    pub rpc: RpcConfig,
    pub metrics: MetricsConfig,
    pub storage: StorageConfig,
    pub keys: KeysConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub runtime: RuntimeConfig,
}

/// The node's async runtime. Heavy work (signature batches, block building, the synced
/// write) runs on threads of its own; the workers carry networking, RPC and the service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Async worker threads; 0 (the default) means one per core. Nodes that share a
    /// machine (a testnet) do better with fewer: fewer threads to wake per message.
    #[serde(default)]
    pub worker_threads: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P2pConfig {
    /// libp2p listen address, e.g. `/ip4/127.0.0.1/tcp/26656`.
    pub listen: String,
    /// Addresses of the other nodes, each ending in `/p2p/<peer id>`; peer ids must be in
    /// genesis.
    pub peers: Vec<String>,
    /// Most connections held at once (in and out).
    pub connections_max: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcConfig {
    /// Public JSON-RPC (HTTP and WebSocket on one port).
    pub listen: SocketAddr,
    /// Operator JSON-RPC; also needs the token in `admin_token_file`.
    pub admin_listen: SocketAddr,
    pub admin_token_file: PathBuf,
    pub connections_max: u32,
    /// Most public RPC connections from one IP address (default 64). Behind a reverse
    /// proxy every client has the proxy's address: raise it there.
    #[serde(default = "default_connections_per_address_max")]
    pub connections_per_address_max: u32,
}

fn default_connections_per_address_max() -> u32 {
    64
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Prometheus `/metrics`, `/livez`, `/readyz`.
    pub listen: SocketAddr,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    /// Transfers after which the transfer index closes an epoch (default 262,144). Smaller
    /// epochs seal more often: `halfveil chaos` uses them so that crashes land mid-seal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_epoch_transfers: Option<u64>,
    /// Blocks after which the transfer index closes an epoch (default 16,384).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_epoch_blocks: Option<u64>,
    /// An IM replica's raft log: entries applied after which it takes a snapshot and purges
    /// the log behind it (default 1,024). `halfveil chaos` uses fewer, so that restarted
    /// replicas install snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft_snapshot_entries: Option<u64>,
    /// Entries an IM replica keeps behind its last snapshot, for followers a little behind
    /// (default 1,024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raft_log_kept_entries: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    pub genesis: PathBuf,
    pub node_key: PathBuf,
    /// The IM's block-signing key, or a bank's attestation key.
    pub signing_key: PathBuf,
    /// A file holding the key files' password, for unattended start. Without it the
    /// password comes from `HALFVEIL_PASSWORD` or a prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A `RUST_LOG`-style filter; the `RUST_LOG` variable wins.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".into(),
            filter: "info".into(),
        }
    }
}

/// The text of the config file at `path`, refused over [`CONFIG_BYTES_MAX`].
fn read_config_text(path: &Path) -> Result<String, ConfigError> {
    let display = path.display().to_string();
    let read_error = |source| ConfigError::Read {
        path: display.clone(),
        source,
    };
    let bytes = std::fs::metadata(path).map_err(read_error)?.len();
    if bytes > CONFIG_BYTES_MAX {
        return Err(ConfigError::TooLarge {
            path: display,
            bytes,
        });
    }
    std::fs::read_to_string(path).map_err(read_error)
}

impl Config {
    /// Reads and checks `home/config.toml` alone (what tools that edit or read a home's
    /// file use; a node runs with [`Config::effective`]).
    pub fn load(home: &Path) -> Result<Config, ConfigError> {
        let path = home.join(CONFIG_FILE);
        let text = read_config_text(&path)?;
        Config::parse(&text).map_err(|reason| ConfigError::Invalid {
            path: path.display().to_string(),
            reason,
        })
    }

    /// Parses config text; the error says which key is wrong.
    pub fn parse(text: &str) -> Result<Config, InvalidConfig> {
        let config: Config = toml::from_str(text)?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), InvalidConfig> {
        if self.log.format != "text" && self.log.format != "json" {
            return Err(InvalidConfig::LogFormat(self.log.format.clone()));
        }
        if !(1..=1024).contains(&self.p2p.connections_max) {
            return Err(InvalidConfig::P2pConnections);
        }
        if !(1..=10_000).contains(&self.rpc.connections_max) {
            return Err(InvalidConfig::RpcConnections);
        }
        if !(1..=self.rpc.connections_max).contains(&self.rpc.connections_per_address_max) {
            return Err(InvalidConfig::RpcConnectionsPerAddress);
        }
        if self.moniker.is_empty() || self.moniker.len() > 64 {
            return Err(InvalidConfig::Moniker);
        }
        let epochs = [
            self.storage.index_epoch_transfers,
            self.storage.index_epoch_blocks,
        ];
        if epochs
            .iter()
            .flatten()
            .any(|bound| !(1..=1 << 24).contains(bound))
        {
            return Err(InvalidConfig::IndexEpoch);
        }
        let raft_log = [
            self.storage.raft_snapshot_entries,
            self.storage.raft_log_kept_entries,
        ];
        if raft_log
            .iter()
            .flatten()
            .any(|entries| !(1..=1 << 20).contains(entries))
        {
            return Err(InvalidConfig::RaftLog);
        }
        if self.runtime.worker_threads > 256 {
            return Err(InvalidConfig::WorkerThreads);
        }
        Ok(())
    }

    /// Writes this config to `home/config.toml` (private: it names key files).
    pub fn save(&self, home: &Path) -> Result<(), ConfigError> {
        let path = home.join(CONFIG_FILE);
        std::fs::write(&path, self.to_toml()).map_err(|source| ConfigError::Write {
            path: path.display().to_string(),
            source,
        })
    }

    /// The canonical text of this config.
    pub fn to_toml(&self) -> String {
        // Plain structs with string keys always serialize.
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Resolves a path of this config against the home folder.
    pub fn resolve(home: &Path, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            home.join(path)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> Config {
        Config {
            moniker: "bank-1".into(),
            p2p: P2pConfig {
                listen: "/ip4/127.0.0.1/tcp/26656".into(),
                peers: vec![],
                connections_max: 64,
            },
            rpc: RpcConfig {
                listen: "127.0.0.1:26657".parse().unwrap(),
                admin_listen: "127.0.0.1:26658".parse().unwrap(),
                admin_token_file: "admin_token".into(),
                connections_max: 256,
                connections_per_address_max: 64,
            },
            metrics: MetricsConfig {
                listen: "127.0.0.1:26660".parse().unwrap(),
            },
            storage: StorageConfig {
                data_dir: "data".into(),
                index_epoch_transfers: None,
                index_epoch_blocks: None,
                raft_snapshot_entries: None,
                raft_log_kept_entries: None,
            },
            keys: KeysConfig {
                genesis: "genesis.json".into(),
                node_key: "node_key.json".into(),
                signing_key: "attestation_key.json".into(),
                password_file: Some("password".into()),
            },
            log: LogConfig::default(),
            runtime: RuntimeConfig::default(),
        }
    }

    #[test]
    fn round_trips_through_toml() {
        let config = sample();
        assert_eq!(Config::parse(&config.to_toml()).unwrap(), config);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let text = sample()
            .to_toml()
            .replace("[storage]", "[storage]\ncolour = \"blue\"");
        let error = Config::parse(&text).unwrap_err().to_string();
        assert!(error.contains("colour"), "{error}");
        let text = sample()
            .to_toml()
            .replace("format = \"text\"", "format = \"xml\"");
        assert!(matches!(
            Config::parse(&text).unwrap_err(),
            InvalidConfig::LogFormat(_)
        ));
        let text = sample()
            .to_toml()
            .replace("127.0.0.1:26657", "not an address");
        assert!(Config::parse(&text).is_err());
        let text = sample()
            .to_toml()
            .replace("worker_threads = 0", "worker_threads = 100000");
        assert!(Config::parse(&text)
            .unwrap_err()
            .to_string()
            .contains("worker_threads"));
    }

    #[test]
    fn a_config_without_a_runtime_table_means_one_worker_per_core() {
        let text = sample().to_toml();
        let start = text.find("[runtime]").unwrap();
        let config = Config::parse(&text[..start]).unwrap();
        assert_eq!(config.runtime.worker_threads, 0);
    }

    fn home_with(config: &Config) -> tempfile::TempDir {
        let home = tempfile::tempdir().unwrap();
        config.save(home.path()).unwrap();
        home
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    /// Flags beat variables, variables beat the file, the file beats defaults; each value
    /// says where it came from.
    #[test]
    fn layers_override_in_order_and_name_their_source() {
        let mut file = sample();
        file.runtime.worker_threads = 3;
        let text = file.to_toml();
        let start = text.find("[runtime]").unwrap();
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join(CONFIG_FILE), &text[..start]).unwrap();
        let variables = pairs(&[
            ("HALFVEIL_RPC__LISTEN", "127.0.0.1:4000"),
            ("HALFVEIL_MONIKER", "from-env"),
            ("HALFVEIL_P2P__CONNECTIONS_MAX", "32"),
            ("HALFVEIL_PASSWORD", "not configuration"),
            ("HALFVEIL_DEMO_DIR", "/tmp/x"),
        ]);
        let flags = pairs(&[("moniker", "\"from-flag\"")]);
        let effective = Config::effective(home.path(), &variables, &flags).unwrap();
        let config = &effective.config;
        assert_eq!(config.moniker, "from-flag");
        assert_eq!(config.rpc.listen, "127.0.0.1:4000".parse().unwrap());
        assert_eq!(config.p2p.connections_max, 32);
        assert_eq!(config.rpc.admin_listen, sample().rpc.admin_listen);
        assert_eq!(config.runtime.worker_threads, 0);
        let source = |key: &str| effective.sources.get(key).cloned();
        assert_eq!(source("moniker"), Some(Source::Flag));
        assert_eq!(
            source("rpc.listen"),
            Some(Source::Env("HALFVEIL_RPC__LISTEN".into()))
        );
        assert_eq!(source("rpc.admin_listen"), Some(Source::File));
        assert_eq!(source("runtime.worker_threads"), Some(Source::Default));
        // Without overrides, the file as it is.
        let plain = Config::effective(home.path(), &[], &[]).unwrap();
        assert_eq!(plain.config.moniker, sample().moniker);
    }

    /// A variable of no section, an unknown key in any layer, or a value the checks refuse
    /// is an error naming it.
    #[test]
    fn unknown_and_bad_overrides_are_refused() {
        let home = home_with(&sample());
        let refused = |variables: &[(&str, &str)], flags: &[(&str, &str)]| {
            Config::effective(home.path(), &pairs(variables), &pairs(flags))
                .unwrap_err()
                .to_string()
        };
        let error = refused(&[("HALFVEIL_RCP__LISTEN", "127.0.0.1:1")], &[]);
        assert!(error.contains("HALFVEIL_RCP__LISTEN"), "{error}");
        let error = refused(&[("HALFVEIL_RPC__LISTN", "127.0.0.1:1")], &[]);
        assert!(error.contains("listn"), "{error}");
        let error = refused(&[("HALFVEIL_P2P__CONNECTIONS_MAX", "0")], &[]);
        assert!(error.contains("p2p.connections_max"), "{error}");
        let error = refused(&[], &[("log.format", "\"xml\"")]);
        assert!(error.contains("log.format"), "{error}");
        let error = refused(&[("HALFVEIL_RPC__LISTEN", "not an address")], &[]);
        assert!(
            error.contains("rpc") || error.contains("address"),
            "{error}"
        );
    }
}
