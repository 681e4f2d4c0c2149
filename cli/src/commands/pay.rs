//! `halfveil pay`: signs a transfer with the account's transaction key, seals the identity
//! credential to the identity manager's escrow key, wraps both in an envelope under the
//! business key, submits it to the payer's bank, waits for the result and checks it: a
//! receipt against the IM's validator key from genesis, a refusal against its signer's key.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use halfveil_genesis::file::ValidGenesis;
use halfveil_ledger::codec;
use halfveil_ledger::crypto::{self, Envelope};
use halfveil_ledger::threshold::DisclosureKey;
use halfveil_ledger::{
    AccountId, Amount, ChainParams, Hash32, Memo, Receipt, Rejecter, Rejection, TimeMs, Transfer,
    MEMO_BYTES_MAX, VERSION,
};
use halfveil_node::rpc::{ApiClient, TransferStatus};
use rand_core::OsRng;
use serde::Serialize;

use crate::client::{block_on, Node};
use crate::failure::{CommandResult, Failure};
use crate::output::{emit, OutputFormat};
use crate::password;
use crate::wallet::{AccountKeys, Wallet};

/// The largest receipt accepted from a node.
pub(crate) const RECEIPT_BYTES_MAX: usize = 1 << 20;
/// The largest signed refusal accepted from a node.
const REJECTION_BYTES_MAX: usize = 4096;

/// `halfveil pay`: one payment from a wallet's account, its result checked.
#[derive(Debug, Args)]
pub struct PayArgs {
    #[arg(long)]
    pub wallet: PathBuf,
    /// The paying account (needed when the wallet holds several).
    #[arg(long)]
    pub from: Option<String>,
    #[arg(long)]
    pub to: String,
    #[arg(long)]
    pub amount: u64,
    #[arg(long, default_value = "")]
    pub memo: String,
    /// Seconds the transfer stays valid.
    #[arg(long, default_value_t = 60)]
    pub expires_in: u64,
    /// Seconds to wait for the result.
    #[arg(long, default_value_t = 60)]
    pub wait: u64,
    /// Also write the receipt (hex of its canonical encoding) to this file.
    #[arg(long)]
    pub receipt_out: Option<PathBuf>,
    #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
}

/// What to pay.
#[derive(Debug)]
pub struct PayOrder {
    pub from: Option<String>,
    pub to: String,
    pub amount: u64,
    pub memo: String,
    /// How long the transfer stays valid.
    pub expires_in: Duration,
    /// How long to wait for the result.
    pub wait: Duration,
}

/// The checked outcome of a payment.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Outcome {
    Committed {
        transfer: String,
        payer: String,
        payee: String,
        amount: u64,
        height: u64,
        index: u32,
        block_hash: String,
        /// The receipt's canonical encoding, hex: anyone with the genesis can check it.
        receipt: String,
        receipt_verified: bool,
        /// Whose key signed the block: `identity manager`, or `IM replica N` (genesis order).
        signed_by: String,
    },
    Rejected {
        transfer: String,
        by: String,
        code: String,
        detail: String,
        signature_verified: bool,
    },
}

/// Checks a final status and turns it into an outcome.
fn check_status(
    genesis: &ValidGenesis,
    id: &Hash32,
    transfer: &Transfer,
    status: TransferStatus,
) -> Result<Outcome, Failure> {
    match status {
        TransferStatus::Committed {
            height,
            index,
            block_hash,
            receipt,
            ..
        } => {
            let signed_by = check_receipt(genesis, id, height, &receipt)?;
            Ok(Outcome::Committed {
                transfer: id.to_hex(),
                payer: transfer.payer.to_string(),
                payee: transfer.payee.to_string(),
                amount: transfer.amount.0,
                height,
                index,
                block_hash,
                receipt,
                receipt_verified: true,
                signed_by,
            })
        }
        TransferStatus::Rejected { rejection, .. } => check_refusal(genesis, id, &rejection),
        TransferStatus::Pending { .. } | TransferStatus::Unknown { .. } => Err(Failure::error(
            "the node answered with a status that is not final",
        )),
    }
}

