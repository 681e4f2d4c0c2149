//! The one canonical binary encoding of everything hashed, signed, stored or sent.
//!
//! The encoding is postcard (serde). postcard alone accepts a few non-minimal forms (an
//! over-long varint, say), so [`decode`] refuses input longer than the canonical encoding
//! of what it decoded (the only other forms are longer): one value has exactly one
//! encoding, and an id computed over bytes can never be changed by re-encoding them.
//! Every decode is bounded in size and refuses trailing bytes.

use serde::{de::DeserializeOwned, Serialize};

use crate::error::CodecError;

/// Encodes a value canonically.
///
/// Encoding a value of this crate's types cannot fail (no maps with non-string keys, no
/// unsized sequences), so the only failure left is a bug, reported as [`CodecError`].
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    postcard::to_allocvec(value).map_err(|error| CodecError::Encode {
        reason: error.to_string(),
    })
}

/// Values up to this size are encoded on the stack by [`with_encoded`]: a transfer op with
/// an empty memo, a state leaf, a transfer.
const STACK_BYTES: usize = 768;

/// Encodes `value` and hands the bytes to `use_bytes`, without a heap allocation for values
/// of up to 768 bytes. For bytes that are only hashed: a transfer's id, an op's hash and
/// a state leaf are each computed several times per transfer on every node, and growing a
/// fresh `Vec` for each (five reallocations for a transfer) was a good part of the
/// allocator's share of the CPU.
pub fn with_encoded<T: Serialize + ?Sized, R>(
    value: &T,
    use_bytes: impl FnOnce(&[u8]) -> R,
) -> Result<R, CodecError> {
    let mut stack = [0u8; STACK_BYTES];
    match postcard::to_slice(value, &mut stack) {
        Ok(used) => Ok(use_bytes(used)),
        Err(postcard::Error::SerializeBufferFull) => Ok(use_bytes(&encode(value)?)),
        Err(error) => Err(CodecError::Encode {
            reason: error.to_string(),
        }),
    }
}

/// Encodes a value into a buffer the caller reuses (no allocation once it is warm).
pub fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    buffer: &mut Vec<u8>,
) -> Result<(), CodecError> {
    buffer.clear();
    let taken = std::mem::take(buffer);
    *buffer = postcard::to_extend(value, taken).map_err(|error| CodecError::Encode {
        reason: error.to_string(),
    })?;
    Ok(())
}

/// Decodes `bytes` as a `T`, strictly: at most `bytes_max` bytes, no trailing bytes, and
/// only the canonical encoding of the value.
pub fn decode<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    bytes_max: usize,
) -> Result<T, CodecError> {
    if bytes.len() > bytes_max {
        return Err(CodecError::TooLarge {
            bytes: bytes.len(),
            bytes_max,
        });
    }
    let (value, rest) =
        postcard::take_from_bytes::<T>(bytes).map_err(|error| CodecError::Malformed {
            reason: error.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes { bytes: rest.len() });
    }
    // The only forms postcard accepts beyond the canonical one are over-long varints, and
    // each is longer than its canonical form (our one custom serde, `byte_array`, is
    // verbatim; bools and option tags other than 0 and 1 are refused by postcard). So the
    // input is canonical exactly when the value's canonical encoding has its length:
    // counted without building it, where re-encoding a block or a batch allocated and
    // copied it once more on every hop. Test builds still compare the bytes.
    let canonical_bytes = postcard::serialize_with_flavor::<T, postcard::ser_flavors::Size, usize>(
        &value,
        postcard::ser_flavors::Size::default(),
    )
    .map_err(|error| CodecError::Encode {
        reason: error.to_string(),
    })?;
    if canonical_bytes != bytes.len() {
        return Err(CodecError::NotCanonical);
    }
    debug_assert!(
        encode(&value).is_ok_and(|again| again == bytes),
        "a value of canonical length re-encodes to other bytes"
    );
    Ok(value)
}

/// serde for fixed-size byte arrays longer than serde's built-in 32: written as a tuple, so
/// postcard puts exactly `N` bytes on the wire with no length prefix.
pub(crate) mod byte_array {
    use serde::{
        de::{Error, SeqAccess, Visitor},
        ser::SerializeTuple,
        Deserializer, Serializer,
    };
    use std::fmt;

