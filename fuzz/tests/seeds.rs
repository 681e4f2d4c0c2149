//! The seeds are what they claim: valid inputs each target's decoder accepts (so fuzzing
//! starts past the first check), and `apply` seeds with the outcome they are named for.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use futures::executor::block_on;
use futures::io::Cursor;
use halfveil_fuzz::apply::{run, Outcome};
use halfveil_fuzz::decoders::{ORDER_BYTES_MAX, RECEIPT_BYTES_MAX, REJECTION_BYTES_MAX};
use halfveil_fuzz::seeds::{apply_cases, seeds};
use halfveil_fuzz::sigbatch::{items, zebra_verdict};
use halfveil_fuzz::world::world;
use halfveil_genesis::file::Genesis;
use halfveil_genesis::keystore::{self, FileKind};
use halfveil_ledger::crypto::{Envelope, IdentityRecord, ENVELOPE_BYTES_MAX};
use halfveil_ledger::{codec, Block, DisclosureOrder, Op, Receipt, Rejection, TransactionRequest};
use halfveil_node::config::Config;
use halfveil_node::links::{read_frame, read_framed};
use halfveil_node::protocol::{Request, Response, MESSAGE_BYTES_MAX};
use halfveil_node::replica::{RaftRequest, RaftResponse, RAFT_BYTES_MAX};

/// Whether the decoder behind `target` accepts `bytes` (and, where it can, verifies them).
fn accepted(target: &str, name: &str, bytes: &[u8]) -> bool {
    let world = world();
    match target {
        "envelope" if name == "plaintext" => {
            codec::decode::<TransactionRequest>(bytes, ENVELOPE_BYTES_MAX).is_ok()
        }
        "envelope" => Envelope::decode(bytes).is_ok_and(|envelope| {
            let opened = envelope.open(&world.business_key, &world.params.chain_id, envelope.bank);
            opened.is_ok() || name == "other-bank"
        }),
        "block" => Block::decode(bytes).is_ok(),
        "transfer" => {
            codec::decode::<TransactionRequest>(bytes, ENVELOPE_BYTES_MAX).is_ok()
                || codec::decode::<halfveil_ledger::Transfer>(bytes, ENVELOPE_BYTES_MAX).is_ok()
        }
        "op" => codec::decode::<Op>(bytes, 1 << 20).is_ok(),
        "rejection" => codec::decode::<Rejection>(bytes, REJECTION_BYTES_MAX).is_ok_and(|r| {
            let chain = &world.params.chain_id;
            r.verify_by(chain, &world.params.validator_keys, &world.params.bank_keys)
                .is_ok()
        }),
        "receipt" => codec::decode::<Receipt>(bytes, RECEIPT_BYTES_MAX)
            .is_ok_and(|receipt| receipt.verify(&world.params.validator_keys).is_ok()),
        "disclosure_order" => codec::decode::<DisclosureOrder>(bytes, ORDER_BYTES_MAX).is_ok(),
        "identity_record" => codec::decode::<IdentityRecord>(bytes, 1024).is_ok(),
        "disclosure_shares" => {
            codec::decode::<halfveil_ledger::DisclosureShares>(bytes, 1024).is_ok()
                || codec::decode::<halfveil_ledger::threshold::tdh2::Capsule>(bytes, 1024).is_ok()
        }
        "text_ids" => std::str::from_utf8(bytes).is_ok(),
        "genesis" => Genesis::parse(bytes).is_ok(),
        "config" => Config::parse(std::str::from_utf8(bytes).unwrap()).is_ok(),
        "key_file" => {
            keystore::parse("seed", bytes, FileKind::ValidatorKey).is_ok()
                || keystore::parse("seed", bytes, FileKind::Wallet).is_ok()
                || keystore::parse_node_key("seed", bytes).is_ok()
        }
        "node_request" => codec::decode::<Request>(bytes, MESSAGE_BYTES_MAX).is_ok(),
        "node_response" => codec::decode::<Response>(bytes, MESSAGE_BYTES_MAX).is_ok(),
        "link_frame" => {
            let mut cursor = Cursor::new(bytes);
            let mut buffer = Vec::new();
            let mut frames = 0;
            while let Ok(Some(_)) = block_on(read_frame(&mut cursor, &mut buffer)) {
                frames += 1;
            }
            frames > 0 && cursor.position() as usize == bytes.len()
        }
        "raft_frame" => {
            let mut cursor = Cursor::new(&bytes[1..]);
            let mut buffer = Vec::new();
            let mut frames = 0;
            loop {
                let read = if bytes[0] == 0 {
                    block_on(read_framed::<RaftRequest, _>(
                        &mut cursor,
                        &mut buffer,
                        RAFT_BYTES_MAX,
                    ))
                    .map(|frame| frame.is_some())
                } else {
                    block_on(read_framed::<RaftResponse, _>(
                        &mut cursor,
                        &mut buffer,
                        RAFT_BYTES_MAX,
                    ))
                    .map(|frame| frame.is_some())
                };
                match read {
                    Ok(true) => frames += 1,
                    _ => break,
                }
            }
            frames > 1 && cursor.position() as usize == bytes.len() - 1
        }
        "sigbatch_differential" => !items(bytes).is_empty(),
        "apply" => true,
        other => panic!("no check for seeds of {other}"),
    }
}

