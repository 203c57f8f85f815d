//! Errors of the host runtime: each says what failed, where, and what to do.

use pwx_abi::AbiVersion;

/// A module could not be loaded, compiled or linked.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a valid WebAssembly module.
    #[error("not a valid WebAssembly module: {0}")]
    Invalid(String),
    /// No accepted ABI marker export.
    #[error(
        "the module declares no proxy-wasm ABI version Envoy accepts (exports {found}); \
         build it with a proxy-wasm SDK that targets ABI 0.1.0, 0.2.0 or 0.2.1"
    )]
    MissingAbiVersion {
        /// What marker-like exports were found, for the message.
        found: String,
    },
    /// An import neither this ABI version nor pwx provides.
    #[error("missing import {module}.{name} {signature} for ABI {abi}: {hint}")]
    UnknownImport {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
        /// Its declared signature.
        signature: String,
        /// The module's ABI version.
        abi: AbiVersion,
        /// What to do about it.
        hint: String,
    },
    /// An import the host provides, declared with another signature.
    #[error(
        "import {module}.{name} has signature {found} but the host provides {expected}: \
         the module was built against a different ABI definition; rebuild it with a \
         supported SDK version"
    )]
    ImportSignature {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
        /// The module's signature.
        found: String,
        /// The host's signature.
        expected: String,
    },
    /// An export with a known name and the wrong signature (Envoy: "Bad function signature").
    #[error("export {name} has signature {found}, expected {expected} for ABI {abi}")]
    ExportSignature {
        /// Export name.
        name: String,
        /// The module's signature.
        found: String,
        /// What the ABI says.
        expected: String,
        /// The module's ABI version.
        abi: AbiVersion,
    },
    /// Neither `malloc` nor `proxy_on_memory_allocate` is exported.
    #[error(
        "the module exports no allocator (malloc or proxy_on_memory_allocate): the host cannot \
         return data to it; export one (every proxy-wasm SDK does)"
    )]
    MissingAllocator,
    /// No exported memory.
    #[error("the module exports no memory named \"memory\"")]
    MissingMemory,
    /// wasmtime rejected the module.
    #[error("compiling the module failed: {0}")]
    Compile(String),
    /// The compile cache could not be used.
    #[error("compile cache {path}: {message}")]
    Cache {
        /// The cache file or directory.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// A VM or a plugin could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Instantiation failed (limits, a trap in a start section, …).
    #[error("instantiating the module failed: {0}")]
    Instantiate(String),
    /// A start-up function (`_initialize`, `_start`, `main`) trapped or ran too long.
    #[error("module start-up ({function}) failed: {message}")]
    Startup {
        /// Which function.
        function: &'static str,
        /// The trap.
        message: String,
    },
    /// `proxy_on_vm_start` returned false.
    #[error(
        "plugin {plugin}: proxy_on_vm_start returned false (the module rejected the VM \
         configuration); see the filter's log lines above for its reason"
    )]
    VmStartRejected {
        /// Plugin name.
        plugin: String,
    },
    /// `proxy_on_configure` returned false.
    #[error(
        "plugin {plugin}: proxy_on_configure returned false (the module rejected its plugin \
         configuration); see the filter's log lines above for its reason"
    )]
    ConfigureRejected {
        /// Plugin name.
        plugin: String,
    },
    /// The VM failed (trap, deadline, memory) during a start-up callback.
    #[error("plugin {plugin}: {callback} failed: {message}")]
    Failed {
        /// Plugin name.
        plugin: String,
        /// The callback that failed.
        callback: &'static str,
        /// The trap.
        message: String,
    },
    /// The VM had already failed.
    #[error("the VM has failed earlier and accepts no new plugins: {0}")]
    VmFailed(String),
}
