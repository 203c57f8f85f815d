//! The pwx YAML format as Rust types. serde decodes files into them and schemars derives the
//! JSON Schema from them, so the schema cannot drift from what is accepted. Doc comments here
//! become the schema's descriptions.

use crate::pwx::values::{AddressText, ConfigValue, DurationText, EndpointText, Environment};
use schemars::JsonSchema;
use serde::Deserialize;

/// A pwx configuration file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "pwx configuration")]
pub(crate) struct PwxFile {
    /// The admin endpoint (off when absent).
    #[serde(default)]
    pub admin: Option<AdminFile>,
    /// The proxy's identity, seen by plugins as `xds.node.id` and `xds.node.cluster`.
    #[serde(default)]
    pub node: Option<NodeFile>,
    /// Listeners: HTTP (routes and Wasm filters) or TCP (`tcp_proxy`).
    #[serde(default)]
    pub listeners: Vec<ListenerFile>,
    /// Upstream clusters that routes name.
    #[serde(default)]
    pub clusters: Vec<ClusterFile>,
    /// Wasm services: plugins that run outside any request (Envoy's bootstrap WasmService).
    #[serde(default)]
    pub services: Vec<ServiceFile>,
}

/// The admin endpoint.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdminFile {
    /// Where it listens.
    pub address: AddressText,
}

/// The proxy's identity.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodeFile {
    /// `xds.node.id`.
    #[serde(default)]
    pub id: String,
    /// `xds.node.cluster`.
    #[serde(default)]
    pub cluster: String,
}

/// A listener.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListenerFile {
    /// Unique name.
    pub name: String,
    /// Where it listens.
    pub address: AddressText,
    /// HTTP versions accepted (default `auto`: HTTP/1.1 and h2c).
    #[serde(default)]
    pub codec: CodecName,
    /// Routes for every host (a virtual host `default` with domains `["*"]`). Use
    /// `virtual_hosts` instead to route by host.
    #[serde(default)]
    pub routes: Option<Vec<RouteFile>>,
    /// Virtual hosts, when routing depends on the Host header.
    #[serde(default)]
    pub virtual_hosts: Option<Vec<VirtualHostFile>>,
    /// Wasm filters in order (HTTP filters; network filters for a `tcp_proxy` listener). The
    /// router comes after them implicitly.
    #[serde(default)]
    pub filters: Vec<PluginFile>,
    /// Makes this a TCP listener that proxies connections to one cluster.
    #[serde(default)]
    pub tcp_proxy: Option<TcpProxyFile>,
    /// Soft limit of bytes buffered per connection (Envoy's default: 1 MiB).
    #[serde(default)]
    pub per_connection_buffer_limit_bytes: Option<u32>,
    /// Close streams idle this long (default 5m; `0` disables).
    #[serde(default)]
    pub stream_idle_timeout: Option<DurationText>,
    /// Time allowed to receive a whole request (default: none).
    #[serde(default)]
    pub request_timeout: Option<DurationText>,
    /// Pass HTTP/1.1 trailers on (Envoy drops them by default).
    #[serde(default)]
    pub http1_enable_trailers: bool,
    /// Don't add `x-envoy-*` headers such as `x-envoy-upstream-service-time` (Envoy's router
    /// adds them by default).
    #[serde(default)]
    pub suppress_envoy_headers: bool,
    /// Terminate TLS on this listener.
    #[serde(default)]
    pub tls: Option<ListenerTlsFile>,
}

/// TLS termination on a listener.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListenerTlsFile {
    /// Certificates with their keys (PEM files, relative to this file). With several, the
    /// one whose names match the client's SNI is used, else the first.
    #[schemars(length(min = 1))]
    pub certificates: Vec<CertificateFile>,
    /// ALPN protocols offered, in order (default `[h2, http/1.1]`; `[]` offers none).
    #[serde(default)]
    pub alpn: Option<Vec<String>>,
    /// Lowest TLS version accepted (default `TLSv1_2`).
    #[serde(default)]
    pub min_version: Option<TlsVersionName>,
    /// Highest TLS version accepted (default `TLSv1_3`).
    #[serde(default)]
    pub max_version: Option<TlsVersionName>,
    /// TLS 1.2 cipher suites in order, by their OpenSSL names as Envoy writes them (e.g.
    /// `ECDHE-RSA-AES128-GCM-SHA256`); default: rustls's set. TLS 1.3 suites are always on.
    #[serde(default)]
    pub cipher_suites: Vec<String>,
}

/// A certificate chain and its key.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CertificateFile {
    /// Certificate chain, leaf first (PEM).
    pub cert_file: String,
    /// Private key (PEM).
    pub key_file: String,
}

