module {{name}}

// Go 1.24 or newer: the SDK builds WASI reactors with go:wasmexport.
go 1.24

// The SDK has no release tags: this pseudo-version pins one commit.
require github.com/proxy-wasm/proxy-wasm-go-sdk v0.0.0-20260105142703-44c7d5847745
