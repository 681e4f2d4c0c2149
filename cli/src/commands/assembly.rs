//! `halfveil genesis draft|sign|assemble`: a genesis made by parties on separate machines
//! (`halfveil_genesis::assembly`). The coordinator drafts the body from the parties'
//! `public.json` files and the disclosure key ceremony; each party reads the draft and signs
//! its hash with its own key at home; the coordinator assembles the signed genesis.

use std::path::{Path, PathBuf};

use clap::Args;
use halfveil_genesis::assembly::{self, DraftSignature, DraftSpec, PublicEntry, Role};
use halfveil_genesis::file::{GenesisBody, LimitsEntry, IM_HOLDER};
use halfveil_genesis::keystore::{self, FileKind};
use serde::Serialize;

use crate::commands::init::read_public;
use crate::commands::keys::{ceremony_result, write_json};
use crate::commands::testnet::genesis_time_ms;
use crate::failure::{CommandResult, Failure};
use crate::output::{emit, OutputFormat};
use crate::password;

/// `halfveil genesis draft`.
#[derive(Debug, Args)]
pub struct DraftArgs {
    #[arg(long)]
    pub chain_id: String,
    /// A party's `public.json` (from `halfveil init`), one per party: IM replicas, banks and
    /// auditors. Within each role, genesis keeps the order given here.
    #[arg(long = "party", required = true, num_args = 1..)]
    pub parties: Vec<PathBuf>,
    /// How many auditors must sign a disclosure order.
    #[arg(long)]
    pub auditor_threshold: u16,
    /// The finished disclosure key ceremony's folder (`halfveil keys dkg`), whose holders
    /// are these auditors and `identity-manager`.
    #[arg(long)]
    pub ceremony: PathBuf,
    /// The genesis time, milliseconds since the Unix epoch (default: now).
    #[arg(long)]
    pub genesis_time_ms: Option<u64>,
    /// Where to write the draft (never overwritten).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Serialize)]
struct Drafted {
    file: String,
    chain_id: String,
    genesis_hash: String,
    /// Everyone who must sign, as `genesis sign` will name them.
    signers: Vec<String>,
}

impl DraftArgs {
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let parties = self
            .parties
            .iter()
            .map(|path| read_public(path))
            .collect::<Result<Vec<_>, _>>()?;
        let (holders, disclosure_key) = ceremony_result(&self.ceremony)?;
        check_holders(&holders, &parties)?;
        let spec = DraftSpec {
            chain_id: self.chain_id.clone(),
            genesis_time_ms: match self.genesis_time_ms {
                Some(time) => time,
                None => genesis_time_ms()?,
            },
            parties: &parties,
            auditor_threshold: self.auditor_threshold,
            disclosure_key,
            limits: LimitsEntry::default(),
        };
        let body = assembly::draft(&spec).map_err(|error| Failure::usage(error.to_string()))?;
        write_json(&self.out, &body)?;
        let report = Drafted {
            file: self.out.display().to_string(),
            chain_id: body.chain_id.clone(),
            genesis_hash: body.hash()?.to_hex(),
            signers: signer_names(&body),
        };
        emit(output, &report, || {
            format!(
                "draft of {} written to {}\n  genesis hash {}\n  to be signed by: {}",
                report.chain_id,
                report.file,
                report.genesis_hash,
                report.signers.join(", ")
            )
        });
        Ok(())
    }
}

/// Every ceremony holder must be a party of the draft, with the key it ran the ceremony
/// with: an auditor by name, `identity-manager` as the first IM replica.
fn check_holders(holders: &[(String, String)], parties: &[PublicEntry]) -> Result<(), Failure> {
    for (name, signer) in holders {
        let party = parties.iter().find(|party| match party.role {
            Role::Auditor => party.name == *name,
            Role::IdentityManager => name == IM_HOLDER,
            Role::Bank => false,
        });
        match party {
            Some(party) if party.key == *signer => {}
            Some(party) => {
                return Err(Failure::verification(format!(
                    "ceremony holder {name} signed with key {signer}, but {} gives {}: run the \
                     ceremony with the keys of these parties",
                    party.name, party.key
                )))
            }
            None => {
                return Err(Failure::usage(format!(
                    "ceremony holder {name} is not one of the parties given with --party"
                )))
            }
        }
    }
    Ok(())
}