/// TLS versions pwx speaks.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
pub(crate) enum TlsVersionName {
    /// TLS 1.2.
    #[serde(rename = "TLSv1_2")]
    Tls12,
    /// TLS 1.3.
    #[serde(rename = "TLSv1_3")]
    Tls13,
}

/// Downstream HTTP versions.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CodecName {
    /// HTTP/1.1 and HTTP/2 with prior knowledge (h2c), detected per connection.
    #[default]
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 (h2c) only.
    Http2,
}

/// A TCP proxy target.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TcpProxyFile {
    /// The cluster connections go to (a filter may pick another one with
    /// `set_envoy_filter_state("envoy.tcp_proxy.cluster", …)`).
    pub cluster: String,
    /// Close connections idle this long either way (default 1h; `0` disables).
    #[serde(default)]
    pub idle_timeout: Option<DurationText>,
}

/// A virtual host.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VirtualHostFile {
    /// Name (logs only).
    pub name: String,
    /// Host names: `*`, `example.com`, `*.example.com`, `example.*`.
    pub domains: Vec<String>,
    /// Routes, first match wins.
    pub routes: Vec<RouteFile>,
}

/// A route: a match, then `cluster` or `direct_response`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteFile {
    /// Optional name.
    #[serde(default)]
    pub name: Option<String>,
    /// Which requests (default: every path, `prefix: /`).
    #[serde(default, rename = "match")]
    pub matcher: Option<MatchFile>,
    /// Proxy to this cluster.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Whole-response timeout for `cluster` routes (default 15s; `0` disables).
    #[serde(default)]
    pub timeout: Option<DurationText>,
    /// Replace the matched prefix with this.
    #[serde(default)]
    pub prefix_rewrite: Option<String>,
    /// Replace the Host header with this.
    #[serde(default)]
    pub host_rewrite_literal: Option<String>,
    /// Answer directly instead of proxying.
    #[serde(default)]
    pub direct_response: Option<DirectResponseFile>,
}

/// A route match: one path condition and any number of header conditions.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MatchFile {
    /// The path starts with this.
    #[serde(default)]
    pub prefix: Option<String>,
    /// The path is exactly this.
    #[serde(default)]
    pub path: Option<String>,
    /// Header conditions; all must hold.
    #[serde(default)]
    pub headers: Vec<HeaderMatchFile>,
    /// Compare the path case-sensitively (default true).
    #[serde(default)]
    pub case_sensitive: Option<bool>,
}

/// A header condition: one of `exact`, `prefix`, `suffix`, `contains`, `present`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeaderMatchFile {
    /// Header name.
    pub name: String,
    /// The value equals this.
    #[serde(default)]
    pub exact: Option<String>,
    /// The value starts with this.
    #[serde(default)]
    pub prefix: Option<String>,
    /// The value ends with this.
    #[serde(default)]
    pub suffix: Option<String>,
    /// The value contains this.
    #[serde(default)]
    pub contains: Option<String>,
    /// true: the header is present (the default with no other condition); false: absent.
    #[serde(default)]
    pub present: Option<bool>,
    /// Match when the condition does not hold.
    #[serde(default)]
    pub invert: bool,
    /// Compare values case-insensitively.
    #[serde(default)]
    pub ignore_case: bool,
}

/// A direct response.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DirectResponseFile {
    /// Status code, 100 to 599.
    #[schemars(range(min = 100, max = 599))]
    pub status: u16,
    /// Body text.
    #[serde(default)]
    pub body: Option<String>,
}

/// A Wasm plugin (filter).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PluginFile {
    /// Plugin name (log prefix, `plugin_name` property).
    pub name: String,
    /// The module: a path (relative to this file), `https://…#sha256=<hex>`, or
    /// `oci://registry/repo:tag` / `oci://registry/repo@sha256:<hex>`.
    pub module: String,
    /// Root context to use in the module.
    #[serde(default)]
    pub root_id: String,
    /// VM to share with plugins of the same vm_id and module.
    #[serde(default)]
    pub vm_id: String,
    /// Plugin configuration (`proxy_on_configure`).
    #[serde(default)]
    pub configuration: Option<ConfigValue>,
    /// VM configuration (`proxy_on_vm_start`).
    #[serde(default)]
    pub vm_configuration: Option<ConfigValue>,
    /// Environment variables the module sees.
    #[serde(default)]
    pub environment: Environment,
    /// Names of pwx's own environment variables to pass to the module.
    #[serde(default)]
    pub host_env: Vec<String>,
    /// What happens to traffic when the VM fails (default `fail_closed`).
    #[serde(default)]
    pub failure_policy: Option<FailurePolicyName>,
    /// Base backoff between rebuilds under `fail_reload` (default 1s).
    #[serde(default)]
    pub reload_backoff: Option<DurationText>,
    /// Envoy's allow_on_headers_stop_iteration.
    #[serde(default)]
    pub allow_on_headers_stop_iteration: bool,
}

