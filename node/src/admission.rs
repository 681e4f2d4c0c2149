//! The identity manager's admission checks, batched across forwarded batches.
//!
//! Each forwarded batch carries its bank's attestation over the batch's transfer ids and
//! every payer's transaction credential. A batch check costs less per signature the more
//! it holds (docs/decisions/0020-admission-in-combined-batches.md), so the checks run on
//! one thread that takes every batch waiting when it becomes free and verifies all their
//! credentials in one batch: under load the batches grow by themselves, idle it checks
//! each batch as soon as it comes.
//!
//! The banks' attestation signatures (one per batch) go into the same combined check. A
//! failed combined check is not a verdict: each batch is then checked on its own, and a
//! failed batch one signature at a time, so a bad credential in one bank's batch costs that
//! batch's transfers nothing but their own answer and never touches another batch's.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};

use halfveil_ledger::crypto::{self, SignatureBatch};
use halfveil_ledger::{
    transaction_credential_message, AttestationKind, BankId, ChainId, CodecError, Hash32,
    PublicKey, TransactionRequest,
};

use crate::protocol::ForwardBatch;

/// Forwarded batches waiting for the checker; more are refused as overload.
pub const ADMISSION_QUEUE_MAX: usize = 256;

/// Signatures the checker takes into one combined check at most (it takes whole batches,
/// so one check can exceed it by one batch).
const COMBINED_SIGNATURES_MAX: usize = 8192;

/// A forwarded batch to check, with the payer keys the state held when it arrived (`None`
/// for an unknown payer) and whatever the caller needs back with the verdict.
#[derive(Debug)]
pub struct Job<C> {
    pub bank: BankId,
    pub bank_key: PublicKey,
    pub keys: Vec<Option<PublicKey>>,
    pub batch: ForwardBatch,
    pub context: C,
}

/// Why a whole forwarded batch is refused (the bank sees the text).
#[derive(Debug, thiserror::Error)]
pub enum BatchRefused {
    /// A transfer, or the attestation's message, does not encode.
    #[error(transparent)]
    Encode(#[from] CodecError),
    /// The attestation is not a payer-ok by the sending bank over exactly these ids.
    #[error("the attestation does not cover this batch")]
    NotCovered,
    #[error("the batch attestation does not verify")]
    BadAttestation,
}

/// A job's verdict: the batch's ids and which credentials verify, or why the whole batch
/// is refused.
#[derive(Debug)]
pub struct Checked<C> {
    pub job: Job<C>,
    pub verdict: Result<(Vec<Hash32>, Vec<bool>), BatchRefused>,
}

/// The handle the service holds: the checker thread runs until it is dropped.
#[derive(Debug)]
pub struct Admission<C> {
    jobs: SyncSender<Job<C>>,
}

impl<C: Send + 'static> Admission<C> {
    /// Starts the checker thread; `deliver` gets each verdict, in the order jobs came.
    pub fn start(
        chain_id: ChainId,
        deliver: impl FnMut(Checked<C>) + Send + 'static,
    ) -> std::io::Result<Admission<C>> {
        let (jobs, queue) = mpsc::sync_channel(ADMISSION_QUEUE_MAX);
        std::thread::Builder::new()
            .name("halfveil-admission".to_owned())
            .spawn(move || run(&chain_id, &queue, deliver))?;
        Ok(Admission { jobs })
    }

    /// Queues a job; gives it back, refused, if the queue is full. `Err` if the checker
    /// thread is gone (it panicked): the node cannot admit anything any more.
    pub fn submit(&self, job: Job<C>) -> Result<Option<Job<C>>, CheckerGone> {
        match self.jobs.try_send(job) {
            Ok(()) => Ok(None),
            Err(TrySendError::Full(job)) => Ok(Some(job)),
            Err(TrySendError::Disconnected(_)) => Err(CheckerGone),
        }
    }
}

/// The admission thread has stopped.
#[derive(Debug)]
pub struct CheckerGone;

fn run<C>(chain_id: &ChainId, queue: &Receiver<Job<C>>, mut deliver: impl FnMut(Checked<C>)) {
    while let Ok(first) = queue.recv() {
        let mut jobs = vec![first];
        let mut signatures = jobs[0].batch.requests.len();
        while signatures < COMBINED_SIGNATURES_MAX {
            let Ok(job) = queue.try_recv() else {
                break;
            };
            signatures += job.batch.requests.len();
            jobs.push(job);
        }
        for checked in check_jobs(chain_id, jobs) {
            deliver(checked);
        }
    }
}

