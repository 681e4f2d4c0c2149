//! `halfveil account rotate-key` and `halfveil account close`: the holder changes its
//! account through its bank, which relays the signed op to the IM (`hv_submitLifecycle`).
//! A rotation's new key is saved in the wallet before it is sent, and becomes the key once
//! the chain shows it, so a crash in between loses nothing.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use halfveil_ledger::crypto::{self, SigningKey};
use halfveil_ledger::{codec, CloseAccount, Nonce, Op, RotateKey, Signature, TimeMs};
use halfveil_node::rpc::{AccountChanged, AccountInfo, ApiClient, LifecycleParams};
use rand_core::OsRng;
use serde::Serialize;

use crate::client::{block_on, Node};
use crate::commands::pay::{pay_with, Outcome, PayOrder};
use crate::failure::{CommandResult, Failure};
use crate::output::{emit, OutputFormat};
use crate::password;
use crate::wallet::{Wallet, WalletAccount};

/// How long a rotation or closing stays valid.
const LIFECYCLE_EXPIRY: Duration = Duration::from_secs(300);

/// `halfveil account rotate-key`: a new online transaction key for an account.
#[derive(Debug, Args)]
pub struct RotateKeyArgs {
    #[arg(long)]
    pub wallet: PathBuf,
    /// The account (the wallet's only one when not given).
    #[arg(long)]
    pub account: Option<String>,
    #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
}

/// `halfveil account close`: close an account, after paying its balance to `--to`.
#[derive(Debug, Args)]
pub struct CloseArgs {
    #[arg(long)]
    pub wallet: PathBuf,
    #[arg(long)]
    pub account: Option<String>,
    /// Pay the whole balance to this account first (a closed account must be empty).
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Changed {
    account: String,
    change: &'static str,
    height: u64,
    /// The new transaction public key, after a rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    tx_key: Option<String>,
    /// The payment of the balance before a closing.
    #[serde(skip_serializing_if = "Option::is_none")]
    paid_out: Option<Outcome>,
}

/// Sends a signed rotation or closing to the account's bank; waits until it is committed.
async fn submit(node: &Node, op: &Op) -> Result<AccountChanged, Failure> {
    let params = LifecycleParams {
        op: hex::encode(codec::encode(op)?),
    };
    node.client
        .submit_lifecycle(params)
        .await
        .map_err(|error| node.failure(error))
}

/// The account as its bank sees it on chain.
async fn on_chain(node: &Node, account: &str) -> Result<AccountInfo, Failure> {
    node.client
        .account(account.to_owned())
        .await
        .map_err(|error| node.failure(error))?
        .ok_or_else(|| Failure::verification(format!("{account} is not on the chain")))
}

/// The nonce and expiry of a new rotation or closing, the nonce saved first.
fn nonce_and_expiry(
    wallet: &mut Wallet,
    account: &WalletAccount,
) -> Result<(Nonce, TimeMs), Failure> {
    let nonce = wallet.reserve_nonce(&account.account)?;
    let expiry_ms = u64::try_from(LIFECYCLE_EXPIRY.as_millis()).unwrap_or(u64::MAX);
    Ok((
        nonce,
        TimeMs(halfveil_node::clock::now_ms().0.saturating_add(expiry_ms)),
    ))
}

impl RotateKeyArgs {
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let password = password::obtain(self.password_file.as_deref(), "the wallet")?;
        let mut wallet = Wallet::open(&self.wallet, password)?;
        let account = wallet.account(self.account.as_deref())?.clone();
        let changed = block_on(self.rotate(&mut wallet, &account))??;
        emit(output, &changed, || {
            format!(
                "account {}: new transaction key {} in force from block {}",
                changed.account,
                changed.tx_key.as_deref().unwrap_or(""),
                changed.height
            )
        });
        Ok(())
    }

