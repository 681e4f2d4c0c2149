//! The identity manager's half of the service: admits forwarded batches, asks payee banks
//! for approval in batches, builds, signs and persists blocks, records account openings and
//! disclosure orders and shares, and tells payer banks about refusals.

mod disclosure;
mod install;
mod lifecycle;
mod replica;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::network::{Reply, RequestError};
use halfveil_consensus::builder::{self, Left, Origin};
use halfveil_consensus::guard::SignGuard;
use halfveil_consensus::pool::{Dropped, VerifiedBatch};
use halfveil_consensus::TransferPool;
use halfveil_ledger::apply::BLOCK_ATTESTATIONS_MAX;
use halfveil_ledger::build::Proposal;
use halfveil_ledger::crypto::{self, IdentityRecord, SigningKey};
use halfveil_ledger::fastmap::{HashMap, HashMapExt, HashSet, HashSetExt};
use halfveil_ledger::{
    AccountId, Amount, AttestationKind, BankId, BatchAttestation, Block, ChainId, CryptoError,
    Hash32, Height, Issue, Op, PublicKey, RejectCode, Rejecter, Rejection, TimeMs,
};
use halfveil_store::Store;
use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use crate::admission::{self, Admission};
use crate::clock::now_ms;
use crate::protocol::{
    sender_bank, ApprovalItemWire, CommittedAt, ForwardBatch, OpenAccountRequest, Request,
    Response, BATCH_TRANSFERS_MAX,
};
use crate::rpc::{codes, RpcFailure};
use crate::service::{Input, Role, Service, TransferState};

pub use replica::{ReplicaHalf, ReplicaInput, ServiceChain};

/// Most account openings, issues and disclosure records waiting for a block.
const ADMIN_QUEUE_MAX: usize = 10_000;
/// Most admin ops in one block.
const ADMIN_OPS_PER_BLOCK_MAX: usize = 1024;
/// Approval requests in flight to one bank at once.
const APPROVALS_IN_FLIGHT_MAX: usize = 2;
/// Blocks are built on the tick and when a round of approvals completes, but at least this
/// far apart, so fast rounds at low load do not multiply the per-block work.
const BLOCK_SPACING_MIN: std::time::Duration = std::time::Duration::from_millis(5);

/// Who waits for an admin op's block.
#[derive(Debug)]
enum AdminWaiter {
    Rpc(oneshot::Sender<Result<Height, RpcFailure>>),
    Peer(Reply, AccountId),
}

#[derive(Debug)]
struct AdminOp {
    op: Op,
    waiter: AdminWaiter,
}

/// What an admin op's caller waits on, carried through the block builder.
type AdminOrigin = AdminWaiter;

/// Ops the builder left out: a transfer is refused (signed, to its bank), an admin op's
/// caller hears why. Returns the transfers the pool dropped, for their banks.
fn im_refuse_left_out(
    pool: &mut TransferPool,
    refused: Vec<Left<AdminOrigin>>,
) -> Vec<(Dropped, Option<Rejection>)> {
    let mut dropped = Vec::new();
    for left in refused {
        warn!(reason = %left.reason, "op left out of the block");
        match left.origin {
            Origin::Transfer(id) => {
                if let Some(drop) = pool.reject(&id, RejectCode::Invalid, &left.reason) {
                    dropped.push((drop, None));
                }
            }
            Origin::Admin(waiter) => {
                let failure = RpcFailure::new(codes::REFUSED, left.reason);
                match waiter {
                    AdminWaiter::Rpc(reply) => {
                        let _ = reply.send(Err(failure));
                    }
                    AdminWaiter::Peer(..) => {}
                }
            }
        }
    }
    dropped
}

/// Inputs only the IM gets.
#[derive(Debug)]
pub enum ImInput {
    ForwardChecked {
        bank: BankId,
        batch: ForwardBatch,
        ids: Vec<Hash32>,
        credential_ok: Vec<bool>,
        channel: Reply,
    },
    ForwardRefused {
        channel: Reply,
        message: String,
    },
    ApprovalAnswer {
        bank: BankId,
        asked: Vec<Hash32>,
        result: Result<Response, RequestError>,
    },
}

