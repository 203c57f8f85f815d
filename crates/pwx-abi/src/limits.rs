//! Limits the C++ host (and so Envoy) applies to ABI inputs.

/// Largest serialized header-map input accepted; larger input parses as an empty list.
pub const MAX_PAIRS_BYTES: usize = 1024 * 1024;

/// Largest number of pairs accepted in one serialized map.
pub const MAX_PAIRS_COUNT: usize = 1024;

/// Largest `random_get` request; above it WASI returns EINVAL.
pub const MAX_RANDOM_BYTES: u32 = 64 * 1024;
