//! The pwx data plane: N workers, each with its own runtime, listener socket (SO_REUSEPORT),
//! VM replicas and upstream client; a request lives and dies on one worker and takes no lock.
//!
//! Bodies stream through the filters chunk by chunk, as Envoy's filter manager hands them over
//! (buffered only where a filter asks for it, up to the buffer limit); HTTP/1.1 and h2c are
//! served downstream, HTTP/1.1 or h2c spoken to clusters, each optionally over TLS; TCP
//! listeners run network filters in front of a tcp_proxy (`tcp.rs`). The same chain runs in
//! front of any hyper/axum service as a tower layer (`layer`). docs/compat.md lists the
//! differences
//! from Envoy.

mod admin;
mod body;
mod chain;
mod clusters;
mod config;
mod dispatch;
mod echo;
mod grpc;
pub mod layer;
mod reload;
mod routes;
mod server;
mod stream;
mod tcp;
pub mod tls;
mod worker;

pub use config::{
    ClusterConfig, ClusterKind, ClusterNames, ECHO_CLUSTER, FilterConfig, ListenerConfig,
    ProxyConfig, UpstreamConfig, UpstreamProtocol,
};
pub use reload::{ReloadRequest, Reloaded};
pub use routes::{
    HeaderMatch, HeaderMatcher, PathMatch, Route, RouteAction, RouteMatch, VirtualHost,
};
pub use server::{Proxy, ProxyError};
pub use tcp::TcpProxyConfig;
