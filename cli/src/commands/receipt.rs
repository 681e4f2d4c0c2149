//! `halfveil receipt verify`: anyone with the genesis checks a receipt, no node needed.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use halfveil_ledger::{codec, Receipt};
use serde::Serialize;

use crate::commands::pay::RECEIPT_BYTES_MAX;
use crate::failure::{CommandResult, Failure};
use crate::output::{emit, OutputFormat};

/// `halfveil receipt`: receipts checked offline.
#[derive(Debug, Subcommand)]
pub enum ReceiptCommand {
    /// Check a receipt against the identity manager's key in a genesis file; exit 3 if it
    /// does not verify.
    Verify(VerifyArgs),
}

impl ReceiptCommand {
    /// Runs the subcommand.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        match self {
            ReceiptCommand::Verify(args) => args.execute(output),
        }
    }
}

/// `halfveil receipt verify`: a receipt file against a genesis.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[arg(long)]
    pub genesis: PathBuf,
    /// A file holding the receipt's hex (as `pay --receipt-out` writes it).
    pub receipt: PathBuf,
}

/// The receipt file's size limit (hex, with a line ending).
const RECEIPT_FILE_BYTES_MAX: u64 = 2 * RECEIPT_BYTES_MAX as u64 + 2;

#[derive(Debug, Serialize)]
struct CheckedReceipt {
    valid: bool,
    transfer: String,
    payer: String,
    payee: String,
    amount: u64,
    height: u64,
    block_hash: String,
    genesis_hash: String,
}

impl VerifyArgs {
    /// Checks the receipt's signature, its chain and that it is of a transfer; prints what
    /// it proves. A receipt that does not verify is exit code 3.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let genesis_path = &self.genesis;
        let receipt_path = &self.receipt;
        let genesis = halfveil_genesis::Genesis::load(genesis_path).map_err(|error| {
            Failure::verification(format!("{}: {error}", genesis_path.display()))
        })?;
        let size = std::fs::metadata(receipt_path)
            .map_err(|error| Failure::error(format!("{}: {error}", receipt_path.display())))?
            .len();
        if size > RECEIPT_FILE_BYTES_MAX {
            return Err(Failure::verification(format!(
                "{} is too large to be a receipt",
                receipt_path.display()
            )));
        }
        let text = std::fs::read_to_string(receipt_path)?;
        let bytes = hex::decode(text.trim()).map_err(|_| {
            Failure::verification(format!(
                "{} does not hold a receipt's hex",
                receipt_path.display()
            ))
        })?;
        let receipt: Receipt = codec::decode(&bytes, RECEIPT_BYTES_MAX)
            .map_err(|error| Failure::verification(format!("the receipt is malformed: {error}")))?;
        receipt
            .verify(&genesis.params.validator_keys)
            .map_err(|error| {
                Failure::verification(format!("the receipt does not verify: {error}"))
            })?;
        let halfveil_ledger::Op::Transfer(transfer) = &receipt.op else {
            return Err(Failure::verification("the receipt is not of a transfer"));
        };
        if transfer.request.transfer.chain_id != genesis.params.chain_id {
            return Err(Failure::verification("the receipt is of another chain"));
        }
        let transfer = &transfer.request.transfer;
        let checked = CheckedReceipt {
            valid: true,
            transfer: receipt.transfer_id.to_hex(),
            payer: transfer.payer.to_string(),
            payee: transfer.payee.to_string(),
            amount: transfer.amount.0,
            height: receipt.header.header.height.0,
            block_hash: receipt.header.header.hash()?.to_hex(),
            genesis_hash: genesis.hash.to_hex(),
        };
        emit(output, &checked, || {
            format!(
            "valid receipt: transfer {}\n  {} from {}\n  to {}\n  committed in block {} ({}), signed by the identity manager of genesis {}",
            checked.transfer,
            checked.amount,
            checked.payer,
            checked.payee,
            checked.height,
            checked.block_hash,
            checked.genesis_hash
        )
        });
        Ok(())
    }
}
