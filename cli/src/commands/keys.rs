//! `halfveil keys dkg`: the disclosure key ceremony over files, with FROST's distributed key
//! generation (`ledger::threshold::dkg`). The holders share one folder (a shared drive, or
//! files passed by hand); each runs the steps on its own machine, so no machine ever holds
//! two shares and nobody holds the key:
//!
//! ```text
//! DIR/ceremony.json            init: chain, epoch, threshold, holders and their signing keys
//! DIR/round1/NAME.json         round1: the holder's public package and transport key, signed
//! DIR/round2/FROM-to-TO.json   round2: a secret package sealed to TO's transport key, signed
//! DIR/result/NAME.json         finish: the public key the holder computed, signed
//! ```
//! `check` verifies every file and that all holders computed the same key, and prints the
//! genesis `disclosure_key` entry. Each holder's secrets between rounds stay in its own
//! encrypted state file; its share ends in an encrypted key file.
//!
//! On a running chain (`init --rpc`), the same steps make a refresh of the current key
//! (`--refresh`) or the key of a new epoch, and `adopt` puts it on chain ([`rekey`]).

mod rekey;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use halfveil_genesis::assembly::Role;
use halfveil_genesis::file::{DisclosureKeyEntry, IM_HOLDER};
use halfveil_genesis::keystore::{self, FileKind, KdfParams};
use halfveil_genesis::testnet::disclosure_key_entry;
use halfveil_ledger::crypto::{self, SigningKey, X25519Secret};
use halfveil_ledger::threshold::{dkg, DisclosureKey, HolderSecret};
use halfveil_ledger::{codec, Hash32, PublicKey, Signature, X25519PublicKey};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::failure::{CommandResult, Failure};
use crate::output::{emit, OutputFormat};
use crate::password;

/// The largest ceremony file read.
const CEREMONY_FILE_BYTES_MAX: u64 = 256 * 1024;

/// `halfveil keys`: key ceremonies.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// The disclosure key ceremony (FROST DKG) among its holders, over a shared folder.
    #[command(subcommand)]
    Dkg(DkgCommand),
}

impl KeysCommand {
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        match self {
            KeysCommand::Dkg(command) => command.execute(output),
        }
    }
}

/// The ceremony's steps, in order.
#[derive(Debug, Subcommand)]
pub enum DkgCommand {
    /// Start a ceremony: the chain, the holders (auditor names and `identity-manager`) with
    /// their signing keys, and how many of them open.
    Init(InitArgs),
    /// Step 1 for one holder: its public package and transport key.
    Round1(StepArgs),
    /// Step 2 for one holder, once every round-1 file is in: a secret package for each
    /// other holder, sealed to it.
    Round2(StepArgs),
    /// Step 3 for one holder, once every round-2 file is in: its share (an encrypted key
    /// file) and the public key it computed.
    Finish(FinishArgs),
    /// Check that every holder computed the same key; print genesis's `disclosure_key`.
    Check(CheckArgs),
    /// On a running chain: put the key every holder computed and signed on chain.
    Adopt(rekey::AdoptArgs),
}

impl DkgCommand {
    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        match self {
            DkgCommand::Init(args) => args.execute(output),
            DkgCommand::Round1(args) => args.round1(output),
            DkgCommand::Round2(args) => args.round2(output),
            DkgCommand::Finish(args) => args.execute(output),
            DkgCommand::Check(args) => args.execute(output),
            DkgCommand::Adopt(args) => args.execute(output),
        }
    }
}

/// One holder as the ceremony names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CeremonyHolder {
    pub holder: u16,
    pub name: String,
    /// The Ed25519 key that signs this holder's ceremony files (its auditor key, or the IM's
    /// validator key), hex: the key genesis will list for it.
    pub signer: String,
}

/// `DIR/ceremony.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ceremony {
    pub chain_id: String,
    pub epoch: u32,
    pub threshold: u16,
    pub holders: Vec<CeremonyHolder>,
    /// A ceremony on a running chain (`init --rpc`): what the key follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_chain: Option<rekey::OnChain>,
}

