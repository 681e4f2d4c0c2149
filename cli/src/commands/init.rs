//! `halfveil init`: one party's keys, made on its own machine, for a network whose genesis is
//! assembled from several machines (`halfveil genesis draft|sign|assemble`).
//!
//! ```text
//! HOME/public.json          every role: what to hand to the genesis coordinator
//! HOME/node_key.json        IM replica or bank: libp2p key
//! HOME/validator_key.json   IM replica (encrypted)
//! HOME/attestation_key.json bank (encrypted)
//! HOME/auditor_key.json     auditor (encrypted)
//! HOME/config.toml          IM replica or bank: listen addresses; peers come later
//! HOME/admin_token          IM replica or bank
//! ```
//! Nothing existing is overwritten; the genesis arrives once everyone has signed it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use halfveil_genesis::assembly::{PublicEntry, Role};
use halfveil_genesis::keystore::{self, FileKind, KdfParams};
use halfveil_ledger::crypto;
use rand_core::OsRng;

use crate::commands::keys::write_json;
use crate::commands::testnet::{create_private_dir, node_config, write_config_and_token, Listen};
use crate::failure::{CommandResult, Failure};
use crate::output::{emit, OutputFormat};
use crate::password;

/// The file of a home that holds its public part.
pub const PUBLIC_FILE: &str = "public.json";

/// What the keys are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InitRole {
    /// An identity manager replica (a single IM is one replica).
    IdentityManager,
    /// A bank (account manager).
    Bank,
    /// An auditor: a signing key only, no node.
    Auditor,
}

/// `halfveil init`: make this party's keys and home.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The home folder to create.
    #[arg(long)]
    pub home: PathBuf,
    #[arg(long, value_enum)]
    pub role: InitRole,
    /// The name genesis will give this party: a bank's or an auditor's name (a-z, 0-9, '-');
    /// also the node's moniker.
    #[arg(long)]
    pub name: String,
    /// libp2p listen address.
    #[arg(long, default_value = "/ip4/0.0.0.0/tcp/26656")]
    pub p2p_listen: String,
    /// Where the other nodes dial this one, `/ip4/HOST/tcp/PORT`, when `--p2p-listen` does not
    /// name a host (behind NAT, or listening on 0.0.0.0).
    #[arg(long)]
    pub external_address: Option<String>,
    /// Public JSON-RPC (payers, other operators' tools).
    #[arg(long, default_value = "127.0.0.1:26657")]
    pub rpc_listen: SocketAddr,
    /// Operator JSON-RPC; keep it on loopback.
    #[arg(long, default_value = "127.0.0.1:26658")]
    pub admin_listen: SocketAddr,
    /// Prometheus metrics.
    #[arg(long, default_value = "127.0.0.1:26660")]
    pub metrics_listen: SocketAddr,
    /// The password of the new key files (else `HALFVEIL_PASSWORD`, else asked twice). It is
    /// not written into the home.
    #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
}