/// The IM's state.
#[derive(Debug)]
pub struct ImRole {
    pub validator: SigningKey,
    pub pool: TransferPool,
    pub guard: SignGuard,
    admin: VecDeque<AdminOp>,
    approvals_in_flight: HashMap<BankId, usize>,
    block_waiters: HashMap<Height, Vec<AdminWaiter>>,
    /// When the last block was built: blocks are at least [`BLOCK_SPACING_MIN`] apart.
    last_block_at: Option<tokio::time::Instant>,
    /// A round of approvals completed too soon after the last block: build one as soon as
    /// the spacing allows rather than at the next tick.
    block_wanted: bool,
    /// The thread that checks forwarded batches, started by the first one.
    admission: Option<Admission<Reply>>,
    /// The transfers of blocks signed but not yet written (so not yet in the store's
    /// index), by height: a forward of one of them again is answered with where it is.
    unwritten: VecDeque<(Height, Vec<(Hash32, u32)>)>,
    /// A replica of a replicated IM: its raft node and its blocks in flight.
    pub replicated: ReplicaHalf,
}

impl ImRole {
    pub fn new(validator: SigningKey, pool: TransferPool, guard: SignGuard) -> ImRole {
        ImRole {
            validator,
            pool,
            guard,
            admin: VecDeque::new(),
            approvals_in_flight: HashMap::new(),
            block_waiters: HashMap::new(),
            last_block_at: None,
            block_wanted: false,
            admission: None,
            unwritten: VecDeque::new(),
            replicated: ReplicaHalf::default(),
        }
    }

    /// Where `id` is, if a block signed but not yet written holds it.
    fn unwritten_location(&self, id: &Hash32) -> Option<CommittedAt> {
        self.unwritten.iter().find_map(|(height, transfers)| {
            transfers
                .iter()
                .find(|(transfer, _)| transfer == id)
                .map(|(_, index)| CommittedAt {
                    id: *id,
                    height: *height,
                    index: *index,
                })
        })
    }

    pub fn track(&self, id: &Hash32) -> TransferState {
        if self.pool.contains(id) {
            TransferState::Pending
        } else {
            TransferState::Unknown
        }
    }
}