impl Ceremony {
    fn load(dir: &Path) -> Result<(Ceremony, Hash32), Failure> {
        let bytes = read_small(&dir.join("ceremony.json"))?;
        let ceremony: Ceremony = parse_json(&dir.join("ceremony.json"), &bytes)?;
        let hash = hash_of("halfveil v1 dkg ceremony", &[&bytes]);
        Ok((ceremony, hash))
    }

    fn holder(&self, name: &str) -> Result<&CeremonyHolder, Failure> {
        self.holders
            .iter()
            .find(|holder| holder.name == name)
            .ok_or_else(|| Failure::usage(format!("{name} is not a holder of this ceremony")))
    }

    fn signer(&self, holder: &CeremonyHolder) -> Result<PublicKey, Failure> {
        PublicKey::from_hex(&holder.signer)
            .map_err(|error| Failure::verification(format!("{}'s signer: {error}", holder.name)))
    }

    fn count(&self) -> Result<u16, Failure> {
        u16::try_from(self.holders.len()).map_err(|_| Failure::usage("too many holders"))
    }

    fn is_refresh(&self) -> bool {
        self.on_chain
            .as_ref()
            .is_some_and(|on_chain| on_chain.refresh_of.is_some())
    }
}

fn read_small(path: &Path) -> Result<Vec<u8>, Failure> {
    let bytes = std::fs::metadata(path)
        .map_err(|error| Failure::error(format!("{}: {error}", path.display())))?
        .len();
    if bytes > CEREMONY_FILE_BYTES_MAX {
        return Err(Failure::verification(format!(
            "{} is too large",
            path.display()
        )));
    }
    Ok(std::fs::read(path)?)
}

fn parse_json<T: for<'de> Deserialize<'de>>(path: &Path, bytes: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(bytes)
        .map_err(|error| Failure::verification(format!("{}: {error}", path.display())))
}

/// Writes `value` as pretty JSON to a new file (0600, never overwritten), creating its
/// folder.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), Failure> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let text =
        serde_json::to_string_pretty(value).map_err(|error| Failure::error(error.to_string()))?;
    keystore::write_new_private(path, text.as_bytes())?;
    Ok(())
}

/// A domain-separated hash of `parts` in order, each with its length, under `context`.
fn hash_of(context: &str, parts: &[&[u8]]) -> Hash32 {
    let mut framed = Vec::new();
    for part in parts {
        framed.extend_from_slice(&(part.len() as u64).to_le_bytes());
        framed.extend_from_slice(part);
    }
    halfveil_ledger::hash::derive(context, &framed)
}

fn hex_bytes(text: &str, what: &str) -> Result<Vec<u8>, Failure> {
    hex::decode(text).map_err(|_| Failure::verification(format!("{what} is not hex")))
}

/// `halfveil keys dkg init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The ceremony folder (created).
    #[arg(long)]
    pub dir: PathBuf,
    /// The chain (for a genesis ceremony; `--rpc` reads it from the chain).
    #[arg(long, required_unless_present = "rpc")]
    pub chain_id: Option<String>,
    /// `NAME=SIGNER_KEY_HEX`, one per holder, in holder order (an auditor's name and key, or
    /// `identity-manager=` the IM's first validator key); or the holder's `public.json` from
    /// `halfveil init` (an auditor's, or the first IM replica's).
    #[arg(long = "holder", required = true, num_args = 1..)]
    pub holders: Vec<String>,
    /// How many holders open (a refresh keeps the current key's).
    #[arg(long, required_unless_present = "refresh")]
    pub threshold: Option<u16>,
    #[arg(long, default_value_t = 0, conflicts_with = "rpc")]
    pub epoch: u32,
    /// A node of the running chain: the ceremony makes the next key of that chain (a new
    /// epoch, or with `--refresh` fresh shares of the current key), for `adopt`.
    #[arg(long)]
    pub rpc: Option<String>,
    /// With `--rpc`: refresh the current key (same group key and threshold, fresh shares;
    /// the holders named keep a share, the others lose theirs).
    #[arg(long, requires = "rpc")]
    pub refresh: bool,
}

