//! The payments of a run, planned (payer, payee, nonce, expiry), then signed and sealed on
//! every core before the clock starts, so client-side crypto is not measured.

use std::collections::BTreeMap;

use halfveil_genesis::file::ValidGenesis;
use halfveil_ledger::crypto::{self, Envelope};
use halfveil_ledger::{AccountId, Amount, BankId, Memo, Nonce, TimeMs, Transfer, VERSION};
use rand_core::OsRng;

use super::accounts::BenchAccount;
use crate::failure::Failure;

/// Payer and payee (indexes into the accounts, whose banks are `homes`) of `count`
/// payments: payers in turn; every payee at the next bank (so each payment crosses banks),
/// a different one each round. With one bank, any other account of it.
pub(super) fn plan_payments(homes: &[BankId], count: usize) -> Vec<(usize, usize)> {
    let total = homes.len();
    if total < 2 {
        return Vec::new();
    }
    let mut by_bank: BTreeMap<BankId, Vec<usize>> = BTreeMap::new();
    for (index, bank) in homes.iter().enumerate() {
        by_bank.entry(*bank).or_default().push(index);
    }
    let lists: Vec<&Vec<usize>> = by_bank.values().collect();
    let mut home = vec![0usize; total];
    for (position, list) in lists.iter().enumerate() {
        for &index in list.iter() {
            home[index] = position;
        }
    }
    (0..count)
        .map(|step| {
            let payer = step % total;
            let round = step / total;
            let payees = lists[(home[payer] + 1) % lists.len()];
            let mut payee = payees[(payer + round) % payees.len()];
            if payee == payer {
                payee = payees[(payer + round + 1) % payees.len()];
            }
            (payer, payee)
        })
        .collect()
}

/// One payment planned before the run: the payer (index into the accounts), the payee,
/// the payer's nonce and the expiry.
pub(super) type Planned = (usize, AccountId, u64, TimeMs);

/// Signs and seals `count` envelopes, each payer paying an account of the other bank,
/// using every core. Returns per bank the hex envelopes in offering order.
pub(super) fn prepare_envelopes(
    genesis: &ValidGenesis,
    accounts: &mut [BenchAccount],
    count: usize,
    banks: &[(BankId, String)],
) -> Result<Vec<Vec<String>>, Failure> {
    let plan = plan_envelopes(genesis, accounts, count);
    let bar = crate::output::bar(
        plan.len() as u64,
        "signing and sealing envelopes",
        "envelopes",
    );
    let bar = &bar;
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let chunk = plan.len().div_ceil(threads).max(1);
    let accounts: &[BenchAccount] = accounts;
    let sealed: Vec<Result<Vec<(BankId, String)>, Failure>> = std::thread::scope(|scope| {
        let handles: Vec<_> = plan
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|planned| {
                            bar.inc(1);
                            seal_envelope(genesis, accounts, planned)
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(Failure::error("envelope preparation failed")))
            })
            .collect()
    });
    bar.finish_and_clear();
    let mut per_bank = vec![Vec::with_capacity(count / banks.len() + 1); banks.len()];
    for part in sealed {
        for (bank, envelope) in part? {
            let index = banks.iter().position(|(id, _)| *id == bank).unwrap_or(0);
            per_bank[index].push(envelope);
        }
    }
    Ok(per_bank)
}

/// Plans `count` payments (cheap, sequential): payer, payee, nonce (taken from the payer)
/// and expiry.
pub(super) fn plan_envelopes(
    genesis: &ValidGenesis,
    accounts: &mut [BenchAccount],
    count: usize,
) -> Vec<Planned> {
    // Expiries rise through the run as a client's would (its send time plus a fixed
    // window), spread over up to a minute, all at least a minute short of the longest
    // allowed; one expiry shared by every transfer would put all of them into one slot of
    // the nodes' expiry index.
    let expiry_max = genesis.params.limits.transfer_expiry_ms_max;
    let spread = (expiry_max / 2).min(60_000);
    let expiry_base = halfveil_node::clock::now_ms().0 + expiry_max.saturating_sub(1_000 + spread);
    let homes: Vec<BankId> = accounts.iter().map(|account| account.bank).collect();
    let mut plan = Vec::with_capacity(count);
    for (step, (payer, payee)) in plan_payments(&homes, count).into_iter().enumerate() {
        let nonce = accounts[payer].next_nonce;
        accounts[payer].next_nonce += 1;
        let offset = (step as u64).saturating_mul(spread) / (count as u64).max(1);
        plan.push((
            payer,
            accounts[payee].id,
            nonce,
            TimeMs(expiry_base + offset),
        ));
    }
    plan
}

/// Signs one planned transfer and seals it for the payer's bank: that bank and the
/// envelope's hex.
pub(super) fn seal_envelope(
    genesis: &ValidGenesis,
    accounts: &[BenchAccount],
    &(payer, payee, nonce, expires_at): &Planned,
) -> Result<(BankId, String), Failure> {
    let params = &genesis.params;
    let from = &accounts[payer];
    let transfer = Transfer {
        version: VERSION,
        chain_id: params.chain_id.clone(),
        payer: from.id,
        payee,
        amount: Amount(1),
        nonce: Nonce(nonce),
        expires_at,
        memo: Memo(Vec::new()),
    };
    let request = crypto::sign_request(
        transfer,
        &from.tx_key,
        &from.identity_key,
        &params.disclosure_key,
        &mut OsRng,
    )?;
    let envelope = Envelope::seal(
        &from.business_key,
        &params.chain_id,
        from.bank,
        &request,
        &mut OsRng,
    )?;
    Ok((from.bank, hex::encode(envelope.encode()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Over more rounds than there are accounts (the old plan paid an account to itself
    /// after 499 rounds of 1,000), no payment is to its payer and every one crosses banks.
    #[test]
    fn planned_payments_cross_banks_and_never_pay_the_payer() {
        for (homes, rounds) in [
            (
                (0..1000u16)
                    .map(|index| BankId(index % 2))
                    .collect::<Vec<_>>(),
                600,
            ),
            (
                (0..10u16)
                    .map(|index| BankId(u16::from(index >= 3)))
                    .collect(),
                40,
            ),
            ((0..7u16).map(|index| BankId(index % 3)).collect(), 20),
        ] {
            let plan = plan_payments(&homes, homes.len() * rounds);
            assert_eq!(plan.len(), homes.len() * rounds);
            for (step, (payer, payee)) in plan.iter().enumerate() {
                assert_eq!(*payer, step % homes.len());
                assert_ne!(homes[*payer], homes[*payee], "step {step}");
            }
            // Payees vary: each payer pays more than one account.
            let first: Vec<usize> = plan.iter().take(homes.len()).map(|(_, p)| *p).collect();
            let second: Vec<usize> = plan
                .iter()
                .skip(homes.len())
                .take(homes.len())
                .map(|(_, p)| *p)
                .collect();
            assert_ne!(first, second);
        }
        let one_bank = vec![BankId(0); 4];
        for (payer, payee) in plan_payments(&one_bank, 40) {
            assert_ne!(payer, payee);
        }
        assert!(plan_payments(&[BankId(0)], 5).is_empty());
    }
}
