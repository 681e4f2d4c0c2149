//! The disclosure key ceremony on a running chain. `init --rpc` plans the chain's next key:
//! with `--refresh`, fresh shares of the current key (same group key and threshold; the
//! holders named keep a share, the others lose theirs); without, the first key of a new
//! epoch (other holders, another threshold). Each holder keeps the number it has on chain,
//! a new holder gets the next unused one. `finish` has each holder sign the key's adoption
//! as well, and `adopt` sends the key with every holder's signature to the IM, which commits
//! it as an `AdoptKey` op; from the next block on, payers seal to it. Nothing is adopted
//! unless every holder of the new key signed it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use halfveil_genesis::file::{ValidGenesis, IM_HOLDER};
use halfveil_ledger::crypto::{self, SigningKey};
use halfveil_ledger::disclosure_keys::{HeldKey, HolderParty, KeyAdoption, KEY_ADOPTION_BYTES_MAX};
use halfveil_ledger::threshold::{DisclosureKey, HOLDERS_MAX};
use halfveil_ledger::{codec, AuditorId, ChainId, Signature};
use serde::{Deserialize, Serialize};

use super::{ceremony_holders, read_results, Ceremony};
use halfveil_node::rpc::ApiClient;

use crate::client::{block_on, Node};
use crate::failure::{CommandResult, Failure};
use crate::output::{emit, OutputFormat};

/// What a ceremony on a running chain follows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnChain {
    pub genesis_hash: String,
    /// Each holder's party in genesis, in ceremony order.
    pub parties: Vec<HolderParty>,
    /// For a refresh: the current key with its holders' parties (a `HeldKey`'s canonical
    /// encoding, hex), which each holder's `finish` needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_of: Option<String>,
}

/// One holder's part of the adoption, in its result file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdoptionPart {
    /// The key with its holders' parties (a `HeldKey`'s canonical encoding, hex).
    pub held: String,
    /// The holder's signature over the adoption (`KeyAdoption::message`), hex.
    pub signature: String,
}

fn decode_held(text: &str) -> Result<HeldKey, Failure> {
    let bytes = hex::decode(text).map_err(|_| Failure::verification("a held key is not hex"))?;
    codec::decode(&bytes, KEY_ADOPTION_BYTES_MAX)
        .map_err(|error| Failure::verification(format!("a held key: {error}")))
}

impl Ceremony {
    /// The key a refresh ceremony refreshes.
    pub(super) fn refresh_of(&self) -> Result<Option<HeldKey>, Failure> {
        let refresh_of = self.on_chain.as_ref().and_then(|on| on.refresh_of.as_ref());
        refresh_of.map(|text| decode_held(text)).transpose()
    }
}

/// Plans the next key of the chain at `rpc` for the holders `named` (name, signer key).
pub(super) fn plan(
    rpc: &str,
    refresh: bool,
    threshold: Option<u16>,
    named: &[(String, String)],
) -> Result<Ceremony, Failure> {
    let (genesis, keys) = block_on(async {
        let node = Node::connect(rpc).await?;
        let genesis = node.genesis(None).await?;
        let keys = node.disclosure_keys(&genesis).await?;
        Ok::<_, Failure>((genesis, keys))
    })??;
    let current = keys
        .last()
        .ok_or_else(|| Failure::error("the chain has no disclosure key"))?;
    let parties = named
        .iter()
        .map(|(name, signer)| party_named(&genesis, name, signer))
        .collect::<Result<Vec<_>, _>>()?;
    let numbers = numbers(&keys, &parties, refresh)?;
    let (epoch, threshold, refresh_of) = if refresh {
        let kept = current.key.threshold;
        if threshold.is_some_and(|given| given != kept) {
            return Err(Failure::usage(format!(
                "a refresh keeps the threshold ({kept}); a new epoch may change it"
            )));
        }
        let encoded = hex::encode(codec::encode(current)?);
        (current.key.epoch, kept, Some(encoded))
    } else {
        let next = current.key.epoch.checked_add(1);
        let epoch = next.ok_or_else(|| Failure::usage("no epoch after this one"))?;
        let threshold = threshold.ok_or_else(|| Failure::usage("a new epoch needs --threshold"))?;
        (epoch, threshold, None)
    };
    Ok(Ceremony {
        chain_id: genesis.params.chain_id.to_string(),
        epoch,
        threshold,
        holders: ceremony_holders(named, &numbers)?,
        on_chain: Some(OnChain {
            genesis_hash: genesis.hash.to_hex(),
            parties,
            refresh_of,
        }),
    })
}

/// The party genesis names `name`, whose signing key must be `signer`.
fn party_named(genesis: &ValidGenesis, name: &str, signer: &str) -> Result<HolderParty, Failure> {
    let auditors = &genesis.genesis.body.auditors.members;
    let party = if name == IM_HOLDER {
        HolderParty::IdentityManager
    } else {
        let index = auditors.iter().position(|auditor| auditor.name == name);
        let index = index
            .and_then(|index| u16::try_from(index).ok())
            .ok_or_else(|| {
                Failure::usage(format!(
                    "--holder {name}: neither an auditor of this chain's genesis nor {IM_HOLDER}"
                ))
            })?;
        HolderParty::Auditor(AuditorId(index))
    };
    let key = genesis.params.party_key(party).map(|key| key.to_hex());
    if key.as_deref() != Some(signer.to_ascii_lowercase().as_str()) {
        return Err(Failure::usage(format!(
            "--holder {name}: not the signing key genesis names for {name}"
        )));
    }
    Ok(party)
}