/// A `--holder`: `NAME=KEY_HEX`, or a party's `public.json`.
fn holder_of(given: &str) -> Result<(String, String), Failure> {
    if let Some((name, key)) = given.split_once('=') {
        return Ok((name.to_owned(), key.to_owned()));
    }
    let path = Path::new(given);
    if !path.is_file() {
        return Err(Failure::usage(format!(
            "--holder {given}: give NAME=KEY_HEX or a party's public.json"
        )));
    }
    let entry = crate::commands::init::read_public(path)?;
    let name = match entry.role {
        Role::Auditor => entry.name,
        Role::IdentityManager => IM_HOLDER.to_owned(),
        Role::Bank => {
            return Err(Failure::usage(format!(
                "--holder {given}: a bank holds no share of the disclosure key"
            )))
        }
    };
    Ok((name, entry.key))
}

impl InitArgs {
    fn execute(&self, output: OutputFormat) -> CommandResult {
        let named = self
            .holders
            .iter()
            .map(|given| holder_of(given))
            .collect::<Result<Vec<_>, _>>()?;
        let ceremony = match &self.rpc {
            Some(rpc) => rekey::plan(rpc, self.refresh, self.threshold, &named)?,
            None => self.genesis_ceremony(&named)?,
        };
        let count = ceremony.count()?;
        if ceremony.threshold < 2 || ceremony.threshold > count {
            return Err(Failure::usage(
                "--threshold must be between 2 and the number of holders",
            ));
        }
        std::fs::create_dir_all(&self.dir)?;
        write_json(&self.dir.join("ceremony.json"), &ceremony)?;
        emit(output, &ceremony, || {
            format!(
                "ceremony for {} written to {}: {} holders, any {} open",
                ceremony.chain_id,
                self.dir.display(),
                count,
                ceremony.threshold
            )
        });
        Ok(())
    }

    /// A ceremony for a new chain's genesis: holders numbered 1, 2, ... in the order given.
    fn genesis_ceremony(&self, named: &[(String, String)]) -> Result<Ceremony, Failure> {
        let numbers = (1..).take(named.len()).collect::<Vec<u16>>();
        Ok(Ceremony {
            chain_id: self.chain_id.clone().unwrap_or_default(),
            epoch: self.epoch,
            threshold: self.threshold.unwrap_or_default(),
            holders: ceremony_holders(named, &numbers)?,
            on_chain: None,
        })
    }
}

/// The ceremony's holders: `named` (name, signer) with their `numbers`, each name once.
fn ceremony_holders(
    named: &[(String, String)],
    numbers: &[u16],
) -> Result<Vec<CeremonyHolder>, Failure> {
    let mut holders = Vec::with_capacity(named.len());
    for ((name, signer), holder) in named.iter().zip(numbers.iter().copied()) {
        let (name, signer) = (name.as_str(), signer.as_str());
        PublicKey::from_hex(signer)
            .map_err(|error| Failure::usage(format!("--holder {name}: {error}")))?;
        if holders
            .iter()
            .any(|other: &CeremonyHolder| other.name == name)
        {
            return Err(Failure::usage(format!("{name} is named twice")));
        }
        holders.push(CeremonyHolder {
            holder,
            name: name.to_owned(),
            signer: signer.to_owned(),
        });
    }
    Ok(holders)
}

/// One holder's step.
#[derive(Debug, Args)]
pub struct StepArgs {
    #[arg(long)]
    pub dir: PathBuf,
    /// This holder's name in the ceremony.
    #[arg(long)]
    pub name: String,
    /// This holder's signing key file (its auditor key, or the IM's validator key).
    #[arg(long)]
    pub signing_key: PathBuf,
    /// This holder's own state file between the rounds (encrypted; keep it on this machine).
    #[arg(long)]
    pub state: PathBuf,
    #[arg(long, env = "HALFVEIL_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
}

