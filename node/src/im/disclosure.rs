//! Disclosure at the identity manager: it records orders and holders' share records on
//! chain. It opens nothing: identity credentials and records are encrypted to the threshold
//! disclosure key, and each holder sends its decryption shares to the requester, sealed.
//!
//! Both records are checked as a block will check them (so a refusal is immediate and
//! clear), plus what only a node can tell: the order's transfer is on this chain.

use halfveil_ledger::crypto;
use halfveil_ledger::disclosure_keys::KeyAdoption;
use halfveil_ledger::{
    AuditorId, ChainParams, CodecError, DisclosureOrder, Hash32, Height, Op, OrderOp, ShareRecord,
    State, TimeMs,
};
use halfveil_store::{RocksStore, Store, StoreError};
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::{AdminOp, AdminWaiter, ImRole, ADMIN_QUEUE_MAX};
use crate::clock::now_ms;
use crate::rpc::{codes, RpcFailure};
use crate::service::{Role, Service};

/// Why the IM refuses to record an order or a share record (the caller sees the text).
#[derive(Debug, thiserror::Error)]
pub enum DisclosureError {
    #[error("only the identity manager records disclosures")]
    NotIdentityManager,
    /// [`ADMIN_QUEUE_MAX`] operations already wait for a block.
    #[error("too many operations waiting; retry")]
    QueueFull,
    #[error("unsupported order version {0}")]
    Version(u8),
    #[error("the order is for chain {0}")]
    OtherChain(String),
    #[error("the order expired at {0} ms")]
    Expired(TimeMs),
    #[error("order {0} is already recorded")]
    AlreadyRecorded(Hash32),
    #[error("order {0} is not recorded on chain: record it first (halfveil audit order record)")]
    NotRecorded(Hash32),
    #[error("{signatures} auditor signatures, below the threshold of {threshold}")]
    BelowThreshold { signatures: usize, threshold: usize },
    #[error("too many signatures")]
    TooManySignatures,
    #[error("auditor {0} is not in genesis")]
    UnknownAuditor(AuditorId),
    #[error("auditor {0} signed twice")]
    SignedTwice(AuditorId),
    #[error("the signature of auditor {0} does not verify")]
    BadSignature(AuditorId),
    #[error("transfer {0} is not on the chain")]
    NotOnChain(Hash32),
    #[error("holder {0} is not a holder of the disclosure key")]
    UnknownHolder(u16),
    #[error("holder {0} already recorded its shares of this order")]
    ShareRecorded(u16),
    #[error("the share record's signature does not verify for holder {0}")]
    BadShareSignature(u16),
    #[error("another disclosure key adoption waits for its block; retry once it is on chain")]
    AdoptionWaiting,
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DisclosureError {
    fn failure(&self) -> RpcFailure {
        let code = match self {
            DisclosureError::NotIdentityManager => codes::WRONG_ROLE,
            DisclosureError::QueueFull => codes::OVERLOADED,
            DisclosureError::Store(_) => codes::INTERNAL,
            _ => codes::REFUSED,
        };
        RpcFailure::new(code, self.to_string())
    }
}

impl ImRole {
    /// Whether an op recording `key` (an order hash or a share record key) waits for a block.
    fn queued(&self, key: &Hash32) -> bool {
        self.admin.iter().any(|queued| match &queued.op {
            Op::DisclosureOrder(op) => op.order.hash().ok().as_ref() == Some(key),
            Op::DisclosureShare(record) => record
                .order
                .hash()
                .ok()
                .is_some_and(|order| ShareRecord::state_key(&order, record.holder) == *key),
            _ => false,
        })
    }

