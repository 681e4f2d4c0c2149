//! Batched ZIP-215 verification of Ed25519 signatures, with a cache of decoded public keys.
//!
//! The check is ed25519-zebra's batch verification (the ZIP-215 rules), computed the same
//! way on the same crates (curve25519-dalek 5, SHA-512): for random 128-bit `z_i`,
//!
//! ```text
//! [8] ( -(sum z_i s_i) B + sum_A (sum_{i by A} z_i k_i) A + sum z_i R_i ) == identity
//! ```
//!
//! with `k_i = SHA-512(R_i || A_i || M_i)` over the bytes as signed, `A` and `R` decoded
//! the ZIP-215 way (non-canonical `y` accepted, small order accepted) and `s` required
//! canonical. What this module adds is where the decoded keys come from: decoding a point
//! is a field square root, about half of the cost of one signature in a batch, and the
//! same payers sign block after block. [`DecodedKeys`] keeps the decoded points of recent
//! keys, bounded, so a key is decoded once rather than in every block on every node.
//!
//! A batch that fails is re-checked one signature at a time with ed25519-zebra's own single
//! verification (an independent implementation of the same rule), which names the first bad
//! signature; a node never rejects on the batch's word alone.

use std::sync::{Mutex, OnceLock};

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha512};

use crate::crypto;
use crate::fastmap::{HashMap, HashMapExt};
use crate::hash::Hash32;
use crate::types::{PublicKey, Signature};

/// Batches below this size are verified on one thread; spawning costs more than it saves.
const BATCH_PARALLEL_MIN: usize = 256;

/// Decoded keys kept per generation; the cache holds at most two generations, about
/// 2 x 65,536 x 200 bytes = 26 MB.
const DECODED_KEYS_PER_GENERATION: usize = 1 << 16;

/// One signature of a batch: what the check needs, computed when it is pushed.
#[derive(Debug)]
struct Item<T> {
    tag: T,
    key: [u8; 32],
    message: Hash32,
    signature: [u8; 64],
    /// `SHA-512(R || A || M)` reduced mod the group order.
    k: Scalar,
}

/// A batch of signatures to verify at once, each tagged by the caller (an op index, say) so a
/// failure can be placed.
#[derive(Debug)]
pub struct SignatureBatch<T> {
    items: Vec<Item<T>>,
}

impl<T: Copy + Send + Sync> Default for SignatureBatch<T> {
    fn default() -> Self {
        SignatureBatch { items: Vec::new() }
    }
}

impl<T: Copy + Send + Sync> SignatureBatch<T> {
    pub fn with_capacity(capacity: usize) -> Self {
        SignatureBatch {
            items: Vec::with_capacity(capacity),
        }
    }

    pub fn push(&mut self, tag: T, key: &PublicKey, message: &Hash32, signature: &Signature) {
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(&signature.0[..32])
                .chain_update(key.0)
                .chain_update(message.as_bytes()),
        );
        self.items.push(Item {
            tag,
            key: key.0,
            message: *message,
            signature: signature.0,
            k,
        });
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Moves every entry of `other` into this batch, retagged.
    pub fn append<U>(&mut self, other: SignatureBatch<U>, retag: impl Fn(U) -> T) {
        self.items.extend(other.items.into_iter().map(|item| Item {
            tag: retag(item.tag),
            key: item.key,
            message: item.message,
            signature: item.signature,
            k: item.k,
        }));
    }

    /// Whether the batch equation alone holds for every signature pushed (one chunk, no
    /// single-signature fallback): what the differential fuzz target `sigbatch_differential`
    /// compares with ed25519-zebra's single verification. [`SignatureBatch::verify`] hides a
    /// batch that wrongly refuses behind its fallback.
    #[cfg(any(test, feature = "testkit"))]
    pub fn batch_equation_holds(&self) -> bool {
        self.items.is_empty() || verify_chunk(&self.items)
    }

    /// Verifies every signature; on failure returns the tag of the first bad one in push
    /// order. Large batches are split over the available cores.
    pub fn verify(self) -> Result<(), T> {
        if self.items.is_empty() {
            return Ok(());
        }
        let threads = available_cores();
        let all_valid = if self.items.len() < BATCH_PARALLEL_MIN || threads < 2 {
            verify_chunk(&self.items)
        } else {
            // The calling thread checks the first chunk itself; one thread is spawned for
            // each other chunk.
            let chunk = self.items.len().div_ceil(threads);
            let (first, rest) = self.items.split_at(chunk.min(self.items.len()));
            std::thread::scope(|scope| {
                let handles: Vec<_> = rest
                    .chunks(chunk)
                    .map(|items| scope.spawn(move || verify_chunk(items)))
                    .collect();
                let mine = verify_chunk(first);
                handles.into_iter().fold(mine, |valid, handle| {
                    handle.join().unwrap_or(false) && valid
                })
            })
        };
        if all_valid {
            return Ok(());
        }
        // Find the first failure one by one, with ed25519-zebra's single verification.
        for item in self.items {
            let signature = Signature(item.signature);
            if crypto::verify(&PublicKey(item.key), &item.message, &signature).is_err() {
                return Err(item.tag);
            }
        }
        Ok(())
    }
}