/// Checks every job: the shape of each attestation on its own, then every attestation
/// signature and every credential in one combined batch, and only if that fails each job
/// apart (its attestation alone, its credentials in a batch, then one by one).
pub fn check_jobs<C>(chain_id: &ChainId, jobs: Vec<Job<C>>) -> Vec<Checked<C>> {
    let shapes: Vec<Result<Shape, BatchRefused>> = jobs
        .iter()
        .map(|job| check_shape(chain_id, job.bank, &job.batch))
        .collect();
    let total = jobs.iter().map(|job| job.keys.len() + 1).sum();
    let mut combined = SignatureBatch::with_capacity(total);
    for (job_index, (job, shape)) in jobs.iter().zip(&shapes).enumerate() {
        let Ok(shape) = shape else {
            continue;
        };
        combined.push(
            (job_index, None),
            &job.bank_key,
            &shape.attestation_message,
            &job.batch.attestation.signature,
        );
        for (index, ((key, message), request)) in job
            .keys
            .iter()
            .zip(&shape.credential_messages)
            .zip(&job.batch.requests)
            .enumerate()
        {
            if let Some(key) = key {
                combined.push(
                    (job_index, Some(index)),
                    key,
                    message,
                    &request.tx_credential,
                );
            }
        }
    }
    let all_verify = combined.verify().is_ok();
    jobs.into_iter()
        .zip(shapes)
        .map(|(job, shape)| {
            let verdict = shape.and_then(|shape| {
                if all_verify {
                    let credential_ok = job.keys.iter().map(Option::is_some).collect();
                    return Ok((shape.ids, credential_ok));
                }
                crypto::verify(
                    &job.bank_key,
                    &shape.attestation_message,
                    &job.batch.attestation.signature,
                )
                .map_err(|_| BatchRefused::BadAttestation)?;
                let credential_ok =
                    verify_credentials(&job.keys, &shape.credential_messages, &job.batch.requests);
                Ok((shape.ids, credential_ok))
            });
            Checked { job, verdict }
        })
        .collect()
}

/// What a forwarded batch's signatures are over: each transfer's id and the message its
/// transaction credential signs, and the message of the payer-ok attestation.
struct Shape {
    ids: Vec<Hash32>,
    credential_messages: Vec<Hash32>,
    attestation_message: Hash32,
}

/// A forwarded batch's [`Shape`], if the attestation is by `bank` and covers exactly its ids
/// (its signature is checked by the caller).
fn check_shape(
    chain_id: &ChainId,
    bank: BankId,
    batch: &ForwardBatch,
) -> Result<Shape, BatchRefused> {
    let mut ids = Vec::with_capacity(batch.requests.len());
    let mut credential_messages = Vec::with_capacity(batch.requests.len());
    for request in &batch.requests {
        let id = request.transfer.id()?;
        credential_messages.push(transaction_credential_message(
            &id,
            &request.identity_credential,
        )?);
        ids.push(id);
    }
    let attestation = &batch.attestation;
    if attestation.kind != AttestationKind::PayerOk
        || attestation.bank != bank
        || attestation.ids != ids
    {
        return Err(BatchRefused::NotCovered);
    }
    let attestation_message =
        halfveil_ledger::attestation_message(chain_id, attestation.kind, bank, &ids)?;
    Ok(Shape {
        ids,
        credential_messages,
        attestation_message,
    })
}

