//! Property paths: segments joined with NUL bytes, with or without a trailing NUL (the Rust and
//! Go SDKs omit it, the C++ SDK adds one). There is no dot syntax: `request.path` is a single
//! segment.

/// Splits a property path into its segments; a single trailing NUL is ignored.
pub fn decode(path: &[u8]) -> Vec<&[u8]> {
    if path.is_empty() {
        return Vec::new();
    }
    let path = path.strip_suffix(&[0]).unwrap_or(path);
    path.split(|b| *b == 0).collect()
}

/// Joins segments with NULs (no trailing NUL, as the Rust SDK sends them).
pub fn encode<S: AsRef<[u8]>>(segments: &[S]) -> Vec<u8> {
    segments
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(&0u8)
}

/// Renders a path for messages: segments joined with dots.
pub fn display(path: &[u8]) -> String {
    decode(path)
        .iter()
        .map(|s| String::from_utf8_lossy(s))
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sdk_styles_decode_alike() {
        assert_eq!(decode(b"request\0path"), vec![&b"request"[..], b"path"]);
        assert_eq!(decode(b"request\0path\0"), vec![&b"request"[..], b"path"]);
        assert_eq!(decode(b"plugin_root_id"), vec![&b"plugin_root_id"[..]]);
        assert_eq!(decode(b"request.path"), vec![&b"request.path"[..]]);
        assert_eq!(decode(b""), Vec::<&[u8]>::new());
        assert_eq!(decode(b"a\0\0b"), vec![&b"a"[..], b"", b"b"]);
    }

    #[test]
    fn encode_round_trips() {
        let encoded = encode(&["request", "headers", "x-foo"]);
        assert_eq!(encoded, b"request\0headers\0x-foo");
        assert_eq!(decode(&encoded).len(), 3);
        assert_eq!(display(&encoded), "request.headers.x-foo");
    }
}