/// A Wasm service (runs outside requests).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServiceFile {
    /// Plugin name.
    pub name: String,
    /// The module (as for filters).
    pub module: String,
    /// Root context to use in the module.
    #[serde(default)]
    pub root_id: String,
    /// VM to share with plugins of the same vm_id and module.
    #[serde(default)]
    pub vm_id: String,
    /// Plugin configuration (`proxy_on_configure`).
    #[serde(default)]
    pub configuration: Option<ConfigValue>,
    /// VM configuration (`proxy_on_vm_start`).
    #[serde(default)]
    pub vm_configuration: Option<ConfigValue>,
    /// Environment variables the module sees.
    #[serde(default)]
    pub environment: Environment,
    /// Names of pwx's own environment variables to pass to the module.
    #[serde(default)]
    pub host_env: Vec<String>,
    /// One VM for the process (default true) or one per worker.
    #[serde(default = "yes")]
    pub singleton: bool,
}

fn yes() -> bool {
    true
}

/// Failure policies.
// The names are Envoy's FAIL_* values, spelled as the YAML spells them.
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FailurePolicyName {
    /// Reject streams with 503 while the VM is failed.
    FailClosed,
    /// Let streams through without the plugin.
    FailOpen,
    /// Rebuild the VM with backoff; fail closed meanwhile.
    FailReload,
}

/// A cluster.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClusterFile {
    /// Unique name.
    pub name: String,
    /// Endpoints, `host:port`.
    pub endpoints: Vec<EndpointText>,
    /// How hosts become addresses (default: `static` if every host is an IP address, else
    /// `strict_dns`).
    #[serde(default)]
    pub discovery: Option<DiscoveryName>,
    /// HTTP version to the endpoints (default `http1`; `http2` without TLS is h2c).
    #[serde(default)]
    pub protocol: ProtocolName,
    /// Pass HTTP/1.1 trailers on to the endpoints.
    #[serde(default)]
    pub http1_enable_trailers: bool,
    /// TCP connect timeout (default 5s).
    #[serde(default)]
    pub connect_timeout: Option<DurationText>,
    /// Load balancing (default `round_robin`).
    #[serde(default)]
    pub lb_policy: LbPolicyName,
    /// Address families for DNS clusters (default `auto`).
    #[serde(default)]
    pub dns_lookup_family: DnsLookupFamilyName,
    /// How often DNS clusters re-resolve (default 5s).
    #[serde(default)]
    pub dns_refresh_rate: Option<DurationText>,
    /// Soft limit of bytes buffered per upstream connection.
    #[serde(default)]
    pub per_connection_buffer_limit_bytes: Option<u32>,
    /// TLS to the endpoints.
    #[serde(default)]
    pub tls: Option<TlsFile>,
}

/// Cluster discovery types.
#[derive(Clone, Copy, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DiscoveryName {
    /// Hosts are IP addresses.
    Static,
    /// Every address of every host is an endpoint.
    StrictDns,
    /// One host, resolved per connection.
    LogicalDns,
}

/// Upstream HTTP versions.
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ProtocolName {
    /// HTTP/1.1.
    #[default]
    Http1,
    /// HTTP/2.
    Http2,
}

/// Load balancing policies.
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LbPolicyName {
    /// Round robin.
    #[default]
    RoundRobin,
    /// Fewest active requests.
    LeastRequest,
    /// Random.
    Random,
}

/// DNS address families.
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DnsLookupFamilyName {
    /// IPv6 if any, else IPv4.
    #[default]
    Auto,
    /// IPv4 only.
    V4Only,
    /// IPv6 only.
    V6Only,
    /// IPv4 if any, else IPv6.
    V4Preferred,
    /// Both.
    All,
}

/// Upstream TLS.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsFile {
    /// Server name to send and verify (default: the endpoint's host).
    #[serde(default)]
    pub sni: Option<String>,
    /// PEM file of trusted CAs (relative to this file); default: the system's roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// ALPN protocols to offer (default: `h2` for `protocol: http2`, else `http/1.1`).
    #[serde(default)]
    pub alpn: Vec<String>,
    /// Client certificate chain (PEM), with `key_file`, for mutual TLS.
    #[serde(default)]
    pub cert_file: Option<String>,
    /// Client private key (PEM).
    #[serde(default)]
    pub key_file: Option<String>,
}
