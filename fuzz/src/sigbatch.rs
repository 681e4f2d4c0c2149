//! The batch verifier against ed25519-zebra: on every key, message and signature (small
//! order points, non-canonical encodings, mixed-order keys, non-canonical `s`), the
//! ledger's single verification, the batch equation of one signature and of all of them,
//! and `SignatureBatch::verify` must give the verdict of
//! `ed25519_zebra::VerificationKey::try_from(key).and_then(|key| key.verify(&sig, msg))`:
//! each alone, and for the batch the AND of them (and the first bad one's tag).

use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use halfveil_ledger::crypto::{self, SignatureBatch, SigningKey};
use halfveil_ledger::{Hash32, PublicKey, Signature};
use sha2::{Digest, Sha512};

use crate::reader::Reader;

/// Most signatures in one input's batch.
const ITEMS_MAX: usize = 8;

/// The encodings ZIP-215 is about: the eight small-order points, and every encoding of a
/// `y` of `p` to `p + 18` (non-canonical), with either sign bit; some are not points.
pub fn edge_points() -> Vec<[u8; 32]> {
    let mut points: Vec<[u8; 32]> = EIGHT_TORSION
        .iter()
        .map(|point| point.compress().to_bytes())
        .collect();
    for excess in 0..19u8 {
        for sign in [0u8, 0x80] {
            let mut bytes = [0xffu8; 32];
            bytes[0] = 0xed + excess;
            bytes[31] = 0x7f | sign;
            points.push(bytes);
        }
    }
    points
}

/// The group order, little-endian.
const ORDER: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// `s + l`: the same scalar, not canonical (ZIP-215 refuses it).
fn add_order(s: &mut [u8]) {
    let mut carry = 0u16;
    for (byte, order) in s.iter_mut().zip(ORDER) {
        let sum = u16::from(*byte) + u16::from(order) + carry;
        *byte = sum as u8;
        carry = sum >> 8;
    }
}

/// One signature to check.
#[derive(Clone, Copy, Debug)]
pub struct Item {
    pub key: [u8; 32],
    pub message: [u8; 32],
    pub signature: [u8; 64],
}

/// ed25519-zebra's verdict: the ZIP-215 rule.
pub fn zebra_verdict(item: &Item) -> bool {
    ed25519_zebra::VerificationKey::try_from(item.key)
        .and_then(|key| {
            key.verify(
                &ed25519_zebra::Signature::from_bytes(&item.signature),
                &item.message,
            )
        })
        .is_ok()
}

/// How an input describes an item (its first byte, modulo the number of modes).
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// Key, message and signature as given.
    Raw = 0,
    /// Signed by a key from a 32-byte seed, then maybe tweaked.
    Signed = 1,
    /// A small-order (or non-canonical) key and `R`, `s` chosen.
    SmallOrder = 2,
    /// Signed by the key of an earlier item's seed (so keys repeat in the batch).
    SameKey = 3,
    /// A valid key plus a small-order point, signed for that mixed key, maybe with a
    /// small-order part in `R` too: valid under the cofactored rule only.
    MixedOrder = 4,
}

const MODES: usize = 5;
const RAW: usize = Mode::Raw as usize;
const SIGNED: usize = Mode::Signed as usize;
const SMALL_ORDER: usize = Mode::SmallOrder as usize;
const SAME_KEY: usize = Mode::SameKey as usize;

fn item(reader: &mut Reader<'_>, seeds: &mut Vec<[u8; 32]>, edges: &[[u8; 32]]) -> Item {
    match reader.choose(MODES) {
        RAW => Item {
            key: reader.array(),
            message: reader.array(),
            signature: reader.array(),
        },
        SIGNED => {
            let seed = reader.array();
            seeds.push(seed);
            let item = signed(&seed, reader.array());
            tweak(item, reader, edges)
        }
        SMALL_ORDER => {
            let key = edges[reader.choose(edges.len())];
            let r = edges[reader.choose(edges.len())];
            let mut s = [0u8; 32];
            match reader.choose(3) {
                0 => {}
                1 => {
                    s = reader.array();
                    s[31] &= 0x0f;
                }
                _ => add_order(&mut s),
            }
            let mut signature = [0u8; 64];
            signature[..32].copy_from_slice(&r);
            signature[32..].copy_from_slice(&s);
            Item {
                key,
                message: reader.array(),
                signature,
            }
        }
        SAME_KEY => {
            let seed = match seeds.len() {
                0 => [0u8; 32],
                count => seeds[reader.choose(count)],
            };
            let item = signed(&seed, reader.array());
            tweak(item, reader, edges)
        }
        _ => mixed_order(reader),
    }
}