#[test]
fn every_target_has_seeds_its_decoder_accepts() {
    let seeds = seeds();
    for (target, function) in halfveil_fuzz::TARGETS {
        let mine: Vec<_> = seeds.iter().filter(|seed| seed.target == *target).collect();
        assert!(!mine.is_empty(), "no seeds for {target}");
        for seed in mine {
            assert!(
                accepted(target, &seed.name, &seed.bytes),
                "{target}'s seed {} is refused",
                seed.name
            );
            function(&seed.bytes);
        }
    }
}

#[test]
fn apply_seeds_have_the_outcome_they_are_named_for() {
    for (name, bytes, applied) in apply_cases(world()) {
        let expected = if applied {
            Outcome::Applied
        } else {
            Outcome::Refused
        };
        assert_eq!(run(&bytes), expected, "{name}");
    }
}

#[test]
fn sigbatch_seeds_hold_valid_and_invalid_signatures() {
    let mut verdicts = [0usize; 2];
    for seed in seeds()
        .iter()
        .filter(|seed| seed.target == "sigbatch_differential")
    {
        for item in items(&seed.bytes) {
            verdicts[usize::from(zebra_verdict(&item))] += 1;
        }
    }
    assert!(verdicts[0] > 0 && verdicts[1] >= 5, "{verdicts:?}");
}

/// The targets' envelope sealing and record sealing are the product's: what they seal
/// opens with the product's code.
#[test]
fn the_targets_seal_like_the_product() {
    let world = world();
    let chain = &world.params.chain_id;
    let holder = &world.holders[0];
    let request = world.request(holder, 9, world.holders[1].id, 1);
    let bytes = codec::encode(&request).unwrap();
    let envelope = halfveil_fuzz::decoders::seal_plaintext(
        &world.business_key,
        chain,
        holder.id,
        holder.bank,
        &bytes,
    );
    assert_eq!(
        envelope
            .open(&world.business_key, chain, holder.bank)
            .unwrap(),
        request
    );
    let record = IdentityRecord {
        version: halfveil_ledger::VERSION,
        name: "n".into(),
        national_id: "i".into(),
        fields: Vec::new(),
        identity_key: world.validator_key(),
        possession: halfveil_ledger::Signature([1; 64]),
    };
    // The target seals the padded encoding as `IdentityRecord::seal` does and opens it with
    // a quorum of shares: a canonical record must come back (the target asserts it).
    halfveil_fuzz::identity_record(&codec::encode(&record).unwrap());
}
