//! Fuzzes the header-map codec: decoding never panics, and what decodes re-encodes to the same
//! bytes (for inputs of at least four bytes, the canonical form).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(pairs) = pwx_abi::pairs::decode(data) {
        let encoded = pwx_abi::pairs::encode(&pairs);
        if data.len() >= 4 {
            assert_eq!(encoded, data);
        }
        assert_eq!(pwx_abi::pairs::decode(&encoded).ok(), Some(pairs));
    }
});
