//! A proxy-wasm host runtime on wasmtime.
