//! `halfveil account open|show`.
//!
//! Opening an account creates the holder's two keys on this machine: the online
//! transaction key (its public key is the account) and the identity key. The name, national
//! id and identity public key are sealed to the identity manager's escrow key; the bank
//! relays that sealed record without being able to read it, and hands back the account's
//! business key, which the wallet keeps.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use halfveil_genesis::file::ValidGenesis;
use halfveil_ledger::crypto::{self, BusinessKey, IdentityRecord, SigningKey};
use halfveil_ledger::threshold::DisclosureKey;
use halfveil_ledger::{codec, open_account_message, AccountId, BankId, ChainParams, VERSION};
use halfveil_node::rpc::{AccountInfo, ApiClient, OpenAccountParams};
use rand_core::OsRng;
use secrecy::SecretString;
use serde::Serialize;

use crate::client::{block_on, Node};
use crate::failure::{CommandResult, Failure};
use crate::output::{emit, OutputFormat};
use crate::password;
use crate::wallet::{Wallet, WalletAccount};

/// `halfveil account`: open an account, or look at accounts.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Open an account at a bank; prints the new account id.
    Open(OpenArgs),
    /// Balances and status, from each account's bank or from a node.
    Show(ShowArgs),
    /// Give the account a new online transaction key; the old one stops working.
    RotateKey(crate::commands::lifecycle::RotateKeyArgs),
    /// Close the account (paying its balance out first with --to); it never pays or
    /// receives again.
    Close(crate::commands::lifecycle::CloseArgs),
}

impl AccountCommand {
    /// Runs the subcommand.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        match self {
            AccountCommand::Open(args) => args.execute(output),
            AccountCommand::Show(args) => args.execute(output),
            AccountCommand::RotateKey(args) => args.execute(output),
            AccountCommand::Close(args) => args.execute(output),
        }
    }
}

/// `halfveil account open`: a new account at a bank, its keys kept in a wallet.
#[derive(Debug, Args)]
pub struct OpenArgs {
    /// The bank's RPC URL.
    #[arg(long)]
    pub bank: String,
    /// The wallet that keeps the account's keys (created if missing).
    #[arg(long)]
    pub wallet: PathBuf,
    /// The holder's name: sealed to the identity manager, never seen by the bank.
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub national_id: String,
    #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
}

/// `halfveil account show`: the accounts of a wallet, or one account at a node.
#[derive(Debug, Args)]
pub struct ShowArgs {
    #[arg(long, conflicts_with_all = ["account", "rpc"], required_unless_present = "account")]
    pub wallet: Option<PathBuf>,
    #[arg(long, requires = "rpc")]
    pub account: Option<String>,
    #[arg(long)]
    pub rpc: Option<String>,
    #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
}

/// Who the account belongs to: known to the identity manager only.
#[derive(Debug)]
pub struct Holder {
    pub name: String,
    pub national_id: String,
}

/// Bounds on what a person types, so the sealed record always fits.
const HOLDER_FIELD_BYTES_MAX: usize = 200;