/// Each party's holder number: the one it has on chain, else the next unused one (a
/// refresh takes only holders of the current key).
fn numbers(keys: &[HeldKey], parties: &[HolderParty], refresh: bool) -> Result<Vec<u16>, Failure> {
    let known: Vec<(u16, HolderParty)> = keys
        .iter()
        .flat_map(|held| {
            let numbers = held.key.holders.iter().map(|holder| holder.holder);
            numbers.zip(held.parties.iter().copied())
        })
        .collect();
    let current = keys.last().map(|held| &held.key);
    let holds_now = |number: u16| {
        current.is_some_and(|key| key.holders.iter().any(|holder| holder.holder == number))
    };
    let mut next = known.iter().map(|(number, _)| *number).max().unwrap_or(0);
    let mut numbers = Vec::with_capacity(parties.len());
    for party in parties {
        let number = match known.iter().find(|(_, named)| named == party) {
            Some((number, _)) if !refresh || holds_now(*number) => *number,
            _ if refresh => {
                return Err(Failure::usage(format!(
                    "{party} holds no share of the current key: a refresh cannot add holders \
                     (start a new epoch without --refresh)"
                )))
            }
            _ => {
                next = next.saturating_add(1);
                next
            }
        };
        if usize::from(number) > HOLDERS_MAX {
            return Err(Failure::usage("no holder number left"));
        }
        numbers.push(number);
    }
    Ok(numbers)
}

/// The key with its holders' parties, in the order of its holders.
fn held_key(
    ceremony: &Ceremony,
    on_chain: &OnChain,
    key: &DisclosureKey,
) -> Result<HeldKey, Failure> {
    let parties = key
        .holders
        .iter()
        .map(|holder| {
            let index = ceremony
                .holders
                .iter()
                .position(|entry| entry.holder == holder.holder);
            index
                .and_then(|index| on_chain.parties.get(index).copied())
                .ok_or_else(|| Failure::verification("a holder of the key is not in the ceremony"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HeldKey {
        key: key.clone(),
        parties,
    })
}

/// A holder's adoption signature of the key it computed (a ceremony on a running chain).
pub(super) fn sign_part(
    ceremony: &Ceremony,
    key: &DisclosureKey,
    signing: &SigningKey,
) -> Result<Option<AdoptionPart>, Failure> {
    let Some(on_chain) = &ceremony.on_chain else {
        return Ok(None);
    };
    let held = held_key(ceremony, on_chain, key)?;
    let chain_id = ChainId::new(&ceremony.chain_id)
        .map_err(|error| Failure::verification(format!("the ceremony's chain: {error}")))?;
    let message = KeyAdoption::message(&chain_id, &held)?;
    Ok(Some(AdoptionPart {
        held: hex::encode(codec::encode(&held)?),
        signature: crypto::sign(signing, &message).to_hex(),
    }))
}

/// `halfveil keys dkg adopt`.
#[derive(Debug, Args)]
pub struct AdoptArgs {
    #[arg(long)]
    pub dir: PathBuf,
    /// The identity manager's RPC URL: it commits the adoption.
    #[arg(long)]
    pub rpc: String,
}

impl AdoptArgs {
    /// Every holder's result, of one key, with every holder's adoption signature.
    fn adoption(&self) -> Result<(KeyAdoption, String), Failure> {
        let (ceremony, results) = read_results(&self.dir)?;
        let on_chain = ceremony.on_chain.as_ref().ok_or_else(|| {
            Failure::usage("a genesis ceremony: its key goes in genesis (keys dkg check)")
        })?;
        let mut held: Option<&str> = None;
        let mut signatures = BTreeMap::new();
        for (holder, file) in &results {
            let part = file.adoption.as_ref().ok_or_else(|| {
                Failure::verification(format!("{}'s result has no adoption", holder.name))
            })?;
            if held.is_some_and(|first| first != part.held) {
                return Err(Failure::verification(format!(
                    "{} signed another key: the ceremony failed, start again",
                    holder.name
                )));
            }
            held = Some(&part.held);
            let signature = Signature::from_hex(&part.signature)
                .map_err(|error| Failure::verification(format!("{}: {error}", holder.name)))?;
            signatures.insert(holder.holder, signature);
        }
        let held = decode_held(held.ok_or_else(|| Failure::usage("no holders"))?)?;
        let signatures = held
            .key
            .holders
            .iter()
            .map(|holder| signatures.get(&holder.holder).copied())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Failure::verification("a holder of the key did not sign it"))?;
        Ok((
            KeyAdoption { held, signatures },
            on_chain.genesis_hash.clone(),
        ))
    }

    pub fn execute(&self, output: OutputFormat) -> CommandResult {
        let (adoption, genesis_hash) = self.adoption()?;
        let encoded = hex::encode(codec::encode(&adoption)?);
        let adopted = block_on(async {
            let node = Node::connect(&self.rpc).await?;
            let genesis = node.genesis(Some(&genesis_hash)).await?;
            adoption.verify(&genesis.params).map_err(|error| {
                Failure::verification(format!("the key cannot be adopted: {error}"))
            })?;
            node.client
                .adopt_disclosure_key(encoded)
                .await
                .map_err(|error| node.failure(error))
        })??;
        emit(output, &adopted, || {
            format!(
                "disclosure key epoch {} refresh {} adopted at block {} (adoption {}); payers seal to it from now on",
                adopted.epoch, adopted.refresh, adopted.height, adopted.adoption_hash
            )
        });
        Ok(())
    }
}
