//! Token-bucket arithmetic and the byte encodings kept in shared data.
//!
//! The refill clock is an *epoch*: the number of whole refill intervals since the plugin first
//! started. Ticks publish it; a bucket remembers the epoch it last saw and, when it is next
//! used, gains `refill_tokens` for every epoch it missed. Every VM (each worker's, and Envoy's
//! main-thread one) ticks and publishes the same number for the same moment, so publishing is
//! idempotent and buckets refill at the configured rate however many VMs there are.

/// A client's bucket as stored in shared data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bucket {
    pub(crate) tokens: u64,
    /// The epoch this bucket was last refilled to.
    pub(crate) epoch: u64,
}

impl Bucket {
    pub(crate) fn encode(self) -> [u8; 16] {
        let mut out = [0; 16];
        out[..8].copy_from_slice(&self.tokens.to_le_bytes());
        out[8..].copy_from_slice(&self.epoch.to_le_bytes());
        out
    }

    /// `None` for bytes that are not a bucket (never written by this filter).
    pub(crate) fn decode(bytes: &[u8]) -> Option<Bucket> {
        let tokens = bytes.get(..8)?.try_into().ok()?;
        let epoch = bytes.get(8..16)?.try_into().ok()?;
        (bytes.len() == 16).then(|| Bucket {
            tokens: u64::from_le_bytes(tokens),
            epoch: u64::from_le_bytes(epoch),
        })
    }

    /// Adds the tokens of every epoch since the last refill, capped at `capacity`.
    pub(crate) fn refill(self, epoch: u64, refill_tokens: u64, capacity: u64) -> Bucket {
        if epoch <= self.epoch {
            return self;
        }
        let gained = (epoch - self.epoch).saturating_mul(refill_tokens);
        Bucket {
            tokens: self.tokens.saturating_add(gained).min(capacity),
            epoch,
        }
    }

    /// Takes one token: `Some(after)` if there was one.
    pub(crate) fn take(self) -> Option<Bucket> {
        self.tokens
            .checked_sub(1)
            .map(|tokens| Bucket { tokens, ..self })
    }
}

/// A `u64` as stored in shared data (the start time and the published epoch).
pub(crate) fn encode_u64(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

pub(crate) fn decode_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// The client key from a `source.address` property value: the address without its port
/// (`10.0.0.1:5555` → `10.0.0.1`, `[::1]:5555` → `::1`).
pub(crate) fn address_without_port(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips() {
        let b = Bucket {
            tokens: 3,
            epoch: 99,
        };
        assert_eq!(Bucket::decode(&b.encode()), Some(b));
        assert_eq!(Bucket::decode(&[0; 15]), None);
        assert_eq!(Bucket::decode(&[0; 17]), None);
        assert_eq!(decode_u64(&encode_u64(7)), Some(7));
        assert_eq!(decode_u64(&[1, 2]), None);
    }

    #[test]
    fn refill_is_capped_and_take_stops_at_zero() {
        let empty = Bucket {
            tokens: 0,
            epoch: 5,
        };
        assert_eq!(empty.take(), None);
        assert_eq!(empty.refill(5, 1, 3), empty);
        assert_eq!(empty.refill(4, 1, 3), empty);
        assert_eq!(
            empty.refill(7, 1, 3),
            Bucket {
                tokens: 2,
                epoch: 7
            }
        );
        assert_eq!(empty.refill(u64::MAX, u64::MAX, 3).tokens, 3);
        let one = Bucket {
            tokens: 1,
            epoch: 0,
        };
        assert_eq!(one.take().map(|b| b.tokens), Some(0));
    }

    #[test]
    fn client_address_keys() {
        assert_eq!(address_without_port("127.0.0.1:41234"), "127.0.0.1");
        assert_eq!(address_without_port("[::1]:80"), "::1");
        assert_eq!(address_without_port("pipe"), "pipe");
    }
}
