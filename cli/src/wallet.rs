//! The payer's wallet: per account, the online transaction key, the identity key, the
//! business key, the account id, the home bank and the next nonce.
//!
//! The whole wallet is one encrypted file (Argon2id, XChaCha20-Poly1305; see
//! `halfveil_genesis::keystore`), mode 0600, rewritten atomically. The nonce counter is
//! saved *before* a transfer is signed, so a crash can skip a nonce but never reuse one.

use std::path::{Path, PathBuf};

use halfveil_genesis::keystore::{self, FileKind, KdfParams};
use halfveil_ledger::crypto::{BusinessKey, SigningKey};
use halfveil_ledger::{AccountId, BankId, Nonce};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::failure::Failure;

const WALLET_VERSION: u8 = 1;
/// At most this many accounts in one wallet.
pub const WALLET_ACCOUNTS_MAX: usize = 10_000;

/// One account's secrets, as stored.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
pub struct WalletAccount {
    pub account: String,
    pub bank: String,
    pub bank_id: u16,
    /// The bank's public RPC URL, where this account's payments are submitted.
    pub rpc: String,
    tx_key: String,
    identity_key: String,
    business_key: String,
    pub next_nonce: u64,
    /// A new transaction key sent to the chain and not yet seen committed (hex); kept
    /// before the rotation is submitted, so a crash cannot lose the key the chain takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending_tx_key: Option<String>,
    /// How often the key was rotated: after a rotation the key no longer derives the id.
    #[serde(default, skip_serializing_if = "is_zero")]
    rotations: u32,
}

fn is_zero(count: &u32) -> bool {
    *count == 0
}

impl std::fmt::Debug for WalletAccount {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "WalletAccount({}, bank {})",
            self.account, self.bank
        )
    }
}

/// The decrypted keys of one account.
#[derive(Debug)]
pub struct AccountKeys {
    pub account: AccountId,
    pub bank: BankId,
    pub tx_key: SigningKey,
    pub identity_key: SigningKey,
    pub business_key: BusinessKey,
}

fn secret_from_hex(text: &str, what: &str) -> Result<Zeroizing<[u8; 32]>, Failure> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text, bytes.as_mut())
        .map_err(|_| Failure::error(format!("wallet is corrupt: {what} is not 32 bytes of hex")))?;
    Ok(bytes)
}

impl WalletAccount {
    pub fn new(
        account: AccountId,
        bank: &str,
        bank_id: BankId,
        rpc: &str,
        tx_key: &SigningKey,
        identity_key: &SigningKey,
        business_key: &BusinessKey,
    ) -> WalletAccount {
        WalletAccount {
            account: account.to_string(),
            bank: bank.to_owned(),
            bank_id: bank_id.0,
            rpc: rpc.to_owned(),
            tx_key: hex::encode(tx_key.to_bytes()),
            identity_key: hex::encode(identity_key.to_bytes()),
            business_key: hex::encode(business_key.as_bytes()),
            next_nonce: 0,
            pending_tx_key: None,
            rotations: 0,
        }
    }

    /// The new transaction key of a rotation not yet seen committed.
    pub fn pending_tx_key(&self) -> Result<Option<SigningKey>, Failure> {
        self.pending_tx_key
            .as_deref()
            .map(|text| {
                Ok(SigningKey::from_bytes(&*secret_from_hex(
                    text,
                    "pending_tx_key",
                )?))
            })
            .transpose()
    }

    pub fn keys(&self) -> Result<AccountKeys, Failure> {
        let account: AccountId = self
            .account
            .parse()
            .map_err(|_| Failure::error("wallet is corrupt: bad account id"))?;
        let tx_key = SigningKey::from_bytes(&*secret_from_hex(&self.tx_key, "tx_key")?);
        let derived = AccountId::from_key(&halfveil_ledger::crypto::public_key(&tx_key));
        if self.rotations == 0 && derived != account {
            return Err(Failure::error(format!(
                "wallet is corrupt: the transaction key does not belong to {account}"
            )));
        }
        Ok(AccountKeys {
            account,
            bank: BankId(self.bank_id),
            tx_key,
            identity_key: SigningKey::from_bytes(&*secret_from_hex(
                &self.identity_key,
                "identity_key",
            )?),
            business_key: BusinessKey::from_bytes(*secret_from_hex(
                &self.business_key,
                "business_key",
            )?),
        })
    }
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
struct WalletData {
    version: u8,
    chain_id: String,
    genesis_hash: String,
    accounts: Vec<WalletAccount>,
}

/// An open wallet and where it lives.
pub struct Wallet {
    path: PathBuf,
    password: SecretString,
    data: WalletData,
}

impl std::fmt::Debug for Wallet {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "Wallet({}, {} accounts)",
            self.path.display(),
            self.data.accounts.len()
        )
    }
}

