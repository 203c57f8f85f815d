//! Upstream clusters: endpoints, discovery, protocol, load balancing, TLS.

pub use super::tls::UpstreamTls;
use std::time::Duration;

/// An upstream cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Cluster {
    /// Unique name.
    pub name: String,
    /// How endpoint hosts become addresses.
    pub discovery: Discovery,
    /// For `Discovery::Dns`: which address families to use.
    pub dns_lookup_family: DnsLookupFamily,
    /// Endpoints in order (never empty; `LogicalDns` has exactly one).
    pub endpoints: Vec<Endpoint>,
    /// How often DNS clusters re-resolve (Envoy's `dns_refresh_rate`, default 5 s).
    pub dns_refresh_rate: Duration,
    /// TCP connect timeout (Envoy's default 5 s).
    pub connect_timeout: Duration,
    /// HTTP version spoken to the endpoints.
    pub protocol: UpstreamProtocol,
    /// Envoy's `http_protocol_options.enable_trailers` for HTTP/1.1 upstreams.
    pub http1_enable_trailers: bool,
    /// Load balancing between endpoints.
    pub lb_policy: LbPolicy,
    /// Envoy's `per_connection_buffer_limit_bytes` for upstream connections.
    pub per_connection_buffer_limit_bytes: Option<u32>,
    /// TLS to the endpoints, if configured.
    pub tls: Option<UpstreamTls>,
}

/// How endpoint hosts become addresses (Envoy's cluster `type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Discovery {
    /// `STATIC`: every host is an IP address.
    #[default]
    Static,
    /// `STRICT_DNS`: every host is resolved; every address is an endpoint; re-resolved
    /// periodically.
    StrictDns,
    /// `LOGICAL_DNS`: one host, resolved per new connection; the first address is used.
    LogicalDns,
}

/// Envoy's `dns_lookup_family`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DnsLookupFamily {
    /// `AUTO` (Envoy's default): IPv6 if any, else IPv4.
    #[default]
    Auto,
    /// `V4_ONLY`.
    V4Only,
    /// `V6_ONLY`.
    V6Only,
    /// `V4_PREFERRED`: IPv4 if any, else IPv6.
    V4Preferred,
    /// `ALL`: both.
    All,
}

/// One endpoint: an IP address or (for DNS clusters) a host name, and a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// IP literal (no brackets) or DNS name.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// HTTP version to the upstream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 (Envoy's default).
    #[default]
    Http1,
    /// HTTP/2; without TLS that is prior knowledge (h2c).
    Http2,
}

/// Load balancing policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LbPolicy {
    /// `ROUND_ROBIN` (Envoy's default).
    #[default]
    RoundRobin,
    /// `LEAST_REQUEST`.
    LeastRequest,
    /// `RANDOM`.
    Random,
}
