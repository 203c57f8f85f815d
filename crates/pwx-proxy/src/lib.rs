//! The pwx data plane: N workers, each with its own runtime, listener socket (SO_REUSEPORT),
//! VM replicas and upstream client; a request lives and dies on one worker and takes no lock.
//!
//! Bodies are buffered whole (per request, up to the buffer limit); HTTP/1.1 and h2c are
//! served downstream, HTTP/1.1 or h2c spoken to clusters; TCP listeners run network filters in
//! front of a tcp_proxy (`tcp.rs`). docs/compat.md lists the differences
//! from Envoy.

mod admin;
mod chain;
mod clusters;
mod config;
mod dispatch;
mod echo;
mod grpc;
mod routes;
mod server;
mod stream;
mod tcp;
mod worker;

pub use config::{
    ClusterConfig, ClusterKind, ECHO_CLUSTER, FilterConfig, ListenerConfig, ProxyConfig,
    UpstreamConfig, UpstreamProtocol,
};
pub use routes::{
    HeaderMatch, HeaderMatcher, PathMatch, Route, RouteAction, RouteMatch, VirtualHost,
};
pub use server::{Proxy, ProxyError};
pub use tcp::TcpProxyConfig;