impl Wallet {
    /// Creates a new, empty wallet file for the chain; refuses to overwrite one.
    pub fn create(
        path: &Path,
        password: SecretString,
        chain_id: &str,
        genesis_hash: &str,
    ) -> Result<Wallet, Failure> {
        let wallet = Wallet {
            path: path.to_path_buf(),
            password,
            data: WalletData {
                version: WALLET_VERSION,
                chain_id: chain_id.to_owned(),
                genesis_hash: genesis_hash.to_owned(),
                accounts: Vec::new(),
            },
        };
        let text = wallet.seal()?;
        keystore::write_new_private(path, text.as_bytes())?;
        Ok(wallet)
    }

    /// Opens a wallet file.
    pub fn open(path: &Path, password: SecretString) -> Result<Wallet, Failure> {
        let display = path.display().to_string();
        let text = keystore::read_bounded(path)?;
        let opened = keystore::open(&display, &text, FileKind::Wallet, &password)?;
        let data: WalletData = serde_json::from_slice(&opened.plaintext).map_err(|error| {
            Failure::error(format!("{display}: wallet contents are malformed: {error}"))
        })?;
        if data.version != WALLET_VERSION {
            return Err(Failure::error(format!(
                "{display}: unsupported wallet version {}",
                data.version
            )));
        }
        if data.accounts.len() > WALLET_ACCOUNTS_MAX {
            return Err(Failure::error(format!(
                "{display}: more than {WALLET_ACCOUNTS_MAX} accounts"
            )));
        }
        Ok(Wallet {
            path: path.to_path_buf(),
            password,
            data,
        })
    }

    fn seal(&self) -> Result<String, Failure> {
        let plaintext = Zeroizing::new(
            serde_json::to_vec(&self.data)
                .map_err(|error| Failure::error(format!("cannot encode wallet: {error}")))?,
        );
        Ok(keystore::seal(
            FileKind::Wallet,
            "",
            &plaintext,
            &self.password,
            KdfParams::DEFAULT,
        )?)
    }

    /// Writes a copy of the wallet to a new file `path` under `password` (a backup, or a
    /// restored wallet); refuses to overwrite a file.
    pub fn copy_to(&self, path: &Path, password: SecretString) -> Result<Wallet, Failure> {
        let copy = Wallet {
            path: path.to_path_buf(),
            password,
            data: WalletData {
                version: self.data.version,
                chain_id: self.data.chain_id.clone(),
                genesis_hash: self.data.genesis_hash.clone(),
                accounts: self.data.accounts.clone(),
            },
        };
        keystore::write_new_private(path, copy.seal()?.as_bytes())?;
        Ok(copy)
    }

    /// Writes the wallet back, atomically.
    pub fn save(&self) -> Result<(), Failure> {
        let text = self.seal()?;
        keystore::replace_private(&self.path, text.as_bytes())?;
        Ok(())
    }

    pub fn chain_id(&self) -> &str {
        &self.data.chain_id
    }

    pub fn genesis_hash(&self) -> &str {
        &self.data.genesis_hash
    }

    pub fn accounts(&self) -> &[WalletAccount] {
        &self.data.accounts
    }

    pub fn add(&mut self, account: WalletAccount) -> Result<(), Failure> {
        if self.data.accounts.len() >= WALLET_ACCOUNTS_MAX {
            return Err(Failure::error(format!(
                "the wallet already holds {WALLET_ACCOUNTS_MAX} accounts"
            )));
        }
        self.data.accounts.push(account);
        Ok(())
    }

    /// The account `id`, or the only account when `id` is `None`.
    pub fn account(&self, id: Option<&str>) -> Result<&WalletAccount, Failure> {
        match id {
            Some(id) => self
                .data
                .accounts
                .iter()
                .find(|account| account.account == id)
                .ok_or_else(|| {
                    Failure::usage(format!(
                        "account {id} is not in wallet {}",
                        self.path.display()
                    ))
                }),
            None => match self.data.accounts.as_slice() {
                [only] => Ok(only),
                [] => Err(Failure::usage(format!(
                    "wallet {} holds no account yet: open one with `halfveil account open`",
                    self.path.display()
                ))),
                _ => Err(Failure::usage(
                    "the wallet holds several accounts: choose one with --from",
                )),
            },
        }
    }

    fn account_mut(&mut self, id: &str) -> Result<&mut WalletAccount, Failure> {
        self.data
            .accounts
            .iter_mut()
            .find(|account| account.account == id)
            .ok_or_else(|| Failure::usage(format!("account {id} is not in the wallet")))
    }