/// `DIR/round1/NAME.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Round1File {
    holder: u16,
    name: String,
    package: String,
    transport_key: String,
    signature: String,
}

/// `DIR/round2/FROM-to-TO.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Round2File {
    from: u16,
    to: u16,
    sealed: String,
    signature: String,
}

/// What a holder keeps between rounds: its transport secret and FROST's secret package.
#[derive(Serialize, Deserialize)]
struct DkgState {
    round: u8,
    transport: [u8; 32],
    secret: Vec<u8>,
}

impl Drop for DkgState {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.transport.zeroize();
        self.secret.zeroize();
    }
}

fn round1_message(ceremony: &Hash32, holder: u16, package: &[u8], transport: &[u8]) -> Hash32 {
    hash_of(
        "halfveil v1 dkg round 1",
        &[
            ceremony.as_bytes(),
            &holder.to_le_bytes(),
            package,
            transport,
        ],
    )
}

fn round2_message(ceremony: &Hash32, from: u16, to: u16, sealed: &[u8]) -> Hash32 {
    hash_of(
        "halfveil v1 dkg round 2",
        &[
            ceremony.as_bytes(),
            &from.to_le_bytes(),
            &to.to_le_bytes(),
            sealed,
        ],
    )
}

fn signing_kind(name: &str) -> FileKind {
    if name == IM_HOLDER {
        FileKind::ValidatorKey
    } else {
        FileKind::AuditorKey
    }
}

impl StepArgs {
    /// This holder's entry, signing key (checked against the ceremony) and password.
    fn me(
        &self,
        ceremony: &Ceremony,
    ) -> Result<(CeremonyHolder, SigningKey, secrecy::SecretString), Failure> {
        let holder = ceremony.holder(&self.name)?.clone();
        let password = password::obtain(self.password_file.as_deref(), "the holder's keys")?;
        let signing =
            keystore::read_signing_key(&self.signing_key, signing_kind(&holder.name), &password)?;
        if crypto::public_key(&signing) != ceremony.signer(&holder)? {
            return Err(Failure::usage(format!(
                "{} is not {}'s signing key in this ceremony",
                self.signing_key.display(),
                holder.name
            )));
        }
        Ok((holder, signing, password))
    }

    fn save_state(
        &self,
        state: &DkgState,
        public: &str,
        password: &secrecy::SecretString,
    ) -> CommandResult {
        let plaintext = Zeroizing::new(codec::encode(state)?);
        let text = keystore::seal(
            FileKind::DkgState,
            public,
            &plaintext,
            password,
            KdfParams::DEFAULT,
        )?;
        keystore::replace_private(&self.state, text.as_bytes())?;
        Ok(())
    }

    fn load_state(&self, password: &secrecy::SecretString, round: u8) -> Result<DkgState, Failure> {
        let text = keystore::read_bounded(&self.state)?;
        let opened = keystore::open(
            &self.state.display().to_string(),
            &text,
            FileKind::DkgState,
            password,
        )?;
        let state: DkgState = codec::decode(&opened.plaintext, CEREMONY_FILE_BYTES_MAX as usize)
            .map_err(|error| Failure::verification(format!("{}: {error}", self.state.display())))?;
        if state.round != round {
            return Err(Failure::usage(format!(
                "{} is after round {}, not {}: run the steps in order",
                self.state.display(),
                state.round,
                round
            )));
        }
        Ok(state)
    }

    fn round1(&self, output: OutputFormat) -> CommandResult {
        let (ceremony, hash) = Ceremony::load(&self.dir)?;
        let (me, signing, password) = self.me(&ceremony)?;
        let (count, threshold) = (ceremony.count()?, ceremony.threshold);
        let (secret, package) = if ceremony.is_refresh() {
            dkg::begin_refresh(me.holder, count, threshold, &mut OsRng)?
        } else {
            dkg::begin(me.holder, count, threshold, &mut OsRng)?
        };
        let transport = X25519Secret::generate(&mut OsRng);
        let transport_public = transport.public_key()?;
        let state = DkgState {
            round: 1,
            transport: *transport.as_bytes(),
            secret: secret.to_bytes()?.to_vec(),
        };
        self.save_state(&state, &transport_public.to_hex(), &password)?;
        let message = round1_message(&hash, me.holder, &package, &transport_public.0);
        let file = Round1File {
            holder: me.holder,
            name: me.name.clone(),
            package: hex::encode(&package),
            transport_key: transport_public.to_hex(),
            signature: crypto::sign(&signing, &message).to_hex(),
        };
        write_json(
            &self.dir.join("round1").join(format!("{}.json", me.name)),
            &file,
        )?;
        emit(output, &file, || format!("{}: round 1 written", me.name));
        Ok(())
    }