/// Checks a receipt's hex: signed by an IM validator key of genesis, for transfer `id` at
/// `height`. Returns whose key signed it.
fn check_receipt(
    genesis: &ValidGenesis,
    id: &Hash32,
    height: u64,
    receipt: &str,
) -> Result<String, Failure> {
    let bytes =
        hex::decode(receipt).map_err(|_| Failure::verification("the receipt is not hex"))?;
    let decoded: Receipt = codec::decode(&bytes, RECEIPT_BYTES_MAX)
        .map_err(|error| Failure::verification(format!("the receipt is malformed: {error}")))?;
    decoded
        .verify(&genesis.params.validator_keys)
        .map_err(|error| Failure::verification(format!("the receipt does not verify: {error}")))?;
    if decoded.transfer_id != *id || decoded.header.header.height.0 != height {
        return Err(Failure::verification(
            "the receipt is for another transfer or height",
        ));
    }
    let keys = &genesis.params.validator_keys;
    Ok(
        match keys.iter().position(|key| *key == decoded.header.signer) {
            Some(index) if keys.len() > 1 => format!("IM replica {}", index + 1),
            _ => "identity manager".to_owned(),
        },
    )
}

/// Checks a signed refusal's hex against its signer's key in genesis, and turns it into
/// an outcome.
fn check_refusal(genesis: &ValidGenesis, id: &Hash32, rejection: &str) -> Result<Outcome, Failure> {
    let params = &genesis.params;
    let bytes =
        hex::decode(rejection).map_err(|_| Failure::verification("the refusal is not hex"))?;
    let decoded: Rejection = codec::decode(&bytes, REJECTION_BYTES_MAX)
        .map_err(|error| Failure::verification(format!("the refusal is malformed: {error}")))?;
    if decoded.transfer != *id {
        return Err(Failure::verification("the refusal is for another transfer"));
    }
    let by = match decoded.by {
        Rejecter::IdentityManager => "identity-manager".to_owned(),
        Rejecter::Bank(bank) => match genesis.bank_name(bank) {
            Some(name) => name.to_owned(),
            None => return Err(Failure::verification("the refusal names no known signer")),
        },
    };
    decoded
        .verify_by(&params.chain_id, &params.validator_keys, &params.bank_keys)
        .map_err(|_| Failure::verification("the refusal's signature does not verify"))?;
    Ok(Outcome::Rejected {
        transfer: id.to_hex(),
        by,
        code: decoded.code.as_str().to_owned(),
        detail: decoded.detail,
        signature_verified: true,
    })
}

impl PayOrder {
    /// Checks the order's flags; returns the payee.
    fn payee(&self) -> Result<AccountId, Failure> {
        let payee: AccountId = self
            .to
            .parse()
            .map_err(|error| Failure::usage(format!("--to: {error}")))?;
        if self.amount == 0 {
            return Err(Failure::usage("--amount must be positive"));
        }
        if self.memo.len() > MEMO_BYTES_MAX {
            return Err(Failure::usage(format!(
                "--memo is longer than {MEMO_BYTES_MAX} bytes"
            )));
        }
        Ok(payee)
    }
}

/// Pays from an account of `wallet` and waits for the checked outcome.
pub async fn pay_with(wallet: &mut Wallet, order: &PayOrder) -> Result<Outcome, Failure> {
    let account = wallet.account(order.from.as_deref())?.clone();
    let keys = account.keys()?;
    let payee = order.payee()?;
    let node = Node::connect(&account.rpc).await?;
    let genesis = node.genesis(Some(wallet.genesis_hash())).await?;
    let params = &genesis.params;
    let expires_ms = u64::try_from(order.expires_in.as_millis())
        .unwrap_or(u64::MAX)
        .min(params.limits.transfer_expiry_ms_max);
    // Saved before signing: a crash may skip a nonce, never reuse one.
    let nonce = wallet.reserve_nonce(&account.account)?;
    let transfer = Transfer {
        version: VERSION,
        chain_id: params.chain_id.clone(),
        payer: keys.account,
        payee,
        amount: Amount(order.amount),
        nonce,
        expires_at: TimeMs(halfveil_node::clock::now_ms().0.saturating_add(expires_ms)),
        memo: Memo(order.memo.as_bytes().to_vec()),
    };
    let id = transfer.id()?;
    let key = node.disclosure_key(&genesis).await?;
    let envelope = seal(&keys, params, &key, &transfer)?;
    let status = submit_and_wait(&node, &id, envelope, order.wait).await?;
    check_status(&genesis, &id, &transfer, status)
}