/// One batch's credentials: one batch check, and one by one only if it fails, to find the
/// bad ones. ZIP-215 either way, so the answers agree.
fn verify_credentials(
    keys: &[Option<PublicKey>],
    messages: &[Hash32],
    requests: &[TransactionRequest],
) -> Vec<bool> {
    let mut batch = SignatureBatch::with_capacity(messages.len());
    for (index, ((key, id), request)) in keys.iter().zip(messages).zip(requests).enumerate() {
        if let Some(key) = key {
            batch.push(index, key, id, &request.tx_credential);
        }
    }
    if batch.verify().is_ok() {
        return keys.iter().map(Option::is_some).collect();
    }
    keys.iter()
        .zip(messages)
        .zip(requests)
        .map(|((key, id), request)| {
            key.as_ref()
                .is_some_and(|key| crypto::verify(key, id, &request.tx_credential).is_ok())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use halfveil_ledger::testkit::{TestAccount, TestChain};
    use halfveil_ledger::Signature;

    use super::*;

    fn chain() -> (TestChain, Vec<TestAccount>) {
        let mut chain = TestChain::new(7, 2, 0, 1);
        chain.seal_identity = false;
        let accounts = chain
            .fund_accounts(4, 1_000)
            .unwrap_or_else(|error| panic!("{error}"));
        (chain, accounts)
    }

    /// A batch of `count` transfers from the bank's accounts, attested by the bank.
    fn job(
        chain: &mut TestChain,
        accounts: &mut [TestAccount],
        bank: u16,
        count: usize,
    ) -> Job<usize> {
        let payee = accounts[0].id;
        let mut requests = Vec::new();
        let mut keys = Vec::new();
        for _ in 0..count {
            let payer = accounts
                .iter_mut()
                .filter(|account| account.bank == BankId(bank))
                .min_by_key(|account| account.next_nonce)
                .unwrap_or_else(|| panic!("no account at bank {bank}"));
            keys.push(Some(crypto::public_key(&payer.tx_key)));
            requests.push(chain.request(payer, &payee, 1));
        }
        let ids = requests
            .iter()
            .map(|request| {
                request
                    .transfer
                    .id()
                    .unwrap_or_else(|error| panic!("{error}"))
            })
            .collect();
        let attestation = chain.attest(AttestationKind::PayerOk, BankId(bank), ids);
        Job {
            bank: BankId(bank),
            bank_key: chain.params.bank_keys[usize::from(bank)],
            keys,
            batch: ForwardBatch {
                requests,
                attestation,
            },
            context: 0,
        }
    }

    #[test]
    fn good_batches_pass_together() {
        let (mut chain, mut accounts) = chain();
        let jobs = vec![
            job(&mut chain, &mut accounts, 0, 5),
            job(&mut chain, &mut accounts, 1, 7),
            job(&mut chain, &mut accounts, 0, 1),
        ];
        let checked = check_jobs(&chain.params.chain_id, jobs);
        let sizes: Vec<usize> = checked
            .iter()
            .map(|checked| match &checked.verdict {
                Ok((ids, ok)) => {
                    assert!(ok.iter().all(|ok| *ok));
                    assert_eq!(ids.len(), ok.len());
                    ids.len()
                }
                Err(message) => panic!("refused: {message}"),
            })
            .collect();
        assert_eq!(
            sizes,
            vec![5, 7, 1],
            "verdicts come in the order of the jobs"
        );
    }

    #[test]
    fn a_bad_credential_fails_only_itself() {
        let (mut chain, mut accounts) = chain();
        let mut bad = job(&mut chain, &mut accounts, 1, 4);
        bad.batch.requests[2].tx_credential = Signature([7; 64]);
        let mut unknown = job(&mut chain, &mut accounts, 0, 3);
        unknown.keys[0] = None;
        let jobs = vec![job(&mut chain, &mut accounts, 0, 3), bad, unknown];
        let checked = check_jobs(&chain.params.chain_id, jobs);
        let flags: Vec<Vec<bool>> = checked
            .into_iter()
            .map(|checked| {
                checked
                    .verdict
                    .unwrap_or_else(|message| panic!("refused: {message}"))
                    .1
            })
            .collect();
        assert_eq!(
            flags,
            vec![
                vec![true, true, true],
                vec![true, true, false, true],
                vec![false, true, true],
            ]
        );
    }

    #[test]
    fn a_wrong_attestation_refuses_its_batch_only() {
        let (mut chain, mut accounts) = chain();
        // Signed by bank 1 but forwarded as bank 0's.
        let mut forged = job(&mut chain, &mut accounts, 1, 2);
        forged.bank = BankId(0);
        forged.bank_key = chain.params.bank_keys[0];
        forged.batch.attestation.bank = BankId(0);
        let mut reordered = job(&mut chain, &mut accounts, 0, 3);
        reordered.batch.requests.swap(0, 1);
        let jobs = vec![forged, job(&mut chain, &mut accounts, 1, 2), reordered];
        let verdicts: Vec<Result<Vec<bool>, String>> = check_jobs(&chain.params.chain_id, jobs)
            .into_iter()
            .map(|checked| {
                checked
                    .verdict
                    .map(|(_, ok)| ok)
                    .map_err(|refused| refused.to_string())
            })
            .collect();
        assert_eq!(
            verdicts,
            vec![
                Err("the batch attestation does not verify".to_owned()),
                Ok(vec![true, true]),
                Err("the attestation does not cover this batch".to_owned()),
            ]
        );
    }

    #[test]
    fn the_thread_delivers_every_job_in_order() {
        let (mut chain, mut accounts) = chain();
        let (sender, verdicts) = mpsc::channel();
        let admission = Admission::start(chain.params.chain_id.clone(), move |checked| {
            let _ = sender.send((checked.job.context, checked.verdict.is_ok()));
        })
        .unwrap_or_else(|error| panic!("{error}"));
        for context in 0..20 {
            let mut job = job(&mut chain, &mut accounts, (context % 2) as u16, 3);
            job.context = context;
            if context == 13 {
                job.batch.attestation.signature = Signature([1; 64]);
            }
            assert!(matches!(admission.submit(job), Ok(None)), "queue full");
        }
        let got: Vec<(usize, bool)> = (0..20)
            .map(|_| {
                verdicts
                    .recv_timeout(Duration::from_secs(30))
                    .unwrap_or_else(|error| panic!("{error}"))
            })
            .collect();
        let want: Vec<(usize, bool)> = (0..20).map(|context| (context, context != 13)).collect();
        assert_eq!(got, want);
        drop(admission);
    }
}
