//! `halfveil genesis validate FILE` and `halfveil genesis hash FILE`; `draft`, `sign` and
//! `assemble` live in `assembly.rs`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use halfveil_genesis::Genesis;
use serde::Serialize;

use crate::failure::{CommandResult, Failure};
use crate::output::{emit, OutputFormat};

/// `halfveil genesis`: check a genesis file.
#[derive(Debug, Subcommand)]
pub enum GenesisCommand {
    /// Check every field and signature; exit 3 if the file is not a valid genesis.
    Validate(GenesisFileArgs),
    /// Print the genesis hash.
    Hash(GenesisFileArgs),
    /// Coordinator: write the unsigned genesis of parties on separate machines, from their
    /// `public.json` files and the finished disclosure key ceremony.
    Draft(crate::commands::assembly::DraftArgs),
    /// Each party: sign a draft with its own key, at home, after reading it.
    Sign(crate::commands::assembly::SignArgs),
    /// Coordinator: put every party's signature in its place; writes the genesis.
    Assemble(crate::commands::assembly::AssembleArgs),
}

impl GenesisCommand {
    /// Runs the subcommand.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        match self {
            GenesisCommand::Validate(args) => validate(&args.file, output),
            GenesisCommand::Hash(args) => hash(&args.file, output),
            GenesisCommand::Draft(args) => args.execute(output),
            GenesisCommand::Sign(args) => args.execute(output),
            GenesisCommand::Assemble(args) => args.execute(output),
        }
    }
}

/// `halfveil genesis validate|hash FILE`: the genesis file.
#[derive(Debug, Args)]
pub struct GenesisFileArgs {
    pub file: PathBuf,
}

#[derive(Serialize)]
struct Validated {
    valid: bool,
    file: String,
    chain_id: String,
    hash: String,
    /// The identity manager's replicas: 1 for a single IM, else 3 or 5.
    im_replicas: usize,
    banks: Vec<String>,
    auditors: usize,
    auditor_threshold: u16,
}

/// Loads a genesis; a file that does not verify is exit code 3.
fn load(file: &Path) -> Result<halfveil_genesis::file::ValidGenesis, Failure> {
    Genesis::load(file).map_err(|error| match error {
        halfveil_genesis::GenesisError::Io { .. } => Failure::error(error.to_string()),
        _ => Failure::verification(format!(
            "{} is not a valid genesis: {error}",
            file.display()
        )),
    })
}

/// Prints what a valid genesis holds.
fn validate(file: &Path, output: OutputFormat) -> CommandResult {
    let genesis = load(file)?;
    let body = &genesis.genesis.body;
    let report = Validated {
        valid: true,
        file: file.display().to_string(),
        chain_id: body.chain_id.clone(),
        hash: genesis.hash.to_hex(),
        im_replicas: genesis.im_peer_ids.len(),
        banks: body.banks.iter().map(|bank| bank.name.clone()).collect(),
        auditors: body.auditors.members.len(),
        auditor_threshold: body.auditors.threshold,
    };
    emit(output, &report, || {
        format!(
            "{} is a valid genesis\n  chain id   {}\n  hash       {}\n  IM         {} replica(s)\n  banks      {}\n  auditors   {} (an order needs {} of their signatures)",
            report.file,
            report.chain_id,
            report.hash,
            report.im_replicas,
            report.banks.join(", "),
            report.auditors,
            report.auditor_threshold
        )
    });
    Ok(())
}

/// Prints the genesis hash.
fn hash(file: &Path, output: OutputFormat) -> CommandResult {
    let genesis = load(file)?;
    #[derive(Serialize)]
    struct HashOutput {
        hash: String,
    }
    let report = HashOutput {
        hash: genesis.hash.to_hex(),
    };
    emit(output, &report, || report.hash.clone());
    Ok(())
}
