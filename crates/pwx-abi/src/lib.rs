//! The proxy-wasm ABI as Envoy implements it: every enum and status with Envoy's numeric values,
//! the import and export tables per ABI version, ABI-marker detection, and the header-map and
//! property-path codecs.
//!
//! This crate is the single place where an ABI name or number is written. It has no runtime
//! dependencies, so tools (`pwx check`, the OCI image builder, fuzzers) can use it without
//! pulling in a wasm engine; the optional `inspect` feature adds static module inspection
//! (wasmparser only).

#[macro_use]
mod macros;

pub mod enums;
pub mod exports;
pub mod foreign;
pub mod grpc;
pub mod imports;
#[cfg(feature = "inspect")]
pub mod inspect;
pub mod limits;
pub mod pairs;
pub mod path;
pub mod status;
pub mod version;
pub mod wasi;

pub use enums::{
    Action, BufferType, FailurePolicy, FilterDataStatus, FilterHeadersStatus, FilterTrailersStatus,
    GrpcStatus, LogLevel, MapType, MetricType, PeerType, StreamType,
};
pub use exports::Callback;
pub use imports::HostCall;
pub use status::Status;
pub use version::AbiVersion;

/// A wasm value type as it appears in the ABI's function signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValType {
    /// 32-bit integer: pointers, sizes, ids, statuses.
    I32,
    /// 64-bit integer: metric values, WASI timestamps and offsets.
    I64,
}

/// A wasm function signature: parameters and results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Signature {
    /// Parameter types, in order.
    pub params: &'static [ValType],
    /// Result types (zero or one in this ABI).
    pub results: &'static [ValType],
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |types: &[ValType]| {
            types
                .iter()
                .map(|t| match t {
                    ValType::I32 => "i32",
                    ValType::I64 => "i64",
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(f, "({}) -> ({})", list(self.params), list(self.results))
    }
}

/// Shorthands used by the signature tables.
pub(crate) mod sig {
    use super::ValType::{self, I32, I64};
    pub const NONE: &[ValType] = &[];
    pub const I32X1: &[ValType] = &[I32];
    pub const I32X2: &[ValType] = &[I32, I32];
    pub const I32X3: &[ValType] = &[I32, I32, I32];
    pub const I32X4: &[ValType] = &[I32, I32, I32, I32];
    pub const I32X5: &[ValType] = &[I32, I32, I32, I32, I32];
    pub const I32X6: &[ValType] = &[I32, I32, I32, I32, I32, I32];
    pub const I32X7: &[ValType] = &[I32, I32, I32, I32, I32, I32, I32];
    pub const I32X8: &[ValType] = &[I32, I32, I32, I32, I32, I32, I32, I32];
    pub const I32X9: &[ValType] = &[I32, I32, I32, I32, I32, I32, I32, I32, I32];
    pub const I32X10: &[ValType] = &[I32, I32, I32, I32, I32, I32, I32, I32, I32, I32];
    pub const I32X12: &[ValType] = &[I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32, I32];
    pub const I32_I64: &[ValType] = &[I32, I64];
    pub const I32_I64_I32: &[ValType] = &[I32, I64, I32];
}
