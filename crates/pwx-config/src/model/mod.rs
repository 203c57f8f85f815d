//! The configuration model: what the data plane runs, whichever file format it came from.
//! Plain data, no I/O. Defaults (Envoy's) are already applied; `None` for a timeout means "no
//! timeout".

mod cluster;
mod http;
mod tls;
mod wasm;

pub use cluster::{
    Cluster, Discovery, DnsLookupFamily, Endpoint, LbPolicy, UpstreamProtocol, UpstreamTls,
};
pub use http::{
    ClusterRoute, Codec, HeaderMatch, HeaderMatcher, HttpFilter, HttpListener, PathMatch, Route,
    RouteAction, RouteMatch, Router, VirtualHost,
};
pub use tls::{DataSource, DownstreamTls, TlsCertificate, TlsVersion, UpstreamValidation};
pub use wasm::{CodeSource, WasmPlugin, WasmRuntime, WasmService, WasmVm};

use std::net::SocketAddr;

/// A whole configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    /// The admin endpoint, if configured.
    pub admin: Option<Admin>,
    /// Who this proxy is (`xds.node` properties).
    pub node: Node,
    /// Listeners in file order.
    pub listeners: Vec<Listener>,
    /// Upstream clusters in file order; names are unique.
    pub clusters: Vec<Cluster>,
    /// Bootstrap Wasm services (Envoy's `bootstrap_extensions` of type `WasmService`): plugins
    /// that run outside any stream, for timers, queues and shared data.
    pub wasm_services: Vec<WasmService>,
}

impl Config {
    /// The cluster named `name`.
    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.name == name)
    }
}

/// The admin endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admin {
    /// Where it listens (port 0: any free port).
    pub address: SocketAddr,
}

/// The proxy's identity (Envoy's `node`; `xds.node.id` and `xds.node.cluster`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    /// `node.id`; empty when not configured.
    pub id: String,
    /// `node.cluster`; empty when not configured.
    pub cluster: String,
}

/// One listening socket and what runs on its connections.
#[derive(Clone, Debug, PartialEq)]
pub struct Listener {
    /// Unique name.
    pub name: String,
    /// Where it listens (port 0: any free port).
    pub address: SocketAddr,
    /// Envoy's `per_connection_buffer_limit_bytes` (soft limit on buffered bytes per
    /// connection; Envoy's default is 1 MiB). `None`: not configured.
    pub per_connection_buffer_limit_bytes: Option<u32>,
    /// HTTP (connection manager) or TCP (tcp_proxy).
    pub kind: ListenerKind,
    /// TLS termination (Envoy's filter chain `transport_socket`), if configured.
    pub tls: Option<DownstreamTls>,
}

/// What a listener does with its connections.
#[derive(Clone, Debug, PartialEq)]
pub enum ListenerKind {
    /// Envoy's `http_connection_manager`.
    Http(HttpListener),
    /// Envoy's `tcp_proxy`, after optional Wasm network filters.
    Tcp(TcpListener),
}

/// A TCP proxy listener: network filters, then bytes to one cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct TcpListener {
    /// Wasm network filters (`envoy.filters.network.wasm`) in order.
    pub network_filters: Vec<WasmPlugin>,
    /// The cluster connections go to (unless a filter picks another one through the
    /// `envoy.tcp_proxy.cluster` filter state).
    pub cluster: String,
    /// Close a connection with no traffic either way for this long (Envoy's default: 1 hour).
    /// `None`: disabled (configured as 0).
    pub idle_timeout: Option<std::time::Duration>,
}
