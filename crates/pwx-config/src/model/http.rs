//! HTTP listeners: codec, timeouts, virtual hosts and routes, the HTTP filter chain.

use crate::model::WasmPlugin;
use std::time::Duration;

/// An HTTP listener (Envoy's `http_connection_manager`).
#[derive(Clone, Debug, PartialEq)]
pub struct HttpListener {
    /// Which HTTP versions the listener speaks.
    pub codec: Codec,
    /// Virtual hosts, matched by `Host`/`:authority` as Envoy does (exact, then `*.suffix`,
    /// then `prefix*`, then `*`).
    pub virtual_hosts: Vec<VirtualHost>,
    /// HTTP filters in order; the last one is always `HttpFilter::Router`.
    pub http_filters: Vec<HttpFilter>,
    /// Envoy's `stream_idle_timeout` (default 5 minutes). `None`: disabled (configured as 0).
    pub stream_idle_timeout: Option<Duration>,
    /// Envoy's `request_timeout` for receiving the whole request (default: none).
    pub request_timeout: Option<Duration>,
    /// Envoy's `http_protocol_options.enable_trailers`: pass HTTP/1.1 trailers on (Envoy drops
    /// them by default).
    pub http1_enable_trailers: bool,
}

/// The downstream codec.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Codec {
    /// HTTP/1.1 or HTTP/2 (prior knowledge, "h2c"), detected per connection.
    #[default]
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only (h2c: no TLS).
    Http2,
}

/// A virtual host: the routes for a set of domains.
#[derive(Clone, Debug, PartialEq)]
pub struct VirtualHost {
    /// Name (logs and stats only).
    pub name: String,
    /// Domains: `*`, `example.com`, `*.example.com`, `example.*`, optionally with `:port`.
    pub domains: Vec<String>,
    /// Routes, first match wins.
    pub routes: Vec<Route>,
}

/// One route.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// Optional name (empty when not given).
    pub name: String,
    /// What requests it takes.
    pub matcher: RouteMatch,
    /// What it does with them.
    pub action: RouteAction,
}

/// Which requests a route takes.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteMatch {
    /// The path condition.
    pub path: PathMatch,
    /// Every header matcher must match.
    pub headers: Vec<HeaderMatcher>,
    /// Whether the path comparison is case sensitive (Envoy's default: true).
    pub case_sensitive: bool,
}

/// The path condition of a route (matched against the path without the query string).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatch {
    /// The path starts with this.
    Prefix(String),
    /// The path is exactly this.
    Path(String),
}

/// A condition on one request header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderMatcher {
    /// Header name (lower case as written; compared case-insensitively).
    pub name: String,
    /// The condition on its value.
    pub matcher: HeaderMatch,
    /// Envoy's `invert_match`: the route matches when the condition does not.
    pub invert: bool,
    /// Envoy's `string_match.ignore_case` (string conditions only).
    pub ignore_case: bool,
}

/// The condition on a header's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderMatch {
    /// The value equals this.
    Exact(String),
    /// The value starts with this.
    Prefix(String),
    /// The value ends with this.
    Suffix(String),
    /// The value contains this.
    Contains(String),
    /// `true`: the header is present; `false`: it is absent.
    Present(bool),
}

/// What a route does.
#[derive(Clone, Debug, PartialEq)]
pub enum RouteAction {
    /// Proxy to a cluster.
    Cluster(ClusterRoute),
    /// Answer directly.
    DirectResponse {
        /// Status code (100..=599).
        status: u16,
        /// Body (empty: no body).
        body: Vec<u8>,
    },
}

/// Proxying to a cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterRoute {
    /// The cluster (exists: checked at load).
    pub cluster: String,
    /// Whole-response timeout (Envoy's default 15 s). `None`: disabled (configured as 0).
    pub timeout: Option<Duration>,
    /// Replace the matched prefix with this (prefix routes only, as in Envoy).
    pub prefix_rewrite: Option<String>,
    /// Replace `Host`/`:authority` with this.
    pub host_rewrite_literal: Option<String>,
}

/// One HTTP filter.
// Built once per load and read in place: boxing the plugin would only add an indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum HttpFilter {
    /// A proxy-wasm plugin (`envoy.filters.http.wasm`).
    Wasm(WasmPlugin),
    /// The router: forwards to the route's cluster. Always last, exactly once.
    Router(Router),
}

/// The router filter's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Router {
    /// Envoy's `suppress_envoy_headers`: when false (Envoy's default) Envoy adds
    /// `x-envoy-upstream-service-time` and similar headers to responses.
    pub suppress_envoy_headers: bool,
}