fn signed(seed: &[u8; 32], message: [u8; 32]) -> Item {
    let key = SigningKey::from_bytes(seed);
    Item {
        key: crypto::public_key(&key).0,
        message,
        signature: crypto::sign(&key, &Hash32(message)).0,
    }
}

fn tweak(mut item: Item, reader: &mut Reader<'_>, edges: &[[u8; 32]]) -> Item {
    match reader.choose(8) {
        0 => {}
        1 => item.signature[..32].copy_from_slice(&edges[reader.choose(edges.len())]),
        2 => item.key = edges[reader.choose(edges.len())],
        3 => add_order(&mut item.signature[32..]),
        4 => {
            let bit = reader.u16();
            item.signature[usize::from(bit / 8) % 64] ^= 1 << (bit % 8);
        }
        5 => {
            let bit = reader.u8();
            item.key[usize::from(bit / 8) % 32] ^= 1 << (bit % 8);
        }
        6 => item.signature[32..].fill(0),
        _ => item.signature[31] ^= 0x80,
    }
    item
}

fn mixed_order(reader: &mut Reader<'_>) -> Item {
    let seed: [u8; 32] = reader.array();
    let message: [u8; 32] = reader.array();
    let key_torsion = EIGHT_TORSION[reader.choose(8)];
    let r_torsion = EIGHT_TORSION[reader.choose(8)];
    let a = Scalar::from_bytes_mod_order(seed);
    let key = (EdwardsPoint::mul_base(&a) + key_torsion)
        .compress()
        .to_bytes();
    let r = Scalar::from_hash(
        Sha512::new()
            .chain_update(b"halfveil fuzz nonce")
            .chain_update(seed)
            .chain_update(message),
    );
    let big_r = (EdwardsPoint::mul_base(&r) + r_torsion)
        .compress()
        .to_bytes();
    let k = Scalar::from_hash(
        Sha512::new()
            .chain_update(big_r)
            .chain_update(key)
            .chain_update(message),
    );
    let s = r + k * a;
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(&big_r);
    signature[32..].copy_from_slice(&s.to_bytes());
    Item {
        key,
        message,
        signature,
    }
}

/// Reads up to [`ITEMS_MAX`] items (at least one).
pub fn items(data: &[u8]) -> Vec<Item> {
    let edges = edge_points();
    let mut reader = Reader::new(data);
    let count = 1 + reader.choose(ITEMS_MAX);
    let mut seeds = Vec::new();
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        items.push(item(&mut reader, &mut seeds, &edges));
        if reader.is_empty() {
            break;
        }
    }
    items
}

fn push<T: Copy + Send + Sync>(batch: &mut SignatureBatch<T>, tag: T, item: &Item) {
    batch.push(
        tag,
        &PublicKey(item.key),
        &Hash32(item.message),
        &Signature(item.signature),
    );
}

pub fn sigbatch_differential(data: &[u8]) {
    let items = items(data);
    let verdicts: Vec<bool> = items.iter().map(zebra_verdict).collect();
    for (item, &verdict) in items.iter().zip(&verdicts) {
        let single = crypto::verify(
            &PublicKey(item.key),
            &Hash32(item.message),
            &Signature(item.signature),
        );
        assert_eq!(
            single.is_ok(),
            verdict,
            "ledger's single verify: {item:02x?}"
        );
        let mut batch = SignatureBatch::default();
        push(&mut batch, (), item);
        assert_eq!(
            batch.batch_equation_holds(),
            verdict,
            "the batch equation of one signature: {item:02x?}"
        );
        assert_eq!(batch.verify().is_ok(), verdict, "verify(): {item:02x?}");
    }
    let mut batch = SignatureBatch::default();
    for (index, item) in items.iter().enumerate() {
        push(&mut batch, index, item);
    }
    let all = verdicts.iter().all(|&verdict| verdict);
    assert_eq!(
        batch.batch_equation_holds(),
        all,
        "the batch equation of {} signatures ({verdicts:?}): {items:02x?}",
        items.len()
    );
    let first_bad = verdicts.iter().position(|&verdict| !verdict);
    assert_eq!(batch.verify().err(), first_bad, "{items:02x?}");
}
