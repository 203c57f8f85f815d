//! The filter chain as a tower layer: every request of any hyper/axum service goes through the
//! same proxy-wasm data plane as under `pwx run` — request path in order, the wrapped (inner)
//! service as the upstream, response path in reverse.
//!
//! The data plane is single-threaded by design (each worker owns its VM replicas), while tower
//! services are `Send`. So a [`FilterChain`] owns N filter worker threads built like `pwx run`'s
//! (without listeners); [`FilterService`] hands each request to a worker through a channel, the
//! worker runs the normal stream driver, and when the request leaves the filters the worker
//! hands it back to the tower future (`upstream.rs`), which calls the inner service on the
//! caller's runtime and hands the response to the worker for the response path.
//!
//! Files: `builder.rs` (configuration, loading, canary start, the worker threads), `feed.rs`
//! (the hand-off of requests to workers), `upstream.rs` (the inner service as an upstream),
//! `service.rs` (the tower `Layer` and `Service`), `error.rs`.

mod builder;
mod error;
mod feed;
mod service;
mod upstream;

pub use builder::{FilterChain, FilterChainBuilder};
pub use error::{BodyError, BuildError};
pub use service::{FilterLayer, FilterService, FilteredBody};

pub(crate) use feed::Feed;
pub(crate) use upstream::InnerUpstream;

/// The name of the one route's cluster: the inner service. It is not a cluster filters can
/// call out to (`proxy_http_call` names only the clusters given to the builder).
pub const INNER_SERVICE: &str = "inner_service";

/// The client's addresses, for the properties filters read (`source.address`,
/// `destination.address`). A tower service does not know its connection; insert this as a
/// request extension (e.g. from axum's `ConnectInfo`) to give the filters the addresses.
/// Without it the properties are absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr {
    /// The client's address.
    pub remote: std::net::SocketAddr,
    /// The address the client connected to, if known.
    pub local: Option<std::net::SocketAddr>,
}
