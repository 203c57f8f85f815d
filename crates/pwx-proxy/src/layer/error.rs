//! The layer's errors: building a chain (the same wording as `pwx run` for filters) and a
//! response body cut short by a reset stream.

use crate::ProxyError;

/// Why a filter chain could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A filter failed to load or start, or the configuration is inconsistent (the same
    /// errors and wording as `pwx run`).
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// No engine was given and the default one could not be created.
    #[error("creating the wasm engine: {0}")]
    Engine(#[from] pwx_host::engine::EngineError),
}

/// A response body ended early: the stream was reset (by a filter, the inner service's body,
/// or a stopping chain). A server that gets this from a body aborts the response instead of
/// ending it cleanly, which is how the client learns of the reset.
#[derive(Debug, thiserror::Error)]
#[error("the stream was reset: {reason}")]
pub struct BodyError {
    pub(crate) reason: String,
}