impl Holder {
    fn check(&self) -> Result<(), Failure> {
        for (field, value) in [("--name", &self.name), ("--national-id", &self.national_id)] {
            if value.trim().is_empty() {
                return Err(Failure::usage(format!("{field} must not be empty")));
            }
            if value.len() > HOLDER_FIELD_BYTES_MAX {
                return Err(Failure::usage(format!(
                    "{field} is longer than {HOLDER_FIELD_BYTES_MAX} bytes"
                )));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Serialize)]
pub struct OpenedReport {
    pub account: String,
    pub bank: String,
    pub bank_id: u16,
    pub height: u64,
    pub wallet: String,
}

/// The bank a node is, by its peer id in genesis.
fn bank_of(genesis: &ValidGenesis, peer_id: &str) -> Result<(BankId, String), Failure> {
    let index = genesis
        .bank_peer_ids
        .iter()
        .position(|peer| peer.to_string() == peer_id)
        .ok_or_else(|| {
            Failure::usage("this node is not a bank: open accounts at a bank's RPC URL")
        })?;
    let id = BankId(u16::try_from(index).map_err(|_| Failure::error("bank index out of range"))?);
    let name = genesis.bank_name(id).unwrap_or("bank").to_owned();
    Ok((id, name))
}

/// Opens the wallet at `path`, or creates it for `genesis` if there is no file yet.
fn open_or_create_wallet(
    path: &Path,
    password: SecretString,
    genesis: &ValidGenesis,
) -> Result<Wallet, Failure> {
    if path.exists() {
        let wallet = Wallet::open(path, password)?;
        if wallet.genesis_hash() != genesis.hash.to_hex() {
            return Err(Failure::verification(format!(
                "wallet {} is for genesis {}, the bank runs genesis {}",
                path.display(),
                wallet.genesis_hash(),
                genesis.hash.to_hex()
            )));
        }
        Ok(wallet)
    } else {
        Wallet::create(
            path,
            password,
            genesis.params.chain_id.as_str(),
            &genesis.hash.to_hex(),
        )
    }
}

/// A new account's keys, before its bank has opened it.
#[derive(Debug)]
pub struct NewAccount {
    pub account: AccountId,
    pub tx_key: SigningKey,
    pub identity_key: SigningKey,
    request: OpenAccountParams,
}

impl NewAccount {
    /// Makes the holder's two keys and the opening request for `bank`: the identity record
    /// (with the identity key's proof of possession) encrypted to the chain's current
    /// threshold disclosure key `key`, and the transaction key's signature over the opening, record included.
    pub fn generate(
        params: &ChainParams,
        key: &DisclosureKey,
        bank: BankId,
        holder: &Holder,
    ) -> Result<NewAccount, Failure> {
        let tx_key = SigningKey::generate(&mut OsRng);
        let identity_key = SigningKey::generate(&mut OsRng);
        let tx_public = crypto::public_key(&tx_key);
        let account = AccountId::from_key(&tx_public);
        let record = IdentityRecord {
            version: VERSION,
            name: holder.name.clone(),
            national_id: holder.national_id.clone(),
            fields: Vec::new(),
            identity_key: crypto::public_key(&identity_key),
            possession: crypto::sign(
                &identity_key,
                &crypto::identity_possession_message(&params.chain_id, &account),
            ),
        };
        let sealed = record.seal(key, &params.chain_id, &account, &mut OsRng)?;
        let message = open_account_message(&params.chain_id, &tx_public, bank, &sealed)?;
        let request = OpenAccountParams {
            tx_key: hex::encode(tx_public.0),
            holder_signature: hex::encode(crypto::sign(&tx_key, &message).0),
            sealed_record: hex::encode(codec::encode(&sealed)?),
            identity_key: record.identity_key.to_hex(),
            possession: record.possession.to_hex(),
        };
        Ok(NewAccount {
            account,
            tx_key,
            identity_key,
            request,
        })
    }

    /// Asks the bank at `node` to open the account; returns the business key it issued
    /// and the height of the block that opened it.
    pub async fn open_at(&self, node: &Node, bank: BankId) -> Result<(BusinessKey, u64), Failure> {
        let opened = node
            .client
            .open_account(self.request.clone())
            .await
            .map_err(|error| node.failure(error))?;
        if opened.account != self.account.to_string() || opened.bank_id != bank.0 {
            return Err(Failure::verification(format!(
                "the bank answered for account {} at bank {}, not {} at bank {}",
                opened.account, opened.bank_id, self.account, bank.0
            )));
        }
        let mut key_bytes = zeroize::Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(&opened.business_key, key_bytes.as_mut())
            .map_err(|_| Failure::error("the bank's business key is not 32 bytes of hex"))?;
        Ok((BusinessKey::from_bytes(*key_bytes), opened.height))
    }
}

/// Opens an account at the bank of `bank_url`; the wallet gets its keys.
pub async fn open_account(
    bank_url: &str,
    wallet_path: &Path,
    password: SecretString,
    holder: &Holder,
) -> Result<OpenedReport, Failure> {
    holder.check()?;
    let node = Node::connect(bank_url).await?;
    let genesis = node.genesis(None).await?;
    let status = node
        .client
        .status()
        .await
        .map_err(|error| node.failure(error))?;
    let (bank_id, bank_name) = bank_of(&genesis, &status.peer_id)?;
    let mut wallet = open_or_create_wallet(wallet_path, password, &genesis)?;
    let params = &genesis.params;

    let key = node.disclosure_key(&genesis).await?;
    let new = NewAccount::generate(params, &key, bank_id, holder)?;
    let (business_key, height) = new.open_at(&node, bank_id).await?;
    wallet.add(WalletAccount::new(
        new.account,
        &bank_name,
        bank_id,
        bank_url,
        &new.tx_key,
        &new.identity_key,
        &business_key,
    ))?;
    wallet.save()?;
    Ok(OpenedReport {
        account: new.account.to_string(),
        bank: bank_name,
        bank_id: bank_id.0,
        height,
        wallet: wallet_path.display().to_string(),
    })
}

impl OpenArgs {
    /// Opens the account (creating the wallet if there is none) and prints its id.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let password = if self.wallet.exists() {
            password::obtain(self.password_file.as_deref(), "the wallet")?
        } else {
            password::obtain_new(self.password_file.as_deref(), "the new wallet")?
        };
        let holder = Holder {
            name: self.name.clone(),
            national_id: self.national_id.clone(),
        };
        let report = block_on(open_account(&self.bank, &self.wallet, password, &holder))??;
        emit(output, &report, || {
            format!(
                "{}\n(opened at {} in block {}; keys saved in {})",
                report.account, report.bank, report.height, report.wallet
            )
        });
        Ok(())
    }
}

