//! Envoy 1.40's defaults, applied by both front ends so a field left out means the same in
//! either format.

use std::time::Duration;

/// Route `timeout`.
pub const ROUTE_TIMEOUT: Duration = Duration::from_secs(15);
/// Connection manager `stream_idle_timeout`.
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Envoy's `tcp_proxy.idle_timeout` default.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Cluster `connect_timeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Cluster `dns_refresh_rate`.
pub const DNS_REFRESH_RATE: Duration = Duration::from_secs(5);
/// Wasm `reload_config.backoff.base_interval` (FAIL_RELOAD).
pub const RELOAD_BACKOFF: Duration = Duration::from_secs(1);