impl InitArgs {
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        if let Err(halfveil_genesis::GenesisError::Field { reason, .. }) =
            halfveil_genesis::file::check_name("name", &self.name)
        {
            return Err(Failure::usage(format!("--name {}: {reason}", self.name)));
        }
        let announced = match self.role {
            InitRole::Auditor => None,
            _ => announced_address(&self.p2p_listen, self.external_address.as_deref())?,
        };
        if self.home.join(PUBLIC_FILE).exists() {
            return Err(Failure::error(format!(
                "{} already holds keys ({PUBLIC_FILE}); nothing was changed: give another --home",
                self.home.display()
            )));
        }
        let password = password::obtain_new(self.password_file.as_deref(), "the new keys")?;
        create_private_dir(&self.home)?;
        let entry = match self.role {
            InitRole::Auditor => self.write_auditor(&password)?,
            InitRole::IdentityManager | InitRole::Bank => self.write_node(&password, announced)?,
        };
        write_json(&self.home.join(PUBLIC_FILE), &entry)?;
        emit(output, &entry, || {
            let text = serde_json::to_string_pretty(&entry).unwrap_or_default();
            format!(
                "{} keys written to {}\n  hand {} to the genesis coordinator:\n{text}",
                entry.role.describe(),
                self.home.display(),
                self.home.join(PUBLIC_FILE).display()
            )
        });
        Ok(())
    }

    fn write_auditor(&self, password: &secrecy::SecretString) -> Result<PublicEntry, Failure> {
        let key = crypto::generate_signing_key(&mut OsRng);
        keystore::write_key_file(
            &self.home.join("auditor_key.json"),
            FileKind::AuditorKey,
            &key.to_bytes(),
            &key.verifying_key().to_bytes(),
            password,
            KdfParams::DEFAULT,
        )?;
        Ok(PublicEntry {
            role: Role::Auditor,
            name: self.name.clone(),
            key: crypto::public_key(&key).to_hex(),
            peer_id: None,
            p2p_address: None,
        })
    }

    /// A node's keys and config; `announced` is where the others dial it.
    fn write_node(
        &self,
        password: &secrecy::SecretString,
        announced: Option<String>,
    ) -> Result<PublicEntry, Failure> {
        let (role, kind, file) = match self.role {
            InitRole::IdentityManager => (
                Role::IdentityManager,
                FileKind::ValidatorKey,
                "validator_key.json",
            ),
            _ => (Role::Bank, FileKind::AttestationKey, "attestation_key.json"),
        };
        let node_key = keystore::write_new_node_key(&self.home.join("node_key.json"))?;
        let key = crypto::generate_signing_key(&mut OsRng);
        keystore::write_key_file(
            &self.home.join(file),
            kind,
            &key.to_bytes(),
            &key.verifying_key().to_bytes(),
            password,
            KdfParams::DEFAULT,
        )?;
        let listen = Listen {
            p2p: self.p2p_listen.clone(),
            rpc: self.rpc_listen,
            admin: self.admin_listen,
            metrics: self.metrics_listen,
        };
        let config = node_config(&self.name, &listen, Vec::new(), file, None, 0);
        write_config_and_token(&self.home, &config)?;
        let peer_id = node_key.public().to_peer_id().to_string();
        Ok(PublicEntry {
            role,
            name: self.name.clone(),
            key: crypto::public_key(&key).to_hex(),
            p2p_address: announced.map(|address| format!("{address}/p2p/{peer_id}")),
            peer_id: Some(peer_id),
        })
    }
}

/// The address other nodes dial: `--external-address`, else the listen address when it
/// names a host (not 0.0.0.0).
fn announced_address(listen: &str, external: Option<&str>) -> Result<Option<String>, Failure> {
    let address = external.unwrap_or(listen);
    let parts: Vec<&str> = address.trim_start_matches('/').split('/').collect();
    let [family, host, "tcp", port] = parts.as_slice() else {
        return Err(Failure::usage(format!(
            "{address}: give a libp2p address /ip4/HOST/tcp/PORT"
        )));
    };
    let known_host = match *family {
        "ip4" => host
            .parse::<std::net::Ipv4Addr>()
            .map(|ip| !ip.is_unspecified())
            .map_err(|_| ()),
        "ip6" => host
            .parse::<std::net::Ipv6Addr>()
            .map(|ip| !ip.is_unspecified())
            .map_err(|_| ()),
        "dns" | "dns4" | "dns6" => Ok(!host.is_empty()),
        _ => Err(()),
    };
    let known_host =
        known_host.map_err(|()| Failure::usage(format!("{address}: no host in this address")))?;
    port.parse::<u16>()
        .map_err(|_| Failure::usage(format!("{address}: {port} is not a port")))?;
    Ok(known_host.then(|| address.to_owned()))
}

/// Reads a party's `public.json` (bounded, strict).
pub fn read_public(path: &Path) -> Result<PublicEntry, Failure> {
    let bytes = keystore::read_bounded(path)?;
    serde_json::from_slice(&bytes).map_err(|error| {
        Failure::verification(format!(
            "{} is not a party's public.json: {error}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::announced_address;

    #[test]
    fn the_announced_address_names_a_host() {
        let some = |text: &str| Some(text.to_owned());
        assert_eq!(
            announced_address("/ip4/192.0.2.1/tcp/26656", None).ok(),
            Some(some("/ip4/192.0.2.1/tcp/26656"))
        );
        assert_eq!(
            announced_address("/ip4/0.0.0.0/tcp/26656", None).ok(),
            Some(None)
        );
        assert_eq!(
            announced_address("/ip4/0.0.0.0/tcp/1", Some("/dns4/im.example/tcp/1")).ok(),
            Some(some("/dns4/im.example/tcp/1"))
        );
        for bad in [
            "/ip4/1.2.3/tcp/1",
            "/ip4/1.2.3.4/udp/1",
            "/ip4/1.2.3.4/tcp/x",
            "x",
        ] {
            assert!(announced_address(bad, None).is_err(), "{bad}");
        }
    }
}