    fn room(&self) -> Result<(), DisclosureError> {
        if self.admin.len() >= ADMIN_QUEUE_MAX {
            return Err(DisclosureError::QueueFull);
        }
        Ok(())
    }
}

/// An order's version, chain and expiry against the IM's clock; its hash.
fn check_order(params: &ChainParams, order: &DisclosureOrder) -> Result<Hash32, DisclosureError> {
    if order.version != halfveil_ledger::VERSION {
        return Err(DisclosureError::Version(order.version));
    }
    if order.chain_id != params.chain_id {
        return Err(DisclosureError::OtherChain(order.chain_id.to_string()));
    }
    if order.expires_at <= now_ms() {
        return Err(DisclosureError::Expired(order.expires_at));
    }
    Ok(order.hash()?)
}

/// Checks the auditors' signatures of an order as a block will: at least the threshold and
/// at most [`halfveil_ledger::DISCLOSURE_SIGNERS_MAX`], each by a distinct auditor named in
/// genesis, each valid.
fn check_auditor_signatures(params: &ChainParams, op: &OrderOp) -> Result<(), DisclosureError> {
    let order_hash = op.order.hash()?;
    let threshold = usize::from(params.disclosure_threshold);
    if op.signatures.len() < threshold {
        return Err(DisclosureError::BelowThreshold {
            signatures: op.signatures.len(),
            threshold,
        });
    }
    if op.signatures.len() > halfveil_ledger::DISCLOSURE_SIGNERS_MAX {
        return Err(DisclosureError::TooManySignatures);
    }
    let mut seen = std::collections::HashSet::new();
    for signed in &op.signatures {
        let auditor = signed.auditor;
        let key = params
            .auditor_keys
            .get(usize::from(auditor.0))
            .ok_or(DisclosureError::UnknownAuditor(auditor))?;
        if !seen.insert(auditor) {
            return Err(DisclosureError::SignedTwice(auditor));
        }
        crypto::verify(key, &order_hash, &signed.signature)
            .map_err(|_| DisclosureError::BadSignature(auditor))?;
    }
    Ok(())
}

/// An order the IM can record: well formed, signed by a quorum, new, for a transfer on
/// this chain.
fn check_new_order(
    im: &ImRole,
    params: &ChainParams,
    state: &State,
    store: &RocksStore,
    op: &OrderOp,
) -> Result<(), DisclosureError> {
    im.room()?;
    let order_hash = check_order(params, &op.order)?;
    if state.order_served(&order_hash) || im.queued(&order_hash) {
        return Err(DisclosureError::AlreadyRecorded(order_hash));
    }
    check_auditor_signatures(params, op)?;
    if store.transfer_location(&op.order.transfer)?.is_none() {
        return Err(DisclosureError::NotOnChain(op.order.transfer));
    }
    Ok(())
}

/// A share record the IM can record: of a recorded order, by a holder, once, signed.
fn check_new_share(
    im: &ImRole,
    params: &ChainParams,
    state: &State,
    record: &ShareRecord,
) -> Result<(), DisclosureError> {
    im.room()?;
    let order_hash = check_order(params, &record.order)?;
    if !state.order_served(&order_hash) {
        return Err(DisclosureError::NotRecorded(order_hash));
    }
    let holder = record.holder;
    let signer = state
        .holder_signer(params, holder)
        .ok_or(DisclosureError::UnknownHolder(holder))?;
    let key = ShareRecord::state_key(&order_hash, holder);
    if state.order_served(&key) || im.queued(&key) {
        return Err(DisclosureError::ShareRecorded(holder));
    }
    let message = ShareRecord::message(&params.chain_id, &order_hash, holder, &record.sealed_hash)?;
    crypto::verify(signer, &message, &record.signature)
        .map_err(|_| DisclosureError::BadShareSignature(holder))?;
    Ok(())
}

impl Service {
    /// Records a disclosure order once it passes [`check_new_order`]; the caller hears the
    /// height of its block.
    pub fn im_record_order(
        &mut self,
        op: OrderOp,
        reply: oneshot::Sender<Result<Height, RpcFailure>>,
    ) {
        let transfer = op.order.transfer;
        let checked = |im: &ImRole, params: &ChainParams, state: &State, store: &RocksStore| {
            check_new_order(im, params, state, store, &op).map(|()| Op::DisclosureOrder(op.clone()))
        };
        if let Some((im, queued)) = self.im_record(checked, reply) {
            info!(%transfer, "disclosure order queued");
            im.admin.push_back(queued);
        }
    }

    /// Records a holder's share record once it passes [`check_new_share`].
    pub fn im_record_share(
        &mut self,
        record: ShareRecord,
        reply: oneshot::Sender<Result<Height, RpcFailure>>,
    ) {
        let holder = record.holder;
        let checked = |im: &ImRole, params: &ChainParams, state: &State, _: &RocksStore| {
            check_new_share(im, params, state, &record)
                .map(|()| Op::DisclosureShare(record.clone()))
        };
        if let Some((im, queued)) = self.im_record(checked, reply) {
            info!(holder, "share record queued");
            im.admin.push_back(queued);
        }
    }

    /// Records a disclosure key adoption; `apply`'s rules check it as the block is built
    /// (a refused adoption's caller hears the rule it broke). One waits at a time.
    pub fn im_adopt_key(
        &mut self,
        adoption: KeyAdoption,
        reply: oneshot::Sender<Result<Height, RpcFailure>>,
    ) {
        let epoch = adoption.held.key.epoch;
        let refresh = adoption.held.key.refresh;
        let checked = |im: &ImRole, _: &ChainParams, _: &State, _: &RocksStore| {
            im.room()?;
            if im
                .admin
                .iter()
                .any(|queued| matches!(queued.op, Op::AdoptKey(_)))
            {
                return Err(DisclosureError::AdoptionWaiting);
            }
            Ok(Op::AdoptKey(adoption))
        };
        if let Some((im, queued)) = self.im_record(checked, reply) {
            info!(epoch, refresh, "disclosure key adoption queued");
            im.admin.push_back(queued);
        }
    }

    /// The IM's part of recording: leading, the IM, and `check` passes; else the caller
    /// hears why. Returns the IM and the admin op to queue.
    fn im_record(
        &mut self,
        check: impl FnOnce(&ImRole, &ChainParams, &State, &RocksStore) -> Result<Op, DisclosureError>,
        reply: oneshot::Sender<Result<Height, RpcFailure>>,
    ) -> Option<(&mut ImRole, AdminOp)> {
        if let Some(failure) = self.im_not_leading_failure() {
            let _ = reply.send(Err(failure));
            return None;
        }
        let params = self.params.clone();
        let Role::IdentityManager(im) = &mut self.role else {
            let _ = reply.send(Err(DisclosureError::NotIdentityManager.failure()));
            return None;
        };
        match check(im, &params, &self.state, &self.store) {
            Ok(op) => Some((
                im,
                AdminOp {
                    op,
                    waiter: AdminWaiter::Rpc(reply),
                },
            )),
            Err(refused) => {
                warn!(%refused, "disclosure record refused");
                let _ = reply.send(Err(refused.failure()));
                None
            }
        }
    }
}
