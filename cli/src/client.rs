//! The JSON-RPC client side of the CLI: connecting to a node, mapping its errors to exit
//! codes, fetching and checking its genesis, and finding a node's admin endpoint from its
//! home folder.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use halfveil_genesis::file::ValidGenesis;
use halfveil_genesis::Genesis;
use halfveil_ledger::codec;
use halfveil_ledger::disclosure_keys::{HeldKey, KeyAdoption, KEY_ADOPTION_BYTES_MAX};
use halfveil_ledger::threshold::{DisclosureKey, HOLDERS_MAX};
use halfveil_node::config::Config;
use halfveil_node::rpc::{codes, ApiClient};
use jsonrpsee::core::client::Error as ClientError;
use jsonrpsee::ws_client::{WsClient, WsClientBuilder};
use secrecy::SecretString;

use crate::failure::Failure;

/// How long one call may take before the node counts as unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest genesis text accepted from a node.
const GENESIS_BYTES_MAX: usize = 1 << 20;

/// Runs `future` on a fresh runtime: client commands are short-lived.
pub fn block_on<F: Future>(future: F) -> Result<F::Output, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| Failure::error(format!("cannot start the async runtime: {error}")))?;
    Ok(runtime.block_on(future))
}

/// The WebSocket address of an `http://` or `ws://` RPC URL (one port serves both).
pub fn websocket_url(url: &str) -> Result<String, Failure> {
    let url = url.trim();
    if let Some(rest) = url.strip_prefix("http://") {
        Ok(format!("ws://{rest}"))
    } else if let Some(rest) = url.strip_prefix("https://") {
        Ok(format!("wss://{rest}"))
    } else if url.starts_with("ws://") || url.starts_with("wss://") {
        Ok(url.to_owned())
    } else {
        Err(Failure::usage(format!(
            "{url:?} is not an RPC URL: expected http://HOST:PORT or ws://HOST:PORT"
        )))
    }
}

/// A connected client of the node at `url`.
#[derive(Debug)]
pub struct Node {
    pub url: String,
    pub client: WsClient,
}

impl Node {
    pub async fn connect(url: &str) -> Result<Node, Failure> {
        let websocket = websocket_url(url)?;
        let client = WsClientBuilder::default()
            .request_timeout(REQUEST_TIMEOUT)
            .connection_timeout(CONNECT_TIMEOUT)
            .max_request_size(8 << 20)
            .max_response_size(64 << 20)
            .build(&websocket)
            .await
            .map_err(|error| {
                Failure::unreachable(format!(
                    "cannot reach the node at {url}: {error}; check that the node runs and that \
                     this is its public RPC address (`[rpc] listen` in its config.toml)"
                ))
            })?;
        Ok(Node {
            url: url.to_owned(),
            client,
        })
    }

    /// Turns a call's error into a failure that says which node answered what.
    pub fn failure(&self, error: ClientError) -> Failure {
        rpc_failure(&self.url, error)
    }

    /// The node's genesis, validated, and checked against `expected_hash` when given.
    pub async fn genesis(&self, expected_hash: Option<&str>) -> Result<ValidGenesis, Failure> {
        let text = self
            .client
            .genesis()
            .await
            .map_err(|error| self.failure(error))?;
        if text.len() > GENESIS_BYTES_MAX {
            return Err(Failure::verification(format!(
                "the genesis from {} is larger than {GENESIS_BYTES_MAX} bytes",
                self.url
            )));
        }
        let genesis = Genesis::parse(text.as_bytes()).map_err(|error| {
            Failure::verification(format!("the genesis from {} is invalid: {error}", self.url))
        })?;
        if let Some(expected) = expected_hash {
            if genesis.hash.to_hex() != expected {
                return Err(Failure::verification(format!(
                    "the node at {} runs chain {} with genesis {}, not the wallet's genesis {expected}",
                    self.url,
                    genesis.params.chain_id,
                    genesis.hash.to_hex()
                )));
            }
        }
        Ok(genesis)
    }

    /// The disclosure keys on chain: genesis's, then every adopted one (each epoch's latest,
    /// oldest first), each adoption's holders' signatures checked here against `genesis`
    /// (a node cannot hand a payer a key of its own making). The last is the current key.
    pub async fn disclosure_keys(&self, genesis: &ValidGenesis) -> Result<Vec<HeldKey>, Failure> {
        let info = self
            .client
            .disclosure_key()
            .await
            .map_err(|error| self.failure(error))?;
        let invalid = |why: String| {
            Failure::verification(format!("the disclosure key from {}: {why}", self.url))
        };
        if info.adoptions.len() > HOLDERS_MAX * 1024 {
            return Err(invalid("too many adoptions".to_owned()));
        }
        let params = &genesis.params;
        let mut keys = vec![HeldKey {
            key: params.disclosure_key.clone(),
            parties: params.holder_parties.clone(),
        }];
        for text in &info.adoptions {
            if text.len() > 2 * KEY_ADOPTION_BYTES_MAX {
                return Err(invalid("too large".to_owned()));
            }
            let bytes = hex::decode(text).map_err(|_| invalid("not hex".to_owned()))?;
            let adoption: KeyAdoption = codec::decode(&bytes, KEY_ADOPTION_BYTES_MAX)
                .map_err(|error| invalid(error.to_string()))?;
            adoption
                .verify(params)
                .map_err(|error| invalid(error.to_string()))?;
            keys.push(adoption.held);
        }
        let current = &keys[keys.len() - 1].key;
        if (
            current.epoch,
            current.refresh,
            hex::encode(current.group_key.0),
        ) != (info.epoch, info.refresh, info.group_key)
        {
            return Err(invalid("its summary does not match the key".to_owned()));
        }
        Ok(keys)
    }