/// Signs `transfer` with the account's keys (its identity credential sealed to the disclosure
/// key `key`) and seals it for its bank: the envelope's hex.
fn seal(
    keys: &AccountKeys,
    params: &ChainParams,
    key: &DisclosureKey,
    transfer: &Transfer,
) -> Result<String, Failure> {
    let request = crypto::sign_request(
        transfer.clone(),
        &keys.tx_key,
        &keys.identity_key,
        key,
        &mut OsRng,
    )?;
    let envelope = Envelope::seal(
        &keys.business_key,
        &params.chain_id,
        keys.bank,
        &request,
        &mut OsRng,
    )?;
    Ok(hex::encode(envelope.encode()?))
}

/// Submits `envelope` to `node` and waits up to `wait` for transfer `id`'s final status.
async fn submit_and_wait(
    node: &Node,
    id: &Hash32,
    envelope: String,
    wait: Duration,
) -> Result<TransferStatus, Failure> {
    // Subscribe before submitting, so the result cannot slip by.
    let mut subscription = node
        .client
        .subscribe_transfer(id.to_hex())
        .await
        .map_err(|error| node.failure(error))?;
    let submitted = node
        .client
        .submit(envelope)
        .await
        .map_err(|error| node.failure(error))?;
    if submitted.is_final() {
        return Ok(submitted);
    }
    match tokio::time::timeout(wait, subscription.next()).await {
        Ok(Some(Ok(status))) => Ok(status),
        Ok(Some(Err(error))) => Err(Failure::error(format!(
            "{}: bad transfer notification: {error}",
            node.url
        ))),
        Ok(None) | Err(_) => Err(Failure::error(format!(
            "transfer {} has no result after {} s; ask later with `halfveil transfer status`",
            id.to_hex(),
            wait.as_secs()
        ))),
    }
}

/// Prints an outcome for a person.
pub fn render(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Committed {
            transfer,
            payer,
            payee,
            amount,
            height,
            index,
            block_hash,
            signed_by,
            ..
        } => format!(
            "committed  transfer {transfer}\n  {amount} from {payer}\n  to {payee}\n  block {height} (op {index}, hash {block_hash})\n  receipt verified: signed by the {signed_by}, whose key genesis lists"
        ),
        Outcome::Rejected {
            transfer,
            by,
            code,
            detail,
            ..
        } => format!(
            "refused    transfer {transfer}\n  by {by}: {code} ({detail})\n  refusal signature verified"
        ),
    }
}

impl PayArgs {
    /// Pays, writes the receipt if asked, and prints the outcome; a refusal is exit code 5.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let order = PayOrder {
            from: self.from.clone(),
            to: self.to.clone(),
            amount: self.amount,
            memo: self.memo.clone(),
            expires_in: Duration::from_secs(self.expires_in),
            wait: Duration::from_secs(self.wait),
        };
        let password = password::obtain(self.password_file.as_deref(), "the wallet")?;
        let mut wallet = Wallet::open(&self.wallet, password)?;
        let outcome = block_on(pay_with(&mut wallet, &order))??;
        if let (Some(path), Outcome::Committed { receipt, .. }) = (&self.receipt_out, &outcome) {
            std::fs::write(path, format!("{receipt}\n")).map_err(|error| {
                Failure::error(format!(
                    "cannot write the receipt to {}: {error}",
                    path.display()
                ))
            })?;
        }
        emit(output, &outcome, || render(&outcome));
        match outcome {
            Outcome::Committed { .. } => Ok(()),
            Outcome::Rejected { code, .. } => {
                Err(Failure::refused(format!("the payment was refused: {code}")))
            }
        }
    }
}
