//! What a proxy runs: listeners (each with its filter chain and route table), workers, the
//! clusters (for routing and for the filters' callouts), bootstrap services and the admin
//! endpoint.

use crate::routes::{RouteAction, VirtualHost};
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

/// Where requests go after the request path of the chain (the quick mode of `pwx run`).
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

/// What a cluster is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClusterKind {
    /// Endpoints reached over the network.
    #[default]
    Endpoints,
    /// The built-in echo upstream (answers with the request as JSON).
    Echo,
}

/// A named upstream: where proxied requests and callouts go.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// Name routes and `proxy_http_call` use.
    pub name: String,
    /// Network endpoints or the built-in echo.
    pub kind: ClusterKind,
    /// `host:port` endpoints, used round robin (host names are resolved per connection).
    pub endpoints: Vec<String>,
    /// HTTP/1.1 or h2c.
    pub protocol: UpstreamProtocol,
    /// How long a connection attempt may take (Envoy's default: 5 s).
    pub connect_timeout: Duration,
    /// TLS to the endpoints (`None`: cleartext).
    pub tls: Option<crate::tls::ClientTls>,
}

impl ClusterConfig {
    /// A cluster with one endpoint and Envoy's defaults.
    pub fn single(name: impl Into<String>, endpoint: impl Into<String>) -> Self {
        ClusterConfig {
            name: name.into(),
            kind: ClusterKind::Endpoints,
            endpoints: vec![endpoint.into()],
            protocol: UpstreamProtocol::Http1,
            connect_timeout: Duration::from_secs(5),
            tls: None,
        }
    }
}

/// The name of the built-in echo cluster that quick mode routes to.
pub const ECHO_CLUSTER: &str = "echo";

/// An HTTP listener: its address, filter chain and route table.
#[derive(Clone, Debug)]
pub struct ListenerConfig {
    /// Name (`/listeners`, messages).
    pub name: String,
    /// Address (port 0 picks a free port).
    pub address: SocketAddr,
    /// HTTP filters, in request order.
    pub filters: Vec<FilterConfig>,
    /// Route table.
    pub virtual_hosts: Vec<VirtualHost>,
    /// How long a stream may sit paused with nothing happening before it is answered with 408
    /// (Envoy's `stream_idle_timeout`, default 5 min).
    pub stream_idle_timeout: Duration,
    /// The router's `suppress_envoy_headers`: no `x-envoy-upstream-service-time` on responses.
    pub suppress_envoy_headers: bool,
    /// TLS termination (`None`: cleartext HTTP/1.1 and h2c).
    pub tls: Option<crate::tls::ServerTls>,
    /// `Some` for a TCP listener: `filters` are network filters and connections go to this
    /// tcp_proxy's cluster (`virtual_hosts` is unused).
    pub tcp: Option<crate::tcp::TcpProxyConfig>,
}

/// A proxy.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// HTTP listeners.
    pub listeners: Vec<ListenerConfig>,
    /// Number of workers (default: the number of cores).
    pub workers: usize,
    /// Clusters, for routes and for callouts.
    pub clusters: Vec<ClusterConfig>,
    /// Bootstrap services (Envoy's `envoy.bootstrap.wasm` singletons): plugins with no
    /// listener, on a thread of their own, shared by the whole process.
    pub services: Vec<FilterConfig>,
    /// Also start every listener plugin once on the services thread, as Envoy starts each
    /// plugin on its main thread too (where its root context gets ticks and queue items but
    /// never streams). Off by default; `pwx run -c envoy.yaml` turns it on.
    pub main_thread_plugins: bool,
    /// Admin endpoint address (`None`: no admin endpoint).
    pub admin: Option<SocketAddr>,
    /// Limits applied to every VM replica.
    pub limits: Limits,
}

impl ProxyConfig {
    /// One listener on `listen` running `filters` in front of `upstream` (quick mode), with
    /// Envoy's defaults for timeouts, one worker, no admin.
    pub fn new(listen: SocketAddr, filters: Vec<FilterConfig>, upstream: UpstreamConfig) -> Self {
        let mut clusters = Vec::new();
        let cluster = match upstream {
            UpstreamConfig::Echo => {
                clusters.push(ClusterConfig {
                    kind: ClusterKind::Echo,
                    endpoints: Vec::new(),
                    ..ClusterConfig::single(ECHO_CLUSTER, "")
                });
                ECHO_CLUSTER.to_string()
            }
            UpstreamConfig::Cluster(name) => name,
        };
        ProxyConfig {
            listeners: vec![ListenerConfig {
                name: "main".into(),
                address: listen,
                filters,
                virtual_hosts: vec![VirtualHost::catch_all(RouteAction::to_cluster(cluster))],
                stream_idle_timeout: Duration::from_secs(300),
                suppress_envoy_headers: false,
                tls: None,
                tcp: None,
            }],
            workers: 1,
            clusters,
            services: Vec::new(),
            main_thread_plugins: false,
            admin: None,
            limits: Limits::default(),
        }
    }
}

/// The cluster names filters may call out to, as the host checks them while `proxy_http_call`
/// runs; replaced with the clusters of a reloaded configuration (`set`).
#[derive(Debug, Default)]
pub struct ClusterNames(std::sync::RwLock<std::collections::HashSet<String>>);

impl ClusterNames {
    /// The clusters of `config`.
    pub fn of(config: &ProxyConfig) -> Self {
        let names = ClusterNames::default();
        names.set(config);
        names
    }

    /// Replaces the names with the clusters of `config`; returns the previous names (for
    /// `restore` when the new configuration is refused).
    pub fn set(&self, config: &ProxyConfig) -> std::collections::HashSet<String> {
        let names = config.clusters.iter().map(|c| c.name.clone()).collect();
        std::mem::replace(
            &mut *self.0.write().unwrap_or_else(|p| p.into_inner()),
            names,
        )
    }

    /// Puts back the names `set` returned.
    pub fn restore(&self, names: std::collections::HashSet<String>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = names;
    }
}

impl pwx_host::services::Clusters for ClusterNames {
    fn has_cluster(&self, cluster: &str) -> bool {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(cluster)
    }
}