    async fn rotate(
        &self,
        wallet: &mut Wallet,
        account: &WalletAccount,
    ) -> Result<Changed, Failure> {
        let keys = account.keys()?;
        let node = Node::connect(&account.rpc).await?;
        let genesis = node.genesis(Some(wallet.genesis_hash())).await?;
        let on_chain = on_chain(&node, &account.account).await?;
        // A rotation sent before and committed: the pending key is the chain's already.
        if let Some(pending) = account.pending_tx_key()? {
            if on_chain.tx_key == crypto::public_key(&pending).to_hex() {
                wallet.finish_rotation(&account.account)?;
                return Err(Failure::usage(
                    "a rotation sent before was committed; the wallet now uses its key. Run again to rotate once more",
                ));
            }
        }
        let new_key = SigningKey::generate(&mut OsRng);
        wallet.begin_rotation(&account.account, &new_key)?;
        let (nonce, expires_at) = nonce_and_expiry(wallet, account)?;
        let mut rotate = RotateKey {
            account: keys.account,
            new_key: crypto::public_key(&new_key),
            nonce,
            expires_at,
            old_signature: Signature([0; 64]),
            new_signature: Signature([0; 64]),
        };
        let message = rotate.message(&genesis.params.chain_id)?;
        rotate.old_signature = crypto::sign(&keys.tx_key, &message);
        rotate.new_signature = crypto::sign(&new_key, &message);
        let changed = submit(&node, &Op::RotateKey(rotate)).await?;
        wallet.finish_rotation(&account.account)?;
        Ok(Changed {
            account: changed.account,
            change: "rotate-key",
            height: changed.height,
            tx_key: Some(crypto::public_key(&new_key).to_hex()),
            paid_out: None,
        })
    }
}

impl CloseArgs {
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let password = password::obtain(self.password_file.as_deref(), "the wallet")?;
        let mut wallet = Wallet::open(&self.wallet, password)?;
        let account = wallet.account(self.account.as_deref())?.clone();
        let changed = block_on(self.close(&mut wallet, &account))??;
        emit(output, &changed, || {
            format!(
                "account {} closed at block {}: it neither pays nor receives from now on",
                changed.account, changed.height
            )
        });
        Ok(())
    }

    /// Pays the balance to `--to` if asked; refuses to close a non-empty account.
    async fn empty(
        &self,
        wallet: &mut Wallet,
        account: &WalletAccount,
        node: &Node,
    ) -> Result<Option<Outcome>, Failure> {
        let on_chain = on_chain(node, &account.account).await?;
        if on_chain.balance == 0 {
            return Ok(None);
        }
        let Some(to) = &self.to else {
            return Err(Failure::usage(format!(
                "the account holds {}: give --to ACCOUNT to pay it out before closing",
                on_chain.balance
            )));
        };
        let order = PayOrder {
            from: Some(account.account.clone()),
            to: to.clone(),
            amount: on_chain.balance,
            memo: "closing".into(),
            expires_in: LIFECYCLE_EXPIRY,
            wait: Duration::from_secs(60),
        };
        match pay_with(wallet, &order).await? {
            Outcome::Rejected { detail, code, .. } => Err(Failure::refused(format!(
                "paying out the balance was refused ({code}: {detail}); the account stays open"
            ))),
            paid => Ok(Some(paid)),
        }
    }

    async fn close(
        &self,
        wallet: &mut Wallet,
        account: &WalletAccount,
    ) -> Result<Changed, Failure> {
        let node = Node::connect(&account.rpc).await?;
        let genesis = node.genesis(Some(wallet.genesis_hash())).await?;
        let paid_out = self.empty(wallet, account, &node).await?;
        let keys = account.keys()?;
        let (nonce, expires_at) = nonce_and_expiry(wallet, account)?;
        let mut close = CloseAccount {
            account: keys.account,
            nonce,
            expires_at,
            signature: Signature([0; 64]),
        };
        close.signature = crypto::sign(&keys.tx_key, &close.message(&genesis.params.chain_id)?);
        let changed = submit(&node, &Op::CloseAccount(close)).await?;
        Ok(Changed {
            account: changed.account,
            change: "close",
            height: changed.height,
            tx_key: None,
            paid_out,
        })
    }
}
