//! The header-map ("pairs") encoding used for header maps, metadata, local-response and callout
//! headers, and map-typed property values.
//!
//! Layout, all integers little-endian u32: the pair count `N`; `N` (key length, value length)
//! entries; then each key and value followed by a NUL. Lengths exclude the NULs.

use crate::limits::{MAX_PAIRS_BYTES, MAX_PAIRS_COUNT};

/// The encoded size of `pairs`.
pub fn encoded_len<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> usize {
    4 + pairs
        .iter()
        .map(|(k, v)| 8 + k.as_ref().len() + 1 + v.as_ref().len() + 1)
        .sum::<usize>()
}

/// Encodes `pairs` into `out`, which must be exactly [`encoded_len`] bytes long; this lets a
/// host serialize straight into guest memory with one allocation.
///
/// # Panics
/// If `out` has the wrong length (a caller bug, never input-dependent).
pub fn encode_into<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)], out: &mut [u8]) {
    assert_eq!(
        out.len(),
        encoded_len(pairs),
        "pairs buffer has the wrong size"
    );
    let mut put_u32 = |at: usize, value: usize| {
        // Sizes of a host-side map always fit: the output buffer itself is indexed by usize and
        // guest memory is 32-bit, so a larger value could not have been allocated.
        out[at..at + 4].copy_from_slice(&(value as u32).to_le_bytes());
    };
    put_u32(0, pairs.len());
    for (i, (k, v)) in pairs.iter().enumerate() {
        put_u32(4 + 8 * i, k.as_ref().len());
        put_u32(8 + 8 * i, v.as_ref().len());
    }
    let mut at = 4 + 8 * pairs.len();
    for (k, v) in pairs {
        for part in [k.as_ref(), v.as_ref()] {
            out[at..at + part.len()].copy_from_slice(part);
            at += part.len();
            out[at] = 0;
            at += 1;
        }
    }
}

/// Encodes `pairs` into a new buffer.
pub fn encode<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let mut out = vec![0; encoded_len(pairs)];
    encode_into(pairs, &mut out);
    out
}

/// One decoded pair, borrowing key and value from the input.
pub type PairRef<'a> = (&'a [u8], &'a [u8]);

/// Why serialized pairs were rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairsError {
    /// Larger than [`MAX_PAIRS_BYTES`].
    TooLarge,
    /// More than [`MAX_PAIRS_COUNT`] pairs.
    TooManyPairs,
    /// The data ends before the declared lengths.
    Truncated,
    /// A key or value is not followed by a NUL.
    MissingNul,
    /// Bytes remain after the last pair.
    TrailingBytes,
}

impl std::fmt::Display for PairsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PairsError::TooLarge => "serialized map is larger than 1 MiB",
            PairsError::TooManyPairs => "serialized map has more than 1024 pairs",
            PairsError::Truncated => "serialized map is truncated",
            PairsError::MissingNul => "serialized map lacks a NUL terminator",
            PairsError::TrailingBytes => "serialized map has trailing bytes",
        })
    }
}

impl std::error::Error for PairsError {}

/// Decodes serialized pairs, borrowing from `data`.
///
/// Input shorter than 4 bytes (nothing, or the spec's single 0x00) is an empty map. Envoy
/// treats every error as an empty map; callers that mimic it use `unwrap_or_default()`.
pub fn decode(data: &[u8]) -> Result<Vec<PairRef<'_>>, PairsError> {
    if data.len() > MAX_PAIRS_BYTES {
        return Err(PairsError::TooLarge);
    }
    if data.len() < 4 {
        return Ok(Vec::new());
    }
    let read_u32 = |at: usize| -> Result<usize, PairsError> {
        let bytes = data.get(at..at + 4).ok_or(PairsError::Truncated)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize)
    };
    let count = read_u32(0)?;
    if count > MAX_PAIRS_COUNT {
        return Err(PairsError::TooManyPairs);
    }
    let mut at = 4 + 8 * count;
    if at > data.len() {
        return Err(PairsError::Truncated);
    }
    let mut pairs = Vec::with_capacity(count);
    for i in 0..count {
        let key_len = read_u32(4 + 8 * i)?;
        let value_len = read_u32(8 + 8 * i)?;
        let mut take = |len: usize| -> Result<&[u8], PairsError> {
            let end = at.checked_add(len).ok_or(PairsError::Truncated)?;
            let part = data.get(at..end).ok_or(PairsError::Truncated)?;
            match data.get(end) {
                Some(0) => {}
                Some(_) => return Err(PairsError::MissingNul),
                None => return Err(PairsError::Truncated),
            }
            at = end + 1;
            Ok(part)
        };
        let key = take(key_len)?;
        let value = take(value_len)?;
        pairs.push((key, value));
    }
    if at != data.len() {
        return Err(PairsError::TrailingBytes);
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_worked_example() {
        let bytes = encode(&[("a", "1"), ("b", "22")]);
        let expected: Vec<u8> = [
            &2u32.to_le_bytes()[..],
            &1u32.to_le_bytes(),
            &1u32.to_le_bytes(),
            &1u32.to_le_bytes(),
            &2u32.to_le_bytes(),
            b"a\x001\x00b\x0022\x00",
        ]
        .concat();
        assert_eq!(bytes, expected);
        let decoded = decode(&bytes).unwrap();
        assert_eq!(
            decoded,
            vec![(&b"a"[..], &b"1"[..]), (&b"b"[..], &b"22"[..])]
        );
    }

    #[test]
    fn empty_forms() {
        assert_eq!(decode(&[]).unwrap(), vec![]);
        assert_eq!(decode(&[0]).unwrap(), vec![]);
        assert_eq!(decode(&0u32.to_le_bytes()).unwrap(), vec![]);
        assert_eq!(encode::<&str, &str>(&[]), 0u32.to_le_bytes());
    }

    #[test]
    fn rejects_malformed_input() {
        let good = encode(&[("k", "v")]);
        assert_eq!(decode(&good[..good.len() - 1]), Err(PairsError::Truncated));
        let mut no_nul = good.clone();
        let last = no_nul.len() - 1;
        no_nul[last] = b'x';
        assert_eq!(decode(&no_nul), Err(PairsError::MissingNul));
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(decode(&trailing), Err(PairsError::TrailingBytes));
        let mut many = 2000u32.to_le_bytes().to_vec();
        many.resize(4 + 2000 * 8, 0);
        assert_eq!(decode(&many), Err(PairsError::TooManyPairs));
        let mut huge_len = encode(&[("k", "v")]);
        huge_len[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&huge_len), Err(PairsError::Truncated));
        assert_eq!(
            decode(&vec![0; MAX_PAIRS_BYTES + 1]),
            Err(PairsError::TooLarge)
        );
    }

    #[test]
    fn binary_values_survive() {
        let pairs = [(vec![0xffu8, 1], vec![0u8, 0, 7])];
        let bytes = encode(&pairs);
        assert_eq!(
            decode(&bytes).unwrap(),
            vec![(&[0xff, 1][..], &[0, 0, 7][..])]
        );
    }
}