/// Why the IM refuses an account opening a bank relays (the bank sees the text).
#[derive(Debug, thiserror::Error)]
pub enum OpeningRefused {
    #[error("the account's bank is not the bank that relays it")]
    OtherBank,
    /// On chain, or already queued for a block.
    #[error("the account already exists")]
    Exists,
    #[error("too many operations waiting; retry")]
    QueueFull,
    /// Not a valid ciphertext to the disclosure key for this account.
    #[error(
        "the identity record is not sealed to this chain's disclosure key for this account: {0}"
    )]
    BadRecord(#[source] CryptoError),
    /// The identity key beside the record is weak or its proof does not verify.
    #[error("the identity key's proof of possession does not verify: {0}")]
    BadPossession(#[source] CryptoError),
}

fn error_response(code: RejectCode, message: impl Into<String>) -> Response {
    Response::Error {
        code,
        message: message.into(),
    }
}

impl Service {
    fn im(&mut self) -> Option<&mut ImRole> {
        match &mut self.role {
            Role::IdentityManager(im) => Some(im),
            Role::Bank(_) => None,
        }
    }

    /// A bank forwards a batch: check its shape, then queue it for the admission thread,
    /// which verifies the attestation and every credential off the executor.
    pub async fn im_on_forward(&mut self, peer: PeerId, batch: ForwardBatch, channel: Reply) {
        if let Some(not_leading) = self.im_not_leading() {
            self.net.respond(channel, not_leading).await;
            return;
        }
        let bank = match self.im_check_forward(&peer, &batch) {
            Ok(bank) => bank,
            Err(refusal) => {
                self.net.respond(channel, refusal).await;
                return;
            }
        };
        let Some(job) = self.im_admission_job(bank, batch, channel) else {
            return;
        };
        if let Some(job) = self.im_submit(job) {
            self.metrics.queue_full.inc();
            self.net
                .respond(
                    job.context,
                    error_response(
                        RejectCode::Overloaded,
                        "the identity manager is busy; retry",
                    ),
                )
                .await;
        }
    }

    /// The bank that forwards a batch, or the answer that refuses it: only banks forward,
    /// a batch holds 1 to [`BATCH_TRANSFERS_MAX`] transfers, and a full pool takes none.
    fn im_check_forward(
        &mut self,
        peer: &PeerId,
        batch: &ForwardBatch,
    ) -> Result<BankId, Response> {
        let Some(bank) = sender_bank(self.bank_peers(), peer) else {
            return Err(error_response(
                RejectCode::Invalid,
                "only banks forward transfers",
            ));
        };
        let pending_max = self.im().map_or(0, |im| im.pool.len());
        if batch.requests.is_empty() || batch.requests.len() > BATCH_TRANSFERS_MAX {
            return Err(error_response(
                RejectCode::Invalid,
                "batch size out of bounds",
            ));
        }
        if pending_max >= crate::POOL_PENDING_MAX {
            self.metrics.queue_full.inc();
            return Err(error_response(
                RejectCode::Overloaded,
                "the identity manager is full; retry",
            ));
        }
        Ok(bank)
    }

    /// The admission thread's job for a batch: the bank's attestation key and each payer's
    /// transaction key as the state holds them now. `None` for a bank genesis does not name.
    fn im_admission_job(
        &self,
        bank: BankId,
        batch: ForwardBatch,
        channel: Reply,
    ) -> Option<admission::Job<Reply>> {
        let bank_key = self.params.bank_key(bank).copied()?;
        let keys: Vec<Option<PublicKey>> = batch
            .requests
            .iter()
            .map(|request| {
                self.state
                    .account(&request.transfer.payer)
                    .map(|account| account.tx_key)
            })
            .collect();
        Some(admission::Job {
            bank,
            bank_key,
            keys,
            batch,
            context: channel,
        })
    }

    /// Queues `job` for the admission thread, starting the thread first if it is not
    /// running; returns the job if the queue is full (or the thread cannot start). Exits
    /// the process if the thread has stopped.
    fn im_submit(&mut self, job: admission::Job<Reply>) -> Option<admission::Job<Reply>> {
        let chain_id = self.params.chain_id.clone();
        let inputs = self.inputs.clone();
        let Role::IdentityManager(im) = &mut self.role else {
            return None;
        };
        if im.admission.is_none() {
            match start_admission(chain_id, inputs) {
                Ok(started) => im.admission = Some(started),
                Err(error) => warn!(%error, "cannot start the admission thread"),
            }
        }
        let refused = match &im.admission {
            Some(admission) => admission.submit(job),
            None => Ok(Some(job)),
        };
        let Ok(refused) = refused else {
            // A critical thread: without it nothing is ever admitted again.
            self.metrics.live.set(0);
            error!("fatal: the admission thread stopped; exiting");
            std::process::exit(1);
        };
        refused
    }

    pub async fn on_im_input(&mut self, input: ImInput) {
        match input {
            ImInput::ForwardRefused { channel, message } => {
                warn!(%message, "forwarded batch refused");
                self.net
                    .respond(channel, error_response(RejectCode::Invalid, message))
                    .await;
            }
            ImInput::ForwardChecked {
                bank,
                batch,
                ids,
                credential_ok,
                channel,
            } => {
                self.im_admit(bank, batch, ids, credential_ok, channel)
                    .await
            }
            ImInput::ApprovalAnswer {
                bank,
                asked,
                result,
            } => self.im_on_approval(bank, asked, result).await,
        }
    }

    async fn im_admit(
        &mut self,
        bank: BankId,
        batch: ForwardBatch,
        ids: Vec<Hash32>,
        credential_ok: Vec<bool>,
        channel: Reply,
    ) {
        let now = now_ms();
        let params = self.params.clone();
        let Role::IdentityManager(im) = &mut self.role else {
            return;
        };
        let admission = im.pool.admit(
            &params,
            &self.state,
            now,
            VerifiedBatch {
                bank,
                attestation: batch.attestation,
                requests: batch.requests,
                ids,
                credential_ok,
            },
        );
        let mut rejected = Vec::with_capacity(admission.rejected.len());
        for (id, code, detail) in &admission.rejected {
            if let Ok(rejection) = Rejection::sign(
                &params.chain_id,
                *id,
                Rejecter::IdentityManager,
                *code,
                detail,
                &im.validator,
            ) {
                rejected.push(rejection);
            }
        }
        self.metrics
            .transfers_rejected
            .inc_by(rejected.len() as u64);
        self.metrics
            .pool_pending
            .set(i64::try_from(im.pool.len()).unwrap_or(i64::MAX));
        debug!(
            accepted = admission.accepted.len(),
            rejected = rejected.len(),
            "batch admitted"
        );
        let replayed: Vec<Hash32> = admission
            .rejected
            .iter()
            // A committed transfer forwarded again fails the replay rule, or the expiry
            // rule once it has expired (checked first): either may be the very transfer.
            .filter(|(_, code, _)| matches!(code, RejectCode::Replay | RejectCode::Expired))
            .map(|(id, _, _)| *id)
            .collect();
        if replayed.is_empty() {
            let response = Response::Forwarded {
                rejected,
                committed: Vec::new(),
            };
            self.net.respond(channel, response).await;
        } else {
            self.im_answer_replays(replayed, rejected, channel);
        }
        self.im_ask_approvals();
    }

    /// A forward refused for replay or expiry: if it is the very transfer that
    /// committed (a bank forwarding again what it never heard about), the answer is where it
    /// committed, never a refusal, which the bank would take as final. Looked up in the
    /// blocks not yet written, then in the store's transfer index (off the executor).
    fn im_answer_replays(
        &mut self,
        replayed: Vec<Hash32>,
        mut rejected: Vec<Rejection>,
        channel: Reply,
    ) {
        let Role::IdentityManager(im) = &self.role else {
            return;
        };
        let mut committed: Vec<CommittedAt> = Vec::new();
        let mut to_look_up = Vec::new();
        for id in replayed {
            match im.unwritten_location(&id) {
                Some(at) => committed.push(at),
                None => to_look_up.push(id),
            }
        }
        let store = Arc::clone(&self.store);
        let net = self.net.clone();
        tokio::spawn(async move {
            let found = tokio::task::spawn_blocking(move || {
                to_look_up
                    .into_iter()
                    .filter_map(|id| match store.transfer_location(&id) {
                        Ok(Some(location)) => Some(CommittedAt {
                            id,
                            height: location.height,
                            index: location.index,
                        }),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            committed.extend(found);
            rejected.retain(|rejection| committed.iter().all(|at| at.id != rejection.transfer));
            let response = Response::Forwarded {
                rejected,
                committed,
            };
            net.respond(channel, response).await;
        });
    }

    /// Sends each payee bank the approvals it has not been asked for yet, in batches.
    fn im_ask_approvals(&mut self) {
        let net = self.net.clone();
        let inputs = self.inputs.clone();
        let Role::IdentityManager(im) = &mut self.role else {
            return;
        };
        for bank in im.pool.banks_to_ask() {
            let in_flight = im.approvals_in_flight.entry(bank).or_default();
            if *in_flight >= APPROVALS_IN_FLIGHT_MAX {
                continue;
            }
            let Some(peer) = self.genesis.bank_peer_ids.get(usize::from(bank.0)).copied() else {
                continue;
            };
            let items = im.pool.take_approvals(bank, BATCH_TRANSFERS_MAX);
            if items.is_empty() {
                continue;
            }
            *in_flight += 1;
            let asked: Vec<Hash32> = items.iter().map(|item| item.id).collect();
            let wire = items
                .into_iter()
                .map(|item| ApprovalItemWire {
                    id: item.id,
                    payee: item.payee,
                    amount: item.amount,
                })
                .collect();
            let net = net.clone();
            let inputs = inputs.clone();
            tokio::spawn(async move {
                let result = net.request(peer, Request::Approve(wire)).await;
                let _ = inputs
                    .send(Input::Im(ImInput::ApprovalAnswer {
                        bank,
                        asked,
                        result,
                    }))
                    .await;
            });
        }
    }

    /// A payee bank answered (or did not): the approved transfers become ready, the refused
    /// and the unanswered ones are dropped and their payer banks told; then the next block
    /// and the next approvals.
    async fn im_on_approval(
        &mut self,
        bank: BankId,
        asked: Vec<Hash32>,
        result: Result<Response, RequestError>,
    ) {
        let chain_id = self.params.chain_id.clone();
        let bank_key = self.params.bank_key(bank).copied();
        let Role::IdentityManager(im) = &mut self.role else {
            return;
        };
        if let Some(in_flight) = im.approvals_in_flight.get_mut(&bank) {
            *in_flight = in_flight.saturating_sub(1);
        }
        let mut dropped: Vec<(Dropped, Option<Rejection>)> = Vec::new();
        let answered = match (result, bank_key) {
            (
                Ok(Response::Approval {
                    attestation,
                    refused,
                }),
                Some(bank_key),
            ) => {
                let mut checked =
                    check_approval(&chain_id, bank, &bank_key, &asked, attestation, refused);
                for drop in im
                    .pool
                    .approved(bank, checked.attestation, &checked.refusals)
                {
                    let original = checked.signed.remove(&drop.id);
                    dropped.push((drop, original));
                }
                checked.answered
            }
            (Ok(other), _) => {
                warn!(?bank, answer = ?std::mem::discriminant(&other), "unexpected approval answer");
                HashSet::new()
            }
            (Err(error), _) => {
                warn!(?bank, %error, "approval request failed");
                HashSet::new()
            }
        };
        let missing: Vec<Hash32> = asked
            .into_iter()
            .filter(|id| !answered.contains(id))
            .collect();
        for drop in im
            .pool
            .approval_failed(&missing, "the payee's bank did not answer")
        {
            dropped.push((drop, None));
        }
        self.im_notify_dropped(dropped);
        self.im_build_if_round_done();
        self.im_ask_approvals();
    }

    /// The last answer of a round of approvals: build the block now rather than at the
    /// next tick (up to 10 ms later), or as soon as the spacing allows.
    fn im_build_if_round_done(&mut self) {
        let round_done = match &self.role {
            Role::IdentityManager(im) => im.approvals_in_flight.values().all(|count| *count == 0),
            Role::Bank(_) => false,
        };
        if round_done && !self.stopping && self.can_queue_write() {
            if self.im_block_due() {
                self.im_produce_block(now_ms());
            } else if let Role::IdentityManager(im) = &mut self.role {
                // Waiting for the tick would add up to a tick (10 ms), depending only on
                // how the tick falls against the payers' rounds.
                im.block_wanted = true;
            }
        }
    }

    /// Tells each payer bank which of its transfers were refused after acceptance.
    fn im_notify_dropped(&mut self, dropped: Vec<(Dropped, Option<Rejection>)>) {
        if dropped.is_empty() {
            return;
        }
        let chain_id = self.params.chain_id.clone();
        let Role::IdentityManager(im) = &mut self.role else {
            return;
        };
        self.metrics
            .pool_pending
            .set(i64::try_from(im.pool.len()).unwrap_or(i64::MAX));
        let mut by_bank: BTreeMap<BankId, Vec<Rejection>> = BTreeMap::new();
        for (drop, original) in dropped {
            let rejection = match original {
                Some(rejection) => rejection,
                None => match Rejection::sign(
                    &chain_id,
                    drop.id,
                    Rejecter::IdentityManager,
                    drop.code,
                    &drop.detail,
                    &im.validator,
                ) {
                    Ok(rejection) => rejection,
                    Err(_) => continue,
                },
            };
            by_bank.entry(drop.payer_bank).or_default().push(rejection);
        }
        for (bank, rejections) in by_bank {
            self.metrics
                .transfers_rejected
                .inc_by(rejections.len() as u64);
            let Some(peer) = self.genesis.bank_peer_ids.get(usize::from(bank.0)).copied() else {
                continue;
            };
            let net = self.net.clone();
            tokio::spawn(async move {
                if let Err(error) = net.request(peer, Request::Rejected(rejections)).await {
                    warn!(%error, "cannot tell a bank about refused transfers");
                }
            });
        }
    }

    pub async fn im_tick(&mut self) {
        let now = now_ms();
        let expired = match &mut self.role {
            Role::IdentityManager(im) => im.pool.expire(now),
            Role::Bank(_) => return,
        };
        self.im_notify_dropped(expired.into_iter().map(|drop| (drop, None)).collect());
        self.im_ask_approvals();
        self.im_build_if_due(now);
    }

    /// Builds a block if the writer has room and the spacing allows.
    fn im_build_if_due(&mut self, now: TimeMs) {
        if self.can_queue_write() && self.im_block_due() {
            self.im_produce_block(now);
        }
    }

    /// When the service should wake to build a wanted block (see `ImRole::block_wanted`).
    pub fn im_wake_at(&self) -> Option<tokio::time::Instant> {
        match &self.role {
            Role::IdentityManager(im) if im.block_wanted => Some(
                im.last_block_at
                    .map_or_else(tokio::time::Instant::now, |at| at + BLOCK_SPACING_MIN),
            ),
            _ => None,
        }
    }

    /// The wanted block's time has come.
    pub fn im_wake(&mut self) {
        if let Role::IdentityManager(im) = &mut self.role {
            im.block_wanted = false;
        }
        if !self.stopping {
            self.im_build_if_due(now_ms());
        }
    }

    /// Whether the last block is at least [`BLOCK_SPACING_MIN`] old.
    fn im_block_due(&self) -> bool {
        if !self.im_may_build() {
            return false;
        }
        match &self.role {
            Role::IdentityManager(im) => im
                .last_block_at
                .is_none_or(|at| at.elapsed() >= BLOCK_SPACING_MIN),
            Role::Bank(_) => false,
        }
    }

    /// Builds the next block from the admin queue and the approved transfers
    /// (`halfveil_consensus::builder`), signs it (guarded), applies it in memory and queues
    /// its synced write.
    fn im_produce_block(&mut self, now: TimeMs) {
        let params = self.params.clone();
        let ops_max = usize::try_from(params.limits.block_ops_max).unwrap_or(usize::MAX);
        let Role::IdentityManager(im) = &mut self.role else {
            return;
        };
        im.block_wanted = false;
        if im.pool.ready_len() == 0 && im.admin.is_empty() {
            return;
        }
        let admin_count = im.admin.len().min(ADMIN_OPS_PER_BLOCK_MAX).min(ops_max);
        let admin: Vec<_> = im
            .admin
            .drain(..admin_count)
            .map(|admin| (admin.op, Origin::Admin(admin.waiter)))
            .collect();
        let draft = im.pool.draft(ops_max - admin_count, BLOCK_ATTESTATIONS_MAX);
        let transfers = draft.ops.into_iter().zip(draft.ids);
        let candidates: Vec<_> = admin
            .into_iter()
            .chain(transfers.map(|(op, id)| (op, Origin::Transfer(id))))
            .collect();
        let time = TimeMs(now.0.max(self.state.time.0 + 1));
        let outcome = builder::build(&params, &self.state, time, draft.attestations, candidates);
        if !outcome.returned.is_empty() {
            warn!(
                returned = outcome.returned.len(),
                "block too large as a whole; transfers returned to the pool"
            );
            im.pool.undraft(&outcome.returned);
        }
        let dropped = im_refuse_left_out(&mut im.pool, outcome.refused);
        let replicated =
            matches!(&self.role, Role::IdentityManager(im) if im.replicated.replica.is_some());
        match outcome.proposal {
            Some(proposal) if replicated => self.replica_propose(proposal, outcome.included),
            Some(proposal) => self.im_sign_and_write(proposal, outcome.included),
            None => debug!("no block built"),
        }
        self.im_notify_dropped(dropped);
    }

    /// Signs a built block (if the guard allows its height), applies it in memory and queues
    /// its synced write; `included` says where each of its ops came from.
    fn im_sign_and_write(&mut self, proposal: Proposal, included: Vec<Origin<AdminOrigin>>) {
        let Role::IdentityManager(im) = &mut self.role else {
            return;
        };
        let (transfer_ids, waiters) = replica::split_origins(included);
        let height = proposal.header.height;
        if let Err(error) = im.guard.check(height) {
            warn!(%error, "not signing");
            im.pool.undraft(&transfer_ids);
            return;
        }
        let (block, change) = match proposal.sign(&im.validator) {
            Ok(signed) => signed,
            Err(error) => {
                warn!(%error, "cannot sign the block");
                im.pool.undraft(&transfer_ids);
                return;
            }
        };
        let Ok(hash) = block.header().hash() else {
            return;
        };
        im.guard.signed(height);
        im.pool.committed(&transfer_ids);
        im.block_waiters.insert(height, waiters);
        self.metrics
            .pool_pending
            .set(i64::try_from(im.pool.len()).unwrap_or(i64::MAX));
        im.last_block_at = Some(tokio::time::Instant::now());
        im.unwritten.push_back((height, change.transfers.clone()));
        self.state.commit(&change, hash);
        debug!(%height, ops = block.ops.len(), "block built");
        self.queue_write(Arc::new(block), None, hash, change, Some(height));
    }

    /// The block is on disk: publish it and answer whoever waited for it.
    /// `encoded` is the block's canonical bytes, as the writer stored them.
    pub async fn im_on_written(&mut self, block: Arc<Block>, encoded: Vec<u8>) {
        self.net.publish_block(encoded).await;
        let height = block.height();
        let Role::IdentityManager(im) = &mut self.role else {
            return;
        };
        im.unwritten.retain(|(unwritten, _)| *unwritten > height);
        let waiters = im.block_waiters.remove(&height).unwrap_or_default();
        for waiter in waiters {
            self.answer_admin_waiter(waiter, Ok(height)).await;
        }
        self.replica_written(height);
        if height.0.is_multiple_of(1000) {
            info!(%height, "block stored");
        }
    }

    /// The operator issues currency into an account.
    pub fn im_issue(
        &mut self,
        to: AccountId,
        amount: u64,
        reference: u64,
        reply: oneshot::Sender<Result<Height, RpcFailure>>,
    ) {
        if let Some(failure) = self.im_not_leading_failure() {
            let _ = reply.send(Err(failure));
            return;
        }
        let Role::IdentityManager(im) = &mut self.role else {
            let _ = reply.send(Err(RpcFailure::new(
                codes::WRONG_ROLE,
                "only the identity manager issues currency",
            )));
            return;
        };
        if im.admin.len() >= ADMIN_QUEUE_MAX {
            let _ = reply.send(Err(RpcFailure::new(
                codes::OVERLOADED,
                "too many operations waiting; retry",
            )));
            return;
        }
        if self.state.account(&to).is_none() {
            let _ = reply.send(Err(RpcFailure::new(
                codes::REFUSED,
                format!("unknown account {to}"),
            )));
            return;
        }
        im.admin.push_back(AdminOp {
            op: Op::Issue(Issue {
                to,
                amount: Amount(amount),
                reference,
            }),
            waiter: AdminWaiter::Rpc(reply),
        });
    }

    /// A bank relays an account opening: check it comes from the account's bank, is new, and
    /// carries an identity record sealed to the disclosure key for this account (the IM
    /// cannot read it either), and queue the op.
    pub async fn im_on_open_account(
        &mut self,
        peer: PeerId,
        open: OpenAccountRequest,
        channel: Reply,
    ) {
        if let Some(not_leading) = self.im_not_leading() {
            self.net.respond(channel, not_leading).await;
            return;
        }
        let refuse = |message: &str| error_response(RejectCode::Invalid, message);
        let Some(bank) = sender_bank(self.bank_peers(), &peer) else {
            self.net
                .respond(channel, refuse("only banks open accounts"))
                .await;
            return;
        };
        let params = self.params.clone();
        let exists = self.state.account(&open.op.account).is_some();
        let disclosure_key = self.state.disclosure_key().clone();
        let Role::IdentityManager(im) = &mut self.role else {
            self.net
                .respond(channel, refuse("not the identity manager"))
                .await;
            return;
        };
        let checked = (|| {
            if open.op.bank != bank {
                return Err(OpeningRefused::OtherBank);
            }
            if exists || im.admin.iter().any(|queued| matches!(&queued.op, Op::OpenAccount(other) if other.account == open.op.account)) {
                return Err(OpeningRefused::Exists);
            }
            if im.admin.len() >= ADMIN_QUEUE_MAX {
                return Err(OpeningRefused::QueueFull);
            }
            open.identity
                .check(&params.chain_id, &open.op.account)
                .map_err(OpeningRefused::BadPossession)?;
            IdentityRecord::check(
                &open.op.identity_record,
                &disclosure_key,
                &params.chain_id,
                &open.op.account,
            )
            .map_err(OpeningRefused::BadRecord)
        })();
        if let Err(refused) = checked {
            self.net
                .respond(channel, refuse(&refused.to_string()))
                .await;
            return;
        }
        let account = open.op.account;
        im.admin.push_back(AdminOp {
            op: Op::OpenAccount(open.op),
            waiter: AdminWaiter::Peer(channel, account),
        });
    }
}

/// Starts the thread that checks forwarded batches; its verdicts go straight to the
/// service's input queue.
fn start_admission(
    chain_id: ChainId,
    inputs: mpsc::Sender<Input>,
) -> std::io::Result<Admission<Reply>> {
    Admission::start(chain_id, move |checked| {
        let admission::Checked { job, verdict } = checked;
        let input = match verdict {
            Ok((ids, credential_ok)) => ImInput::ForwardChecked {
                bank: job.bank,
                batch: job.batch,
                ids,
                credential_ok,
                channel: job.context,
            },
            Err(refused) => ImInput::ForwardRefused {
                channel: job.context,
                message: refused.to_string(),
            },
        };
        let _ = inputs.blocking_send(Input::Im(input));
    })
}

/// What of a payee bank's approval answer verifies: its attestation, if it is a payee-ok by
/// this bank over transfers it was asked about, signed by it; and its refusals signed by it of
/// transfers it was asked about, the first answer for each transfer counting.
#[derive(Debug)]
struct CheckedApproval {
    attestation: Option<BatchAttestation>,
    /// The refused transfers, as the pool takes them.
    refusals: Vec<(Hash32, RejectCode, String)>,
    /// The bank's signed refusals by transfer, passed on to the payer banks as they are.
    signed: HashMap<Hash32, Rejection>,
    /// The transfers approved or refused.
    answered: HashSet<Hash32>,
}

/// Keeps of `bank`'s answer to `asked` what verifies (see [`CheckedApproval`]).
fn check_approval(
    chain_id: &ChainId,
    bank: BankId,
    bank_key: &PublicKey,
    asked: &[Hash32],
    attestation: Option<BatchAttestation>,
    refused: Vec<Rejection>,
) -> CheckedApproval {
    let asked_set: HashSet<Hash32> = asked.iter().copied().collect();
    let mut answered = HashSet::new();
    let attestation = attestation.filter(|attestation| {
        attestation.kind == AttestationKind::PayeeOk
            && attestation.bank == bank
            && attestation.ids.iter().all(|id| asked_set.contains(id))
            && halfveil_ledger::attestation_message(
                chain_id,
                attestation.kind,
                bank,
                &attestation.ids,
            )
            .ok()
            .is_some_and(|message| {
                crypto::verify(bank_key, &message, &attestation.signature).is_ok()
            })
    });
    if let Some(attestation) = &attestation {
        answered.extend(attestation.ids.iter().copied());
    }
    let mut refusals = Vec::new();
    let mut signed: HashMap<Hash32, Rejection> = HashMap::new();
    for rejection in refused {
        let valid = rejection.by == Rejecter::Bank(bank)
            && asked_set.contains(&rejection.transfer)
            && rejection.verify(chain_id, bank_key).is_ok();
        if valid && answered.insert(rejection.transfer) {
            refusals.push((rejection.transfer, rejection.code, rejection.detail.clone()));
            signed.insert(rejection.transfer, rejection);
        }
    }
    CheckedApproval {
        attestation,
        refusals,
        signed,
        answered,
    }
}
