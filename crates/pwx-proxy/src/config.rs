//! What a proxy runs: listener, workers, the filter chain and the upstream.

use pwx_host::{Limits, PluginConfig, VmConfig};
use std::net::SocketAddr;

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
#[derive(Clone, Debug)]
pub enum UpstreamConfig {
    /// The built-in echo upstream: answers with the request it received as JSON.
    Echo,
    /// An HTTP/1.1 upstream (`http://host:port`).
    Http(http::Uri),
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
    /// Upstream.
    pub upstream: UpstreamConfig,
    /// Limits applied to every VM replica.
    pub limits: Limits,
}