    /// Keeps `new_key` as `id`'s pending transaction key and saves, before the rotation
    /// leaves this machine.
    pub fn begin_rotation(&mut self, id: &str, new_key: &SigningKey) -> Result<(), Failure> {
        self.account_mut(id)?.pending_tx_key = Some(hex::encode(new_key.to_bytes()));
        self.save()
    }

    /// The chain took the pending key: it is the transaction key from now on.
    pub fn finish_rotation(&mut self, id: &str) -> Result<(), Failure> {
        let account = self.account_mut(id)?;
        let pending = account
            .pending_tx_key
            .take()
            .ok_or_else(|| Failure::error("no rotation is pending"))?;
        account.tx_key = pending;
        account.rotations = account.rotations.saturating_add(1);
        self.save()
    }

    /// Takes the next nonce of `id` and saves the wallet before returning it.
    pub fn reserve_nonce(&mut self, id: &str) -> Result<Nonce, Failure> {
        let account = self
            .data
            .accounts
            .iter_mut()
            .find(|account| account.account == id)
            .ok_or_else(|| Failure::usage(format!("account {id} is not in the wallet")))?;
        let nonce = account.next_nonce;
        account.next_nonce = nonce
            .checked_add(1)
            .ok_or_else(|| Failure::error("the account's nonces are exhausted"))?;
        self.save()?;
        Ok(Nonce(nonce))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn a_backup_opens_only_with_its_own_password_and_restores_every_key() {
        let dir = tempfile::tempdir().unwrap();
        let password = |text: &str| SecretString::from(text.to_owned());
        let path = dir.path().join("wallet.json");
        let mut wallet =
            Wallet::create(&path, password("wallet pass"), "halfveil-test", "00").unwrap();
        let tx_key = SigningKey::generate(&mut OsRng);
        let id = AccountId::from_key(&halfveil_ledger::crypto::public_key(&tx_key));
        let account = WalletAccount::new(
            id,
            "bank-1",
            BankId(0),
            "http://127.0.0.1:1",
            &tx_key,
            &SigningKey::generate(&mut OsRng),
            &BusinessKey::generate(&mut OsRng),
        );
        wallet.add(account).unwrap();
        wallet.reserve_nonce(&id.to_string()).unwrap();
        let backup = dir.path().join("backup.json");
        wallet.copy_to(&backup, password("backup pass")).unwrap();
        assert!(
            wallet.copy_to(&backup, password("backup pass")).is_err(),
            "no overwrite"
        );
        assert!(Wallet::open(&backup, password("wallet pass")).is_err());
        let opened = Wallet::open(&backup, password("backup pass")).unwrap();
        let restored_path = dir.path().join("restored.json");
        let restored = opened
            .copy_to(&restored_path, password("new pass"))
            .unwrap();
        let keys = restored.account(None).unwrap().keys().unwrap();
        assert_eq!(keys.tx_key.to_bytes(), tx_key.to_bytes());
        assert_eq!(restored.account(None).unwrap().next_nonce, 1);
        assert!(Wallet::open(&restored_path, password("new pass")).is_ok());
    }

    #[test]
    fn a_wallet_round_trips_and_nonces_never_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wallet.json");
        let password = || SecretString::from("correct horse".to_owned());
        let mut wallet = Wallet::create(&path, password(), "halfveil-test", "00").unwrap();
        let tx_key = SigningKey::generate(&mut OsRng);
        let identity_key = SigningKey::generate(&mut OsRng);
        let business_key = BusinessKey::generate(&mut OsRng);
        let id = AccountId::from_key(&halfveil_ledger::crypto::public_key(&tx_key));
        wallet
            .add(WalletAccount::new(
                id,
                "bank-1",
                BankId(0),
                "http://127.0.0.1:1",
                &tx_key,
                &identity_key,
                &business_key,
            ))
            .unwrap();
        wallet.save().unwrap();
        assert_eq!(wallet.reserve_nonce(&id.to_string()).unwrap(), Nonce(0));
        let mut reopened = Wallet::open(&path, password()).unwrap();
        assert_eq!(reopened.reserve_nonce(&id.to_string()).unwrap(), Nonce(1));
        let keys = reopened.account(None).unwrap().keys().unwrap();
        assert_eq!(keys.account, id);
        assert_eq!(keys.business_key, business_key);
        assert!(Wallet::open(&path, SecretString::from("wrong".to_owned())).is_err());
        assert!(
            Wallet::create(&path, password(), "x", "00").is_err(),
            "must not overwrite"
        );
    }
}