    /// The disclosure key payers seal to now ([`Node::disclosure_keys`]'s last).
    pub async fn disclosure_key(&self, genesis: &ValidGenesis) -> Result<DisclosureKey, Failure> {
        let mut keys = self.disclosure_keys(genesis).await?;
        keys.pop()
            .map(|held| held.key)
            .ok_or_else(|| Failure::error("no disclosure key"))
    }
}

/// A node a long-running command (bench, chaos) keeps talking to across the node's restarts:
/// a call that finds the connection broken connects again, until `patience` runs out.
#[derive(Debug)]
pub struct Reconnecting {
    pub url: String,
    patience: Duration,
    /// The connection now, and how many times it was made again.
    current: std::sync::Mutex<(u64, std::sync::Arc<Node>)>,
    /// One reconnection at a time; the others wait for it.
    renewing: tokio::sync::Mutex<()>,
}

impl Reconnecting {
    pub async fn connect(url: &str, patience: Duration) -> Result<Reconnecting, Failure> {
        let node = Node::connect(url).await?;
        Ok(Reconnecting {
            url: url.to_owned(),
            patience,
            current: std::sync::Mutex::new((0, std::sync::Arc::new(node))),
            renewing: tokio::sync::Mutex::new(()),
        })
    }

    /// The connection now, with its generation (for [`Reconnecting::renew`]).
    pub fn current(&self) -> (u64, std::sync::Arc<Node>) {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        (current.0, std::sync::Arc::clone(&current.1))
    }

    /// Connects again, unless another caller already replaced generation `seen`; tries
    /// every 200 ms until `patience` has passed.
    pub async fn renew(&self, seen: u64) -> Result<std::sync::Arc<Node>, Failure> {
        let _one = self.renewing.lock().await;
        let (generation, node) = self.current();
        if generation != seen {
            return Ok(node);
        }
        let deadline = tokio::time::Instant::now() + self.patience;
        loop {
            match Node::connect(&self.url).await {
                Ok(node) => {
                    let node = std::sync::Arc::new(node);
                    let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
                    *current = (seen + 1, std::sync::Arc::clone(&node));
                    return Ok(node);
                }
                Err(failure) if tokio::time::Instant::now() >= deadline => return Err(failure),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Runs `call` on the connection, connecting again when it broke.
    pub async fn call<T, F, Fut>(&self, call: F) -> Result<T, Failure>
    where
        F: Fn(std::sync::Arc<Node>) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let deadline = tokio::time::Instant::now() + self.patience;
        loop {
            let (generation, node) = self.current();
            match call(std::sync::Arc::clone(&node)).await {
                Ok(value) => return Ok(value),
                Err(error) if is_broken(&error) && tokio::time::Instant::now() < deadline => {
                    self.renew(generation).await?;
                }
                Err(error) => return Err(node.failure(error)),
            }
        }
    }
}

/// Whether `error` says the connection is gone (the node stopped or restarted), rather than
/// that the node answered.
pub fn is_broken(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::RestartNeeded(_) | ClientError::Transport(_)
    )
}

/// Maps a JSON-RPC client error to a failure and its exit code.
pub fn rpc_failure(url: &str, error: ClientError) -> Failure {
    match error {
        ClientError::Call(object) => {
            let message = format!("{url}: {}", object.message());
            match object.code() {
                codes::INVALID_INPUT => Failure::usage(message),
                codes::ENVELOPE | codes::REFUSED => Failure::refused(message),
                _ => Failure::error(message),
            }
        }
        ClientError::Transport(_) | ClientError::RestartNeeded(_) | ClientError::RequestTimeout => {
            Failure::unreachable(format!("the node at {url} did not answer: {error}"))
        }
        other => Failure::error(format!("{url}: {other}")),
    }
}

/// A node's admin endpoint and token, from its home folder.
#[derive(Debug)]
pub struct AdminAccess {
    pub url: String,
    pub token: SecretString,
}

impl AdminAccess {
    pub fn from_home(home: &Path) -> Result<AdminAccess, Failure> {
        let config = Config::load(home)?;
        let token_path = Config::resolve(home, &config.rpc.admin_token_file);
        let token = std::fs::read_to_string(&token_path).map_err(|error| {
            Failure::error(format!(
                "cannot read the admin token {}: {error}",
                token_path.display()
            ))
        })?;
        let token = token.trim();
        if token.is_empty() || token.len() > 256 {
            return Err(Failure::error(format!(
                "{} does not hold an admin token",
                token_path.display()
            )));
        }
        Ok(AdminAccess {
            url: format!("http://{}", config.rpc.admin_listen),
            token: SecretString::from(token.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_urls_map_to_websocket() {
        assert_eq!(
            websocket_url("http://127.0.0.1:1").unwrap(),
            "ws://127.0.0.1:1"
        );
        assert_eq!(
            websocket_url("ws://127.0.0.1:1").unwrap(),
            "ws://127.0.0.1:1"
        );
        assert_eq!(websocket_url("https://a:1").unwrap(), "wss://a:1");
        assert!(websocket_url("127.0.0.1:1").is_err());
    }
}
