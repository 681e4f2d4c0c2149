//! `halfveil start --home DIR`: runs an identity manager or a bank, whichever the home's
//! keys and genesis make it, until SIGINT or SIGTERM.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use halfveil_node::config::{Config, LogConfig};
use tracing_subscriber::EnvFilter;

use crate::failure::{CommandResult, Failure};
use crate::password;

/// `halfveil start`: runs the node whose home is `--home`.
#[derive(Debug, Args)]
pub struct StartArgs {
    #[arg(long)]
    pub home: PathBuf,
    /// Overrides `moniker` (and `HALFVEIL_MONIKER`).
    #[arg(long)]
    pub moniker: Option<String>,
    /// Overrides `p2p.listen` (and `HALFVEIL_P2P__LISTEN`).
    #[arg(long)]
    pub p2p_listen: Option<String>,
    /// Overrides `rpc.listen` (and `HALFVEIL_RPC__LISTEN`).
    #[arg(long)]
    pub rpc_listen: Option<String>,
    /// Overrides `metrics.listen` (and `HALFVEIL_METRICS__LISTEN`).
    #[arg(long)]
    pub metrics_listen: Option<String>,
    /// Overrides `log.format`: text or json (and `HALFVEIL_LOG__FORMAT`).
    #[arg(long)]
    pub log_format: Option<String>,
}

/// Logs to stderr as the config says; `RUST_LOG` overrides the filter.
fn init_logging(log: &LogConfig) -> Result<(), Failure> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(filter) if !filter.is_empty() => EnvFilter::try_new(filter),
        _ => EnvFilter::try_new(&log.filter),
    }
    .map_err(|error| Failure::usage(format!("log filter: {error}")))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let installed = match log.format.as_str() {
        "json" => builder.json().try_init(),
        "text" => builder.try_init(),
        other => {
            return Err(Failure::usage(format!(
                "log.format is {other:?}; expected \"text\" or \"json\""
            )))
        }
    };
    installed.map_err(|error| Failure::error(format!("cannot start logging: {error}")))
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutdown requested");
}

impl StartArgs {
    /// Runs the node until SIGINT or SIGTERM.
    pub fn execute(&self) -> CommandResult {
        let home = &self.home;
        let config = Config::effective(home, &config_variables(), &self.flags())?.config;
        init_logging(&config.log)?;
        let password_file = halfveil_node::run::configured_password_file(home, &config);
        let password = password::obtain(password_file.as_deref(), "the node's keys")?;
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if config.runtime.worker_threads > 0 {
            builder.worker_threads(config.runtime.worker_threads);
        }
        let runtime = builder
            .enable_all()
            .thread_name("halfveil")
            .build()
            .map_err(|error| Failure::error(format!("cannot start the async runtime: {error}")))?;
        runtime.block_on(halfveil_node::run::run(
            home,
            config,
            password,
            shutdown_signal(),
        ))?;
        // Background tasks (network, RPC) end with the runtime.
        runtime.shutdown_timeout(std::time::Duration::from_secs(5));
        Ok(())
    }
}

impl StartArgs {
    /// The flags given, as dotted config keys and values.
    pub fn flags(&self) -> Vec<(String, String)> {
        let quoted = |value: &String| format!("{value:?}");
        [
            ("moniker", self.moniker.as_ref()),
            ("p2p.listen", self.p2p_listen.as_ref()),
            ("rpc.listen", self.rpc_listen.as_ref()),
            ("metrics.listen", self.metrics_listen.as_ref()),
            ("log.format", self.log_format.as_ref()),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.map(|value| (key.to_owned(), quoted(value))))
        .collect()
    }
}

/// The process's `HALFVEIL_*` variables (the loader keeps those that are configuration).
pub fn config_variables() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(name, _)| name.starts_with(halfveil_node::config::ENV_PREFIX))
        .collect()
}