    fn round2(&self, output: OutputFormat) -> CommandResult {
        let (ceremony, hash) = Ceremony::load(&self.dir)?;
        let (me, signing, password) = self.me(&ceremony)?;
        let state = self.load_state(&password, 1)?;
        let round1 = read_round1(&self.dir, &ceremony, &hash)?;
        let others: BTreeMap<u16, Vec<u8>> = round1
            .iter()
            .filter(|(holder, _)| **holder != me.holder)
            .map(|(holder, (package, _))| (*holder, package.clone()))
            .collect();
        let secret = dkg::Round1Secret::from_bytes(&state.secret)?;
        let (secret2, outgoing) = dkg::exchange(secret, &others, ceremony.is_refresh())?;
        for (to, package) in &outgoing {
            let (_, transport) = &round1[to];
            let aad = [me.holder.to_le_bytes(), to.to_le_bytes()].concat();
            let sealed = crypto::seal_to_holder(transport, &hash, &aad, package, &mut OsRng)?;
            let file = Round2File {
                from: me.holder,
                to: *to,
                sealed: hex::encode(&sealed),
                signature: crypto::sign(&signing, &round2_message(&hash, me.holder, *to, &sealed))
                    .to_hex(),
            };
            let name = format!("{}-to-{}.json", me.holder, to);
            write_json(&self.dir.join("round2").join(name), &file)?;
        }
        let transport = X25519Secret::from_bytes(state.transport);
        let next = DkgState {
            round: 2,
            transport: state.transport,
            secret: secret2.to_bytes()?.to_vec(),
        };
        self.save_state(&next, &transport.public_key()?.to_hex(), &password)?;
        #[derive(Serialize)]
        struct Done {
            name: String,
            sealed_for: Vec<u16>,
        }
        let done = Done {
            name: me.name.clone(),
            sealed_for: outgoing.keys().copied().collect(),
        };
        emit(output, &done, || {
            format!(
                "{}: round 2 sealed for holders {:?}",
                done.name, done.sealed_for
            )
        });
        Ok(())
    }
}

/// Every holder's round-1 package and transport key, each signature checked.
fn read_round1(
    dir: &Path,
    ceremony: &Ceremony,
    hash: &Hash32,
) -> Result<BTreeMap<u16, (Vec<u8>, X25519PublicKey)>, Failure> {
    let mut round1 = BTreeMap::new();
    for holder in &ceremony.holders {
        let path = dir.join("round1").join(format!("{}.json", holder.name));
        if !path.exists() {
            return Err(Failure::refused(format!(
                "{} has not done round 1 yet ({} missing)",
                holder.name,
                path.display()
            )));
        }
        let file: Round1File = parse_json(&path, &read_small(&path)?)?;
        let package = hex_bytes(&file.package, "package")?;
        let transport = X25519PublicKey::from_hex(&file.transport_key)
            .map_err(|error| Failure::verification(format!("{}: {error}", path.display())))?;
        let message = round1_message(hash, holder.holder, &package, &transport.0);
        verify(ceremony, holder, &message, &file.signature, &path)?;
        if file.holder != holder.holder || file.name != holder.name {
            return Err(Failure::verification(format!(
                "{}: another holder's file",
                path.display()
            )));
        }
        round1.insert(holder.holder, (package, transport));
    }
    Ok(round1)
}