/// The number of cores, read once (`available_parallelism` reads cgroup files each call).
fn available_cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// The batch equation over `items`; false if any signature fails or cannot be decoded.
#[allow(non_snake_case)]
fn verify_chunk<T>(items: &[Item<T>]) -> bool {
    // The z_i must be unpredictable to whoever made the signatures: a fresh seed from the
    // operating system per batch, stretched by ChaCha20.
    let mut rng = ChaCha20Rng::from_entropy();
    let mut key_index: HashMap<[u8; 32], usize> = HashMap::with_capacity(items.len());
    let mut keys: Vec<[u8; 32]> = Vec::with_capacity(items.len());
    let mut A_coeffs: Vec<Scalar> = Vec::with_capacity(items.len());
    let mut R_coeffs: Vec<Scalar> = Vec::with_capacity(items.len());
    let mut Rs: Vec<EdwardsPoint> = Vec::with_capacity(items.len());
    let mut B_coeff = Scalar::ZERO;
    for item in items {
        let mut r_bytes = [0u8; 32];
        let mut s_bytes = [0u8; 32];
        r_bytes.copy_from_slice(&item.signature[..32]);
        s_bytes.copy_from_slice(&item.signature[32..]);
        let Some(R) = CompressedEdwardsY(r_bytes).decompress() else {
            return false;
        };
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
            return false;
        };
        let mut z_bytes = [0u8; 16];
        rng.fill_bytes(&mut z_bytes);
        let z = Scalar::from(u128::from_le_bytes(z_bytes));
        B_coeff -= z * s;
        Rs.push(R);
        R_coeffs.push(z);
        let index = *key_index.entry(item.key).or_insert_with(|| {
            keys.push(item.key);
            A_coeffs.push(Scalar::ZERO);
            keys.len() - 1
        });
        match A_coeffs.get_mut(index) {
            Some(coeff) => *coeff += z * item.k,
            None => return false,
        }
    }
    let Some(As) = decoded_keys().decode_all(&keys) else {
        return false;
    };
    let check = EdwardsPoint::vartime_multiscalar_mul(
        std::iter::once(&B_coeff)
            .chain(A_coeffs.iter())
            .chain(R_coeffs.iter()),
        std::iter::once(&ED25519_BASEPOINT_POINT)
            .chain(As.iter())
            .chain(Rs.iter()),
    );
    check.mul_by_cofactor().is_identity()
}

/// The process's cache of decoded keys.
fn decoded_keys() -> &'static DecodedKeys {
    static KEYS: OnceLock<DecodedKeys> = OnceLock::new();
    KEYS.get_or_init(|| DecodedKeys::new(DECODED_KEYS_PER_GENERATION))
}

/// Recently used public keys, decoded (ZIP-215: any `y` below 2^255 that is on the curve).
/// Two generations: lookups search both, inserts go to the current one, and when it is full
/// it becomes the previous one (whose keys are dropped). A key used in every generation
/// stays; the size never exceeds two generations. Only keys that decode are kept.
#[derive(Debug)]
pub(crate) struct DecodedKeys {
    generation_size: usize,
    generations: Mutex<Generations>,
}

#[derive(Debug, Default)]
struct Generations {
    current: HashMap<[u8; 32], EdwardsPoint>,
    previous: HashMap<[u8; 32], EdwardsPoint>,
}

impl Generations {
    fn get(&mut self, key: &[u8; 32], generation_size: usize) -> Option<EdwardsPoint> {
        if let Some(point) = self.current.get(key) {
            return Some(*point);
        }
        let point = self.previous.remove(key)?;
        self.insert(*key, point, generation_size);
        Some(point)
    }

    fn insert(&mut self, key: [u8; 32], point: EdwardsPoint, generation_size: usize) {
        if self.current.len() >= generation_size {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, point);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }
}

impl DecodedKeys {
    pub fn new(generation_size: usize) -> Self {
        DecodedKeys {
            generation_size: generation_size.max(1),
            generations: Mutex::new(Generations::default()),
        }
    }

