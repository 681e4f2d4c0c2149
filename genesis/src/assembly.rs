//! A genesis made by several parties on their own machines. Each party makes its keys at
//! home and hands over only its public part ([`PublicEntry`], `halfveil init`'s
//! `public.json`); a coordinator drafts the body from those parts and the disclosure key
//! ceremony's result ([`draft`]); every key the draft names signs the draft's hash after
//! reading it ([`sign_draft`]); the coordinator puts the signatures in their places
//! ([`assemble`]). No secret ever leaves the machine it was made on, and the genesis is
//! valid only when every named key has signed exactly this body.

use std::collections::HashMap;

use halfveil_ledger::crypto::{self, SigningKey};
use halfveil_ledger::{Hash32, PublicKey, Signature};
use serde::{Deserialize, Serialize};

use crate::file::{
    AuditorEntry, Auditors, BankEntry, DisclosureKeyEntry, Genesis, GenesisBody, GenesisError,
    GenesisSignatures, IdentityManagerEntry, ImReplicaEntry, LimitsEntry, ValidGenesis,
    GENESIS_VERSION,
};

/// What a party's keys are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// An identity manager replica: a node key and a validator key.
    IdentityManager,
    /// A bank: a node key and an attestation key.
    Bank,
    /// An auditor: a signing key, no node.
    Auditor,
}

impl Role {
    pub fn describe(self) -> &'static str {
        match self {
            Role::IdentityManager => "identity-manager",
            Role::Bank => "bank",
            Role::Auditor => "auditor",
        }
    }
}

/// The public part of one party's keys: what it hands to the coordinator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicEntry {
    pub role: Role,
    /// The party's name in genesis (a bank's or an auditor's; an IM replica's is only a label).
    pub name: String,
    /// Its Ed25519 signing key (hex): the validator, attestation or auditor key.
    pub key: String,
    /// Its node's libp2p peer id (a node's roles only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<String>,
    /// Where the other nodes dial it, `/ip4/HOST/tcp/PORT/p2p/PEER_ID` (a node's roles only,
    /// when its listen address names a host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p2p_address: Option<String>,
}

/// What the coordinator puts in a draft.
#[derive(Clone, Debug)]
pub struct DraftSpec<'a> {
    pub chain_id: String,
    pub genesis_time_ms: u64,
    /// Every party, in genesis order within each role.
    pub parties: &'a [PublicEntry],
    /// How many auditors must sign a disclosure order.
    pub auditor_threshold: u16,
    /// The disclosure key ceremony's result.
    pub disclosure_key: DisclosureKeyEntry,
    pub limits: LimitsEntry,
}

