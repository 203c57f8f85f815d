//! What can go wrong while driving a filter; every message says what to do.

/// An error of the testkit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The module file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The engine could not be created.
    #[error("cannot create the wasm engine: {0}")]
    Engine(String),
    /// The module does not load (invalid, wrong ABI, unknown import, …).
    #[error("the module does not load: {0}")]
    Load(#[from] pwx_host::LoadError),
    /// Start-up, `on_vm_start` or `on_configure` failed or refused the configuration.
    #[error("the plugin does not start: {0}")]
    Start(#[from] pwx_host::StartError),
    /// The VM trapped (panic, out-of-bounds access, deadline) outside a request.
    #[error("the VM failed: {0}")]
    VmFailed(String),
    /// The filter made a callout the test gave no answer for.
    #[error(
        "the filter called cluster \"{cluster}\" ({method} {path}) and the test has no answer for \
         it: add one with Filter::answer_callouts (pwx test: a `callouts` entry with this cluster)"
    )]
    UnansweredCallout {
        /// Cluster named by the filter.
        cluster: String,
        /// `:method` of the callout.
        method: String,
        /// `:path` of the callout.
        path: String,
    },
    /// Time was stepped but the filter never set a tick period.
    #[error(
        "the filter set no tick period (proxy_set_tick_period_milliseconds): there is no timer to step"
    )]
    NoTimer,
}