    pub fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(N)?;
        for byte in bytes {
            tuple.serialize_element(byte)?;
        }
        tuple.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        deserializer: D,
    ) -> Result<[u8; N], D::Error> {
        struct ArrayVisitor<const N: usize>;
        impl<'de, const N: usize> Visitor<'de> for ArrayVisitor<N> {
            type Value = [u8; N];
            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                write!(formatter, "{N} bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; N], A::Error> {
                let mut bytes = [0u8; N];
                for (index, slot) in bytes.iter_mut().enumerate() {
                    *slot = seq
                        .next_element()?
                        .ok_or_else(|| Error::invalid_length(index, &self))?;
                }
                Ok(bytes)
            }
        }
        deserializer.deserialize_tuple(N, ArrayVisitor::<N>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes handed over are the encoding, for values on the stack and past it.
    #[test]
    fn with_encoded_gives_the_encoding() {
        for length in [0usize, 10, STACK_BYTES - 8, STACK_BYTES, 4 * STACK_BYTES] {
            let value = vec![7u8; length];
            let seen = with_encoded(&value, <[u8]>::to_vec).unwrap();
            assert_eq!(seen, encode(&value).unwrap(), "length {length}");
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&7u64).unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<u64>(&bytes, 64),
            Err(CodecError::TrailingBytes { bytes: 1 })
        ));
    }

    #[test]
    fn overlong_varint_is_refused() {
        // 1 written in two bytes instead of one.
        assert!(matches!(
            decode::<u64>(&[0x81, 0x00], 64),
            Err(CodecError::NotCanonical)
        ));
        assert_eq!(decode::<u64>(&[0x01], 64).unwrap(), 1);
    }

    #[test]
    fn oversized_input_is_refused_before_decoding() {
        assert!(matches!(
            decode::<Vec<u8>>(&[0u8; 10], 9),
            Err(CodecError::TooLarge {
                bytes: 10,
                bytes_max: 9
            })
        ));
    }

    #[test]
    fn a_length_prefix_beyond_the_input_is_malformed() {
        // Claims 2^32 elements, holds none.
        assert!(matches!(
            decode::<Vec<u8>>(&[0xff, 0xff, 0xff, 0xff, 0x0f], 64),
            Err(CodecError::Malformed { .. })
        ));
    }

    #[test]
    fn non_boolean_byte_is_refused() {
        assert!(decode::<bool>(&[2], 8).is_err());
    }

    /// An over-long varint anywhere inside a value (a length, a field, an option's
    /// content) is refused; so is an option tag other than 0 and 1.
    #[test]
    fn non_canonical_forms_inside_a_value_are_refused() {
        type Value = (u64, Vec<u16>, Option<u32>, String);
        let value: Value = (300, vec![1, 2], Some(5), "hv".into());
        let canonical = encode(&value).unwrap();
        assert_eq!(canonical, [0xac, 0x02, 2, 1, 2, 1, 5, 2, b'h', b'v']);
        assert_eq!(decode::<Value>(&canonical, 64).unwrap(), value);
        let variants: [&[u8]; 4] = [
            &[0xac, 0x82, 0x00, 2, 1, 2, 1, 5, 2, b'h', b'v'],
            &[0xac, 0x02, 0x82, 0x00, 1, 2, 1, 5, 2, b'h', b'v'],
            &[0xac, 0x02, 2, 1, 0x82, 0x00, 1, 5, 2, b'h', b'v'],
            &[0xac, 0x02, 2, 1, 2, 1, 0x85, 0x00, 2, b'h', b'v'],
        ];
        for bytes in variants {
            assert!(
                matches!(decode::<Value>(bytes, 64), Err(CodecError::NotCanonical)),
                "{bytes:02x?}"
            );
        }
        let bad_tag = [0xac, 0x02, 2, 1, 2, 2, 5, 2, b'h', b'v'];
        assert!(decode::<Value>(&bad_tag, 64).is_err());
    }
}
