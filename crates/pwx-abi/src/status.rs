//! `WasmResult`: the status every `proxy_*` hostcall returns, with Envoy's values.

/// The status a hostcall returns to the module (Envoy's `WasmResult`).
///
/// The Rust SDK 0.2.5 only knows 0, 1, 2, 3, 4, 7, 8 and 10 and panics on anything else, so a
/// host must return exactly what Envoy returns for each call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Status {
    /// The call succeeded.
    Ok = 0,
    /// The thing asked for does not exist (or is not available now).
    NotFound = 1,
    /// An argument is invalid, or the object is not available in this phase.
    BadArgument = 2,
    /// A value could not be serialized.
    SerializationFailure = 3,
    /// Input could not be parsed.
    ParseFailure = 4,
    /// An expression is invalid (not in the spec).
    BadExpression = 5,
    /// A pointer or size points outside the module's memory.
    InvalidMemoryAccess = 6,
    /// A queue is empty.
    Empty = 7,
    /// A compare-and-swap on shared data failed.
    CasMismatch = 8,
    /// Result type mismatch (not in the spec).
    ResultMismatch = 9,
    /// The host failed internally.
    InternalFailure = 10,
    /// A connection broke (used as `proxy_get_status` code after a failed callout).
    BrokenConnection = 11,
    /// The host does not implement this.
    Unimplemented = 12,
}

impl Status {
    /// The wasm `i32` the hostcall returns.
    pub const fn as_i32(self) -> i32 {
        self as u32 as i32
    }

    /// Decodes a status number.
    pub const fn from_u32(value: u32) -> Option<Status> {
        Some(match value {
            0 => Status::Ok,
            1 => Status::NotFound,
            2 => Status::BadArgument,
            3 => Status::SerializationFailure,
            4 => Status::ParseFailure,
            5 => Status::BadExpression,
            6 => Status::InvalidMemoryAccess,
            7 => Status::Empty,
            8 => Status::CasMismatch,
            9 => Status::ResultMismatch,
            10 => Status::InternalFailure,
            11 => Status::BrokenConnection,
            12 => Status::Unimplemented,
            _ => return None,
        })
    }

    /// Envoy's name for the status.
    pub const fn name(self) -> &'static str {
        match self {
            Status::Ok => "Ok",
            Status::NotFound => "NotFound",
            Status::BadArgument => "BadArgument",
            Status::SerializationFailure => "SerializationFailure",
            Status::ParseFailure => "ParseFailure",
            Status::BadExpression => "BadExpression",
            Status::InvalidMemoryAccess => "InvalidMemoryAccess",
            Status::Empty => "Empty",
            Status::CasMismatch => "CasMismatch",
            Status::ResultMismatch => "ResultMismatch",
            Status::InternalFailure => "InternalFailure",
            Status::BrokenConnection => "BrokenConnection",
            Status::Unimplemented => "Unimplemented",
        }
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
