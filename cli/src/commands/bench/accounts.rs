//! The bench's accounts, opened at the banks in turn and funded by the identity manager;
//! and the machine's signature-check cost, measured beside every rate.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use halfveil_genesis::file::ValidGenesis;
use halfveil_ledger::crypto::{self, BusinessKey, SigningKey};
use halfveil_ledger::{AccountId, BankId};
use halfveil_node::rpc::AdminApiClient;
use rand_core::{OsRng, RngCore};
use secrecy::ExposeSecret;

use super::SETUP_CONCURRENCY;
use crate::client::{AdminAccess, Node};
use crate::commands::account::{Holder, NewAccount};
use crate::failure::Failure;

pub(crate) const FUNDS_PER_ACCOUNT: u64 = 1_000_000_000;

/// One account the bench pays from and to.
pub(crate) struct BenchAccount {
    pub(crate) id: AccountId,
    pub(crate) bank: BankId,
    pub(crate) tx_key: SigningKey,
    pub(crate) identity_key: SigningKey,
    pub(crate) business_key: BusinessKey,
    pub(crate) next_nonce: u64,
}

/// This machine's cost of one signature check as the nodes make it (ZIP-215), in µs.
pub(crate) fn signature_check_us() -> f64 {
    const ROUNDS: u32 = 2_000;
    let key = SigningKey::from_bytes(&[7; 32]);
    let public = crypto::public_key(&key);
    let message = halfveil_ledger::Hash32([9; 32]);
    let signature = crypto::sign(&key, &message);
    let started = Instant::now();
    for _ in 0..ROUNDS {
        let checked = crypto::verify(&public, std::hint::black_box(&message), &signature);
        std::hint::black_box(checked.is_ok());
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS)
}

/// This machine's reference rate: the transfers per second its cores could check the three
/// signatures of (payer, identity, bank), in ZIP-215 batches as the nodes check them. A
/// committed rate divided by it compares runs across machines of different speeds.
pub(crate) fn reference_rate() -> f64 {
    const TRANSFERS: usize = 2_048;
    const ROUNDS: u32 = 4;
    let items: Vec<_> = (0..3 * TRANSFERS)
        .map(|index| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(index as u64).to_le_bytes());
            let key = SigningKey::from_bytes(&seed);
            let message = halfveil_ledger::Hash32(seed);
            (
                crypto::public_key(&key),
                message,
                crypto::sign(&key, &message),
            )
        })
        .collect();
    let started = Instant::now();
    for _ in 0..ROUNDS {
        let mut batch = crypto::SignatureBatch::with_capacity(items.len());
        for (index, (key, message, signature)) in items.iter().enumerate() {
            batch.push(index, key, message, signature);
        }
        if batch.verify().is_err() {
            return 0.0;
        }
    }
    let per_round = started.elapsed().as_secs_f64() / f64::from(ROUNDS);
    TRANSFERS as f64 / per_round.max(f64::EPSILON)
}

/// Opens `count` accounts, alternating banks, and funds each.
pub(crate) async fn open_accounts(
    genesis: &ValidGenesis,
    banks: &[(BankId, String)],
    im_admin: &AdminAccess,
    count: usize,
) -> Result<Vec<BenchAccount>, Failure> {
    let params = &genesis.params;
    let total = u64::try_from(count).unwrap_or(u64::MAX).saturating_mul(2);
    let bar = crate::output::bar(total, "opening and funding accounts", "ops");
    let bar = &bar;
    let mut clients = Vec::new();
    for (_, url) in banks {
        clients.push(Arc::new(Node::connect(url).await?));
    }
    let opened = futures::stream::iter(0..count)
        .map(|index| {
            let (bank, _) = banks[index % banks.len()];
            let node = Arc::clone(&clients[index % banks.len()]);
            async move {
                let holder = Holder {
                    name: format!("Bench Holder {index}"),
                    national_id: format!("BENCH-{index:08}"),
                };
                let new = NewAccount::generate(params, &params.disclosure_key, bank, &holder)?;
                let (business_key, _) = new.open_at(&node, bank).await?;
                bar.inc(1);
                Ok::<_, Failure>(BenchAccount {
                    id: new.account,
                    bank,
                    tx_key: new.tx_key,
                    identity_key: new.identity_key,
                    business_key,
                    next_nonce: 0,
                })
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let admin = Arc::new(Node::connect(&im_admin.url).await?);
    let token = im_admin.token.expose_secret().to_owned();
    futures::stream::iter(opened.iter().map(|account| account.id))
        .map(|id| {
            let admin = Arc::clone(&admin);
            let token = token.clone();
            async move {
                let issued = admin
                    .client
                    .issue(token, id.to_string(), FUNDS_PER_ACCOUNT, OsRng.next_u64())
                    .await
                    .map_err(|error| admin.failure(error));
                bar.inc(1);
                issued
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    bar.finish_and_clear();
    Ok(opened)
}