/// The account as the node at `url` sees it.
pub async fn account_at(url: &str, account: &str) -> Result<AccountInfo, Failure> {
    let node = Node::connect(url).await?;
    node.client
        .account(account.to_owned())
        .await
        .map_err(|error| node.failure(error))?
        .ok_or_else(|| Failure::error(format!("{url} does not know account {account}")))
}

impl ShowArgs {
    /// The (RPC URL, account) pairs to ask: each account of the wallet at its bank, or the
    /// one account of `--account` at `--rpc`.
    fn queries(&self) -> Result<Vec<(String, String)>, Failure> {
        match (&self.wallet, &self.account, &self.rpc) {
            (Some(path), _, _) => {
                let password = password::obtain(self.password_file.as_deref(), "the wallet")?;
                let wallet = Wallet::open(path, password)?;
                Ok(wallet
                    .accounts()
                    .iter()
                    .map(|account| (account.rpc.clone(), account.account.clone()))
                    .collect())
            }
            (None, Some(account), Some(rpc)) => Ok(vec![(rpc.clone(), account.clone())]),
            _ => Err(Failure::usage(
                "give --wallet FILE, or --account ID with --rpc URL",
            )),
        }
    }

    /// Asks each account's node for it and prints balances and status.
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let queries = self.queries()?;
        let accounts = block_on(async {
            let mut found = Vec::with_capacity(queries.len());
            for (url, account) in &queries {
                found.push(account_at(url, account).await?);
            }
            Ok::<_, Failure>(found)
        })??;
        emit(output, &accounts, || {
            accounts
                .iter()
                .map(|info| {
                    let mut line = format!(
                        "{}  balance {}  bank {}",
                        info.account, info.balance, info.bank
                    );
                    if info.frozen == Some(true) {
                        line.push_str("  FROZEN");
                    }
                    if info.closed {
                        line.push_str("  closed");
                    }
                    line
                })
                .collect::<Vec<_>>()
                .join("\n")
        });
        Ok(())
    }
}
