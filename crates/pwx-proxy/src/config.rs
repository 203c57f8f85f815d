//! What a proxy runs: listener, workers, the filter chain, where requests go, the clusters
//! (for routing and for the filters' callouts) and the admin endpoint.

use pwx_host::{Limits, PluginConfig, VmConfig};
use std::net::SocketAddr;
use std::time::Duration;

/// One filter of the chain: a module and its plugin and VM configuration.
#[derive(Clone, Debug)]
pub struct FilterConfig {
    /// Module bytes.
    pub wasm: Vec<u8>,
    /// Where the module came from, for messages.
    pub source: String,
    /// Plugin configuration (name, root_id, configuration, failure policy).
    pub plugin: PluginConfig,
    /// VM configuration (vm_id, configuration, environment).
    pub vm: VmConfig,
}

/// Where requests go after the request path of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamConfig {
    /// The built-in echo upstream: answers with the request it received as JSON.
    Echo,
    /// A cluster, by name.
    Cluster(String),
}

/// HTTP version spoken to a cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1.
    #[default]
    Http1,
    /// HTTP/2 over cleartext (h2c, prior knowledge), as gRPC services speak.
    Http2,
}

/// A named upstream: where proxied requests and callouts go.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Name routes and `proxy_http_call` use.
    pub name: String,
    /// `host:port` endpoints, used round robin (host names are resolved per connection).
    pub endpoints: Vec<String>,
    /// HTTP/1.1 or h2c.
    pub protocol: UpstreamProtocol,
    /// How long a connection attempt may take (Envoy's default: 5 s).
    pub connect_timeout: Duration,
}

impl ClusterConfig {
    /// A cluster with one endpoint and Envoy's defaults.
    pub fn single(name: impl Into<String>, endpoint: impl Into<String>) -> Self {
        ClusterConfig {
            name: name.into(),
            endpoints: vec![endpoint.into()],
            protocol: UpstreamProtocol::Http1,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// A proxy.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Listener address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Number of workers (default: the number of cores).
    pub workers: usize,
    /// Filters, in request order.
    pub filters: Vec<FilterConfig>,
    /// Where requests go after the filters.
    pub upstream: UpstreamConfig,
    /// Clusters, for the upstream and for callouts.
    pub clusters: Vec<ClusterConfig>,
    /// Route timeout for proxied requests (Envoy's default: 15 s; `None`: no timeout).
    pub route_timeout: Option<Duration>,
    /// How long a stream may sit paused with nothing happening before it is answered with 408
    /// (Envoy's `stream_idle_timeout`, default 5 min).
    pub stream_idle_timeout: Duration,
    /// Admin endpoint address (`None`: no admin endpoint).
    pub admin: Option<SocketAddr>,
    /// Limits applied to every VM replica.
    pub limits: Limits,
}

impl ProxyConfig {
    /// A proxy on `listen` with Envoy's defaults for timeouts, no clusters and no admin.
    pub fn new(listen: SocketAddr, filters: Vec<FilterConfig>, upstream: UpstreamConfig) -> Self {
        ProxyConfig {
            listen,
            workers: 1,
            filters,
            upstream,
            clusters: Vec::new(),
            route_timeout: Some(Duration::from_secs(15)),
            stream_idle_timeout: Duration::from_secs(300),
            admin: None,
            limits: Limits::default(),
        }
    }
}