    /// The decoded points of `keys`, in order, or `None` if one is not a point. Keys not in
    /// the cache are decoded outside its lock and then added.
    pub fn decode_all(&self, keys: &[[u8; 32]]) -> Option<Vec<EdwardsPoint>> {
        let mut points: Vec<Option<EdwardsPoint>> = {
            let mut generations = self.lock();
            keys.iter()
                .map(|key| generations.get(key, self.generation_size))
                .collect()
        };
        let mut decoded = Vec::new();
        for (key, point) in keys.iter().zip(points.iter_mut()) {
            if point.is_none() {
                let fresh = CompressedEdwardsY(*key).decompress()?;
                *point = Some(fresh);
                decoded.push((*key, fresh));
            }
        }
        if !decoded.is_empty() {
            let mut generations = self.lock();
            for (key, point) in decoded {
                generations.insert(key, point, self.generation_size);
            }
        }
        points.into_iter().collect()
    }

    /// How many keys are cached.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // The maps hold plain values; a panic elsewhere cannot leave them half-written.
        self.generations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;

    fn keys(count: u8) -> Vec<[u8; 32]> {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        (0..count)
            .map(|_| crypto::public_key(&crypto::generate_signing_key(&mut rng)).0)
            .collect()
    }

    /// The batch equation itself (no single-signature fallback) gives ed25519-zebra's single
    /// verdict on every ZIP-215 edge case, cold and with the key cached.
    #[test]
    fn the_batch_equation_matches_single_verification_on_edge_cases() {
        let edges = crate::testkit::zip215_edge_points();
        let message = crate::hash::Domain::TransferId.hash(b"edge");
        let mut verdicts = [0usize; 2];
        for key in &edges {
            for r in &edges {
                for s_low in [0u8, 1] {
                    let mut signature = [0u8; 64];
                    signature[..32].copy_from_slice(r);
                    signature[32] = s_low;
                    let single =
                        crypto::verify(&PublicKey(*key), &message, &Signature(signature)).is_ok();
                    verdicts[usize::from(single)] += 1;
                    for _ in 0..2 {
                        let mut batch = SignatureBatch::default();
                        batch.push((), &PublicKey(*key), &message, &Signature(signature));
                        assert_eq!(verify_chunk(&batch.items), single, "{key:?} {r:?} {s_low}");
                    }
                }
            }
        }
        assert!(verdicts[0] > 0 && verdicts[1] > 0, "{verdicts:?}");
    }

    /// A batch large enough to be split over the cores (when there are two or more) finds
    /// a bad signature in either part, and the first bad one in push order.
    #[test]
    fn a_large_batch_finds_a_bad_signature_in_any_part() {
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let signers: Vec<_> = (0..8)
            .map(|_| crypto::generate_signing_key(&mut rng))
            .collect();
        let count = BATCH_PARALLEL_MIN * 2 + 3;
        let signed: Vec<(PublicKey, Hash32, Signature)> = (0..count)
            .map(|index| {
                let signer = &signers[index % signers.len()];
                let message = crate::hash::Domain::TransferId.hash(&index.to_le_bytes());
                let signature = crypto::sign(signer, &message);
                (crypto::public_key(signer), message, signature)
            })
            .collect();
        let batch_with = |bad: &[usize]| {
            let mut batch = SignatureBatch::with_capacity(count);
            for (index, (key, message, signature)) in signed.iter().enumerate() {
                let mut signature = *signature;
                if bad.contains(&index) {
                    signature.0[40] ^= 1;
                }
                batch.push(index, key, message, &signature);
            }
            batch
        };
        assert_eq!(batch_with(&[]).verify(), Ok(()));
        assert_eq!(batch_with(&[3]).verify(), Err(3));
        assert_eq!(batch_with(&[count - 2]).verify(), Err(count - 2));
        assert_eq!(batch_with(&[count - 2, 300]).verify(), Err(300));
    }

    #[test]
    fn the_cache_returns_what_decoding_returns_and_stays_bounded() {
        let cache = DecodedKeys::new(4);
        let keys = keys(10);
        let expected: Vec<EdwardsPoint> = keys
            .iter()
            .map(|key| CompressedEdwardsY(*key).decompress().unwrap())
            .collect();
        for round in 0..3 {
            for (key, point) in keys.iter().zip(&expected) {
                assert_eq!(
                    cache.decode_all(&[*key]).unwrap(),
                    vec![*point],
                    "round {round}"
                );
                assert!(cache.len() <= 8, "{} keys cached", cache.len());
            }
        }
        assert_eq!(cache.decode_all(&keys).unwrap(), expected);
    }

    #[test]
    fn a_key_used_every_generation_survives_and_bad_keys_are_not_kept() {
        let cache = DecodedKeys::new(3);
        let keys = keys(12);
        let hot = keys[0];
        for key in &keys[1..] {
            cache.decode_all(&[hot, *key]).unwrap();
        }
        assert!(
            cache.lock().current.contains_key(&hot) || cache.lock().previous.contains_key(&hot)
        );
        // y = 2 is not on the curve.
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        assert!(CompressedEdwardsY(off_curve).decompress().is_none());
        let before = cache.len();
        assert_eq!(cache.decode_all(&[hot, off_curve]), None);
        assert_eq!(cache.len(), before);
    }
}
