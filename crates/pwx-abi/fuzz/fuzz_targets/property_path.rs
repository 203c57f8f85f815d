//! Fuzzes the property-path codec: decoding never panics and encode(decode(p)) is p without
//! its trailing NUL.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let segments = pwx_abi::path::decode(data);
    let encoded = pwx_abi::path::encode(&segments);
    let expected = data.strip_suffix(&[0]).unwrap_or(data);
    assert_eq!(encoded, expected);
});
