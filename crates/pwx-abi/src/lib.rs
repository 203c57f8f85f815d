//! The proxy-wasm ABI as Envoy implements it.