fn verify(
    ceremony: &Ceremony,
    holder: &CeremonyHolder,
    message: &Hash32,
    signature: &str,
    path: &Path,
) -> CommandResult {
    let signature = Signature::from_hex(signature)
        .map_err(|error| Failure::verification(format!("{}: {error}", path.display())))?;
    crypto::verify(&ceremony.signer(holder)?, message, &signature).map_err(|_| {
        Failure::verification(format!(
            "{}: not signed by {}'s key",
            path.display(),
            holder.name
        ))
    })
}

/// `halfveil keys dkg finish`.
#[derive(Debug, Args)]
pub struct FinishArgs {
    #[command(flatten)]
    pub step: StepArgs,
    /// Where to write this holder's share (an encrypted key file).
    #[arg(long)]
    pub out: PathBuf,
    /// For a refresh: this holder's share of the current key (its latest refresh).
    #[arg(long)]
    pub current_share: Option<PathBuf>,
}

/// `DIR/result/NAME.json`: the key one holder computed, signed.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultFile {
    holder: u16,
    disclosure_key: DisclosureKeyEntry,
    signature: String,
    /// On a running chain: the key with its holders' parties (a `HeldKey`'s canonical
    /// encoding, hex) and this holder's signature of its adoption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    adoption: Option<rekey::AdoptionPart>,
}

fn result_message(ceremony: &Hash32, entry: &DisclosureKeyEntry) -> Result<Hash32, Failure> {
    let text = serde_json::to_vec(entry).map_err(|error| Failure::error(error.to_string()))?;
    Ok(hash_of(
        "halfveil v1 dkg result",
        &[ceremony.as_bytes(), &text],
    ))
}

/// Genesis's entry for `key`, each holder named as the ceremony names it.
fn genesis_entry(key: &DisclosureKey, ceremony: &Ceremony) -> DisclosureKeyEntry {
    disclosure_key_entry(key, |number| {
        ceremony
            .holders
            .iter()
            .find(|entry| entry.holder == number)
            .map_or_else(String::new, |entry| entry.name.clone())
    })
}

impl FinishArgs {
    /// The round-2 packages addressed to this holder, opened with its transport secret.
    fn inbox(
        &self,
        ceremony: &Ceremony,
        hash: &Hash32,
        me: &CeremonyHolder,
        transport: &X25519Secret,
    ) -> Result<BTreeMap<u16, Vec<u8>>, Failure> {
        let mut inbox = BTreeMap::new();
        for from in ceremony
            .holders
            .iter()
            .filter(|holder| holder.holder != me.holder)
        {
            let path = self
                .step
                .dir
                .join("round2")
                .join(format!("{}-to-{}.json", from.holder, me.holder));
            if !path.exists() {
                return Err(Failure::refused(format!(
                    "{} has not done round 2 yet",
                    from.name
                )));
            }
            let file: Round2File = parse_json(&path, &read_small(&path)?)?;
            let sealed = hex_bytes(&file.sealed, "sealed")?;
            let message = round2_message(hash, from.holder, me.holder, &sealed);
            verify(ceremony, from, &message, &file.signature, &path)?;
            let aad = [from.holder.to_le_bytes(), me.holder.to_le_bytes()].concat();
            let package = crypto::open_as_holder(transport, hash, &aad, &sealed).map_err(|_| {
                Failure::verification(format!(
                    "{}: does not open with this holder's transport key",
                    path.display()
                ))
            })?;
            inbox.insert(from.holder, package.to_vec());
        }
        Ok(inbox)
    }

