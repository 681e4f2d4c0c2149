//! Helpers shared by the integration tests: blocks made without `propose` (which refuses an
//! invalid body), so that `apply` is the one judging them.

#![allow(dead_code)]

use halfveil_ledger::apply::hash_ops;
use halfveil_ledger::codec;
use halfveil_ledger::crypto::{self, SigningKey};
use halfveil_ledger::hash::{merkle_root, Domain, Hash32};
use halfveil_ledger::testkit::TestChain;
use halfveil_ledger::{
    execute, BatchAttestation, Block, BlockHeader, IdentityCredential, Op, Signature, SignedHeader,
    TimeMs, TransactionRequest, VERSION,
};

/// A well-formed identity credential that only a quorum of holders could tell from a real
/// one (`apply` never opens credentials).
pub fn placeholder_credential(chain: &TestChain) -> IdentityCredential {
    halfveil_ledger::testkit::placeholder_credential(&chain.params.disclosure_key)
}

/// Signs the request's transfer id and identity credential with `key` (the transaction
/// credential).
pub fn sign_request(key: &SigningKey, request: &mut TransactionRequest) {
    let message = halfveil_ledger::transaction_credential_message(
        &request.transfer.id().unwrap(),
        &request.identity_credential,
    )
    .unwrap();
    request.tx_credential = crypto::sign(key, &message);
}

pub fn attestation_hashes(attestations: &[BatchAttestation]) -> Vec<Hash32> {
    attestations
        .iter()
        .map(|attestation| Domain::AttestationHash.hash(&codec::encode(attestation).unwrap()))
        .collect()
}

/// The next block of `chain` at `time` over any body, with honest roots, signed by the
/// validator. A valid body gets the right state root; an invalid one gets the current root
/// (`apply` judges the body before it compares roots).
pub fn forge(
    chain: &TestChain,
    time: TimeMs,
    attestations: Vec<BatchAttestation>,
    ops: Vec<Op>,
) -> Block {
    let height = chain.state.height.next().unwrap();
    let state_root = execute(
        &chain.params,
        &chain.state,
        height,
        time,
        &attestations,
        &ops,
    )
    .map_or_else(|_| chain.state.state_root(), |change| change.state_root);
    let header = BlockHeader {
        version: VERSION,
        chain_id: chain.params.chain_id.clone(),
        height,
        parent: chain.state.head_hash,
        time,
        op_root: merkle_root(&hash_ops(&ops).unwrap().0),
        attestation_root: merkle_root(&attestation_hashes(&attestations)),
        state_root,
        op_count: u32::try_from(ops.len()).unwrap(),
    };
    let mut block = Block {
        signed: SignedHeader {
            header,
            signer: crypto::public_key(&chain.validator),
            signature: Signature([0; 64]),
        },
        attestations,
        ops,
    };
    resign(chain, &mut block);
    block
}

/// The validator signs the header as it now reads.
pub fn resign(chain: &TestChain, block: &mut Block) {
    block.signed.signature = crypto::sign(&chain.validator, &block.header().hash().unwrap());
}

/// A rogue IM: recomputes the op and attestation roots and the op count over the (altered)
/// body and signs, keeping the header's state root.
pub fn reseal(chain: &TestChain, block: &mut Block) {
    let header = &mut block.signed.header;
    header.op_root = merkle_root(&hash_ops(&block.ops).unwrap().0);
    header.attestation_root = merkle_root(&attestation_hashes(&block.attestations));
    header.op_count = u32::try_from(block.ops.len()).unwrap();
    resign(chain, block);
}