fn signer_names(body: &GenesisBody) -> Vec<String> {
    assembly::signers(body)
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// Reads a draft: a genesis body, bounded and strict.
fn read_draft(path: &Path) -> Result<GenesisBody, Failure> {
    let bytes = keystore::read_bounded(path)?;
    let body: GenesisBody = serde_json::from_slice(&bytes).map_err(|error| {
        Failure::verification(format!(
            "{} is not a genesis draft: {error}",
            path.display()
        ))
    })?;
    body.check().map_err(|error| {
        Failure::verification(format!("{} is not a valid draft: {error}", path.display()))
    })?;
    Ok(body)
}

/// `halfveil genesis sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The draft to sign: read it first (`cat`), the signature covers every field.
    #[arg(long)]
    pub draft: PathBuf,
    /// This party's signing key file: an IM replica's `validator_key.json`, a bank's
    /// `attestation_key.json` or an auditor's `auditor_key.json`.
    #[arg(long)]
    pub key: PathBuf,
    #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// Where to write the signature (never overwritten); hand it to the coordinator.
    #[arg(long)]
    pub out: PathBuf,
}

/// The kind of a signing key file, read from its header (no password needed).
fn signing_kind(path: &Path) -> Result<FileKind, Failure> {
    let text = keystore::read_bounded(path)?;
    let display = path.display().to_string();
    let kinds = [
        FileKind::ValidatorKey,
        FileKind::AttestationKey,
        FileKind::AuditorKey,
    ];
    let mut last = None;
    for kind in kinds {
        match keystore::parse(&display, &text, kind) {
            Ok(_) => return Ok(kind),
            Err(error) => last = Some(error),
        }
    }
    Err(match last {
        Some(keystore::KeystoreError::WrongKind { found, .. }) => Failure::usage(format!(
            "{display} is a {found}; sign with a validator, attestation or auditor key"
        )),
        Some(error) => error.into(),
        None => Failure::usage(format!("{display}: no key")),
    })
}

impl SignArgs {
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let body = read_draft(&self.draft)?;
        let kind = signing_kind(&self.key)?;
        let password = password::obtain(self.password_file.as_deref(), "the signing key")?;
        let key = keystore::read_signing_key(&self.key, kind, &password)?;
        drop(password);
        let signature = assembly::sign_draft(&body, &key)
            .map_err(|error| Failure::refused(error.to_string()))?;
        write_json(&self.out, &signature)?;
        emit(output, &signature, || {
            format!(
                "{} signed the draft of {} (genesis hash {}): {}",
                signature.signer,
                signature.chain_id,
                signature.genesis_hash,
                self.out.display()
            )
        });
        Ok(())
    }
}

/// `halfveil genesis assemble`.
#[derive(Debug, Args)]
pub struct AssembleArgs {
    #[arg(long)]
    pub draft: PathBuf,
    /// The signature files (`halfveil genesis sign`), one per key the draft names, any order.
    #[arg(long = "signature", required = true, num_args = 1..)]
    pub signatures: Vec<PathBuf>,
    /// Where to write the genesis (never overwritten).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Serialize)]
struct Assembled {
    file: String,
    chain_id: String,
    genesis_hash: String,
    signatures: usize,
}

impl AssembleArgs {
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let body = read_draft(&self.draft)?;
        let files = self
            .signatures
            .iter()
            .map(|path| {
                let bytes = keystore::read_bounded(path)?;
                serde_json::from_slice::<DraftSignature>(&bytes).map_err(|error| {
                    Failure::verification(format!(
                        "{} is not a genesis signature: {error}",
                        path.display()
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let genesis = assembly::assemble(body, &files)
            .map_err(|error| Failure::verification(error.to_string()))?;
        keystore::write_new_private(&self.out, genesis.genesis.to_canonical_json().as_bytes())?;
        let report = Assembled {
            file: self.out.display().to_string(),
            chain_id: genesis.genesis.body.chain_id.clone(),
            genesis_hash: genesis.hash.to_hex(),
            signatures: assembly::signers(&genesis.genesis.body).len(),
        };
        emit(output, &report, || {
            format!(
                "genesis of {} written to {}: hash {}, signed by all {} keys; check it with \
                 `halfveil genesis validate {}`",
                report.chain_id, report.file, report.genesis_hash, report.signatures, report.file
            )
        });
        Ok(())
    }
}