fn field(field: impl Into<String>, reason: impl Into<String>) -> GenesisError {
    GenesisError::Field {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The peer id a node's entry must carry.
fn peer_id_of(entry: &PublicEntry) -> Result<String, GenesisError> {
    entry.peer_id.clone().ok_or_else(|| {
        field(
            entry.name.as_str(),
            format!("a {} entry needs its peer_id", entry.role.describe()),
        )
    })
}

fn of_role(parties: &[PublicEntry], role: Role) -> impl Iterator<Item = &PublicEntry> {
    parties.iter().filter(move |entry| entry.role == role)
}

/// The unsigned genesis body for `spec`, with every field checked.
pub fn draft(spec: &DraftSpec<'_>) -> Result<GenesisBody, GenesisError> {
    let replicas = of_role(spec.parties, Role::IdentityManager)
        .map(|entry| {
            Ok(ImReplicaEntry {
                peer_id: peer_id_of(entry)?,
                validator_key: entry.key.clone(),
            })
        })
        .collect::<Result<Vec<_>, GenesisError>>()?;
    let Some((first, others)) = replicas.split_first() else {
        return Err(field("identity_manager", "no identity-manager entry given"));
    };
    let banks = of_role(spec.parties, Role::Bank)
        .map(|entry| {
            Ok(BankEntry {
                name: entry.name.clone(),
                peer_id: peer_id_of(entry)?,
                attestation_key: entry.key.clone(),
            })
        })
        .collect::<Result<Vec<_>, GenesisError>>()?;
    let members = of_role(spec.parties, Role::Auditor)
        .map(|entry| AuditorEntry {
            name: entry.name.clone(),
            key: entry.key.clone(),
        })
        .collect();
    let body = GenesisBody {
        version: GENESIS_VERSION,
        chain_id: spec.chain_id.clone(),
        genesis_time_ms: spec.genesis_time_ms,
        identity_manager: IdentityManagerEntry {
            peer_id: first.peer_id.clone(),
            validator_key: first.validator_key.clone(),
        },
        identity_manager_replicas: others.to_vec(),
        banks,
        auditors: Auditors {
            threshold: spec.auditor_threshold,
            members,
        },
        disclosure_key: spec.disclosure_key.clone(),
        initial_accounts: Vec::new(),
        limits: spec.limits.clone(),
    };
    body.check()?;
    Ok(body)
}

/// One key's signature of a draft (`halfveil genesis sign`'s file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DraftSignature {
    pub chain_id: String,
    /// The hash of the draft that was signed (hex).
    pub genesis_hash: String,
    /// Who signed, as genesis names it (`identity manager`, `bank bank-1`, ...).
    pub signer: String,
    /// The signing key (hex).
    pub key: String,
    pub signature: String,
}

/// Every key a body names, with the name of its holder, in signing order: the IM replicas,
/// the banks, the auditors.
pub fn signers(body: &GenesisBody) -> Vec<(String, String)> {
    let im = std::iter::once(&body.identity_manager.validator_key)
        .chain(
            body.identity_manager_replicas
                .iter()
                .map(|r| &r.validator_key),
        )
        .enumerate()
        .map(|(index, key)| {
            let name = match index {
                0 => "identity manager".to_owned(),
                _ => format!("identity manager replica {}", index.saturating_add(1)),
            };
            (name, key.clone())
        });
    let banks = body
        .banks
        .iter()
        .map(|bank| (format!("bank {}", bank.name), bank.attestation_key.clone()));
    let auditors = body
        .auditors
        .members
        .iter()
        .map(|auditor| (format!("auditor {}", auditor.name), auditor.key.clone()));
    im.chain(banks).chain(auditors).collect()
}

/// Signs `body` with `key` after checking every field, if the body names `key`.
pub fn sign_draft(body: &GenesisBody, key: &SigningKey) -> Result<DraftSignature, GenesisError> {
    let checked = body.check()?;
    let public = crypto::public_key(key).to_hex();
    let Some((signer, _)) = signers(body)
        .into_iter()
        .find(|(_, named)| *named == public)
    else {
        return Err(field(
            "signers",
            format!("the draft does not name the key {public}: this key has nothing to sign"),
        ));
    };
    Ok(DraftSignature {
        chain_id: body.chain_id.clone(),
        genesis_hash: checked.hash.to_hex(),
        signer,
        signature: crypto::sign(key, &checked.hash).to_hex(),
        key: public,
    })
}

/// Checks one signature file against the draft's hash; returns its key and signature.
fn check_signature(hash: &Hash32, file: &DraftSignature) -> Result<(String, String), GenesisError> {
    if file.genesis_hash != hash.to_hex() {
        return Err(field(
            "signatures",
            format!(
                "{} signed another draft (hash {}, this one is {}): send them this draft",
                file.signer,
                file.genesis_hash,
                hash.to_hex()
            ),
        ));
    }
    let bad = || GenesisError::BadSignature {
        signer: file.signer.clone(),
    };
    let key = PublicKey::from_hex(&file.key).map_err(|_| bad())?;
    let signature = Signature::from_hex(&file.signature).map_err(|_| bad())?;
    crypto::verify(&key, hash, &signature).map_err(|_| bad())?;
    Ok((file.key.clone(), file.signature.clone()))
}

/// The signed genesis: `body` with every named key's signature from `files` in its place.
/// Fails naming whoever has not signed, or a signature of another draft or that does not
/// verify.
pub fn assemble(body: GenesisBody, files: &[DraftSignature]) -> Result<ValidGenesis, GenesisError> {
    let hash = body.check()?.hash;
    let mut by_key = HashMap::new();
    for file in files {
        let (key, signature) = check_signature(&hash, file)?;
        by_key.insert(key, signature);
    }
    let mut placed = Vec::new();
    let mut missing = Vec::new();
    for (signer, key) in signers(&body) {
        match by_key.get(&key) {
            Some(signature) => placed.push(signature.clone()),
            None => missing.push(signer),
        }
    }
    if !missing.is_empty() {
        return Err(field(
            "signatures",
            format!("not signed yet by {}", missing.join(", ")),
        ));
    }
    let replicas = body.identity_manager_replicas.len();
    let banks = body.banks.len();
    let mut placed = placed.into_iter();
    let signatures = GenesisSignatures {
        identity_manager: placed.next().unwrap_or_default(),
        identity_manager_replicas: placed.by_ref().take(replicas).collect(),
        banks: placed.by_ref().take(banks).collect(),
        auditors: placed.collect(),
    };
    Genesis { body, signatures }.validate()
}

#[cfg(test)]
mod tests;