    fn execute(&self, output: OutputFormat) -> CommandResult {
        let step = &self.step;
        let (ceremony, hash) = Ceremony::load(&step.dir)?;
        let (me, signing, password) = step.me(&ceremony)?;
        let state = step.load_state(&password, 2)?;
        let transport = X25519Secret::from_bytes(state.transport);
        let round1: BTreeMap<u16, Vec<u8>> = read_round1(&step.dir, &ceremony, &hash)?
            .into_iter()
            .filter(|(holder, _)| *holder != me.holder)
            .map(|(holder, (package, _))| (holder, package))
            .collect();
        let inbox = self.inbox(&ceremony, &hash, &me, &transport)?;
        let secret = dkg::Round2Secret::from_bytes(&state.secret)?;
        let (share, key): (HolderSecret, DisclosureKey) = match ceremony.refresh_of()? {
            Some(current) => {
                let path = self.current_share.as_ref().ok_or_else(|| {
                    Failure::usage("a refresh needs --current-share: this holder's share now")
                })?;
                let old = keystore::read_disclosure_share(path, &password, &current.key)?;
                dkg::finish_refresh(&secret, &round1, &inbox, &current.key, &old)?
            }
            None => dkg::finish(ceremony.epoch, &secret, &round1, &inbox)?,
        };
        keystore::write_disclosure_share(&self.out, &share, &password, KdfParams::DEFAULT)?;
        let entry = genesis_entry(&key, &ceremony);
        let file = ResultFile {
            holder: me.holder,
            signature: crypto::sign(&signing, &result_message(&hash, &entry)?).to_hex(),
            disclosure_key: entry,
            adoption: rekey::sign_part(&ceremony, &key, &signing)?,
        };
        write_json(
            &step.dir.join("result").join(format!("{}.json", me.name)),
            &file,
        )?;
        emit(output, &file, || {
            format!(
                "{}: share written to {}; group key {}",
                me.name,
                self.out.display(),
                file.disclosure_key.group_key
            )
        });
        Ok(())
    }
}

/// `halfveil keys dkg check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[arg(long)]
    pub dir: PathBuf,
}

/// A finished ceremony in `dir`: its holders and the key every one of them computed (each
/// result file's signature checked).
pub fn ceremony_result(dir: &Path) -> Result<(Vec<(String, String)>, DisclosureKeyEntry), Failure> {
    let (ceremony, results) = read_results(dir)?;
    let entry = results
        .into_iter()
        .next()
        .map(|(_, file)| file.disclosure_key)
        .ok_or_else(|| Failure::usage("the ceremony has no holders"))?;
    let signers = ceremony
        .holders
        .into_iter()
        .map(|holder| (holder.name, holder.signer))
        .collect();
    Ok((signers, entry))
}

/// The ceremony in `dir` and every holder's result file, in ceremony order: each one's
/// signature checked, all of the same key.
fn read_results(dir: &Path) -> Result<(Ceremony, Vec<(CeremonyHolder, ResultFile)>), Failure> {
    let (ceremony, hash) = Ceremony::load(dir)?;
    let mut results: Vec<(CeremonyHolder, ResultFile)> = Vec::new();
    for holder in &ceremony.holders {
        let path = dir.join("result").join(format!("{}.json", holder.name));
        if !path.exists() {
            return Err(Failure::refused(format!(
                "{} has not finished yet",
                holder.name
            )));
        }
        let file: ResultFile = parse_json(&path, &read_small(&path)?)?;
        verify(
            &ceremony,
            holder,
            &result_message(&hash, &file.disclosure_key)?,
            &file.signature,
            &path,
        )?;
        if results
            .first()
            .is_some_and(|(_, first)| first.disclosure_key != file.disclosure_key)
        {
            return Err(Failure::verification(format!(
                "{} computed another key: the ceremony failed, start again",
                holder.name
            )));
        }
        results.push((holder.clone(), file));
    }
    Ok((ceremony, results))
}

impl CheckArgs {
    fn execute(&self, output: OutputFormat) -> CommandResult {
        let (holders, entry) = ceremony_result(&self.dir)?;
        let (ceremony, _) = Ceremony::load(&self.dir)?;
        let next = match ceremony.on_chain {
            Some(_) => "on the running chain: halfveil keys dkg adopt; the key",
            None => "genesis body's \"disclosure_key\"",
        };
        emit(output, &entry, || {
            let text = serde_json::to_string_pretty(&entry).unwrap_or_default();
            format!(
                "all {} holders computed the same key; {next}:\n{text}",
                holders.len()
            )
        });
        Ok(())
    }
}
