//! `WasmResult`: the status every `proxy_*` hostcall returns, with Envoy's values.

abi_enum! {
    @no_display
    /// The status a hostcall returns to the module (Envoy's `WasmResult`).
    ///
    /// The Rust SDK 0.2.5 only knows 0, 1, 2, 3, 4, 7, 8 and 10 and panics on anything else, so a
    /// host must return exactly what Envoy returns for each call.
    Status {
        /// The call succeeded.
        Ok = 0 => "Ok",
        /// The thing asked for does not exist (or is not available now).
        NotFound = 1 => "NotFound",
        /// An argument is invalid, or the object is not available in this phase.
        BadArgument = 2 => "BadArgument",
        /// A value could not be serialized.
        SerializationFailure = 3 => "SerializationFailure",
        /// Input could not be parsed.
        ParseFailure = 4 => "ParseFailure",
        /// An expression is invalid (not in the spec).
        BadExpression = 5 => "BadExpression",
        /// A pointer or size points outside the module's memory.
        InvalidMemoryAccess = 6 => "InvalidMemoryAccess",
        /// A queue is empty.
        Empty = 7 => "Empty",
        /// A compare-and-swap on shared data failed.
        CasMismatch = 8 => "CasMismatch",
        /// Result type mismatch (not in the spec).
        ResultMismatch = 9 => "ResultMismatch",
        /// The host failed internally.
        InternalFailure = 10 => "InternalFailure",
        /// A connection broke (used as `proxy_get_status` code after a failed callout).
        BrokenConnection = 11 => "BrokenConnection",
        /// The host does not implement this.
        Unimplemented = 12 => "Unimplemented",
    }
}

impl Status {
    /// The wasm `i32` the hostcall returns.
    pub const fn as_i32(self) -> i32 {
        self as u32 as i32
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), *self as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for n in 0..=12u32 {
            let status = Status::from_u32(n).unwrap();
            assert_eq!(status as u32, n);
        }
        assert_eq!(Status::from_u32(13), None);
        assert_eq!(Status::Unimplemented.as_i32(), 12);
        assert_eq!(Status::CasMismatch.to_string(), "CasMismatch (8)");
    }
}
