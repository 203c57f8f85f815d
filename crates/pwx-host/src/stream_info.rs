//! Facts about a stream's connection and routing that properties expose (source and
//! destination addresses, protocol, route, upstream, …), supplied by the embedder.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// A stream's filter state: objects set with `proxy_set_property` (and Envoy filter state set
/// through foreign functions). One per stream, shared by every filter of its chain, as
/// Envoy's filter state is — clones of a `StreamInfo` share it.
#[derive(Clone, Debug, Default)]
pub struct FilterState(Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>>);

impl FilterState {
    /// The value stored under `key`.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// Stores `value` under `key`.
    pub fn set(&self, key: Vec<u8>, value: Vec<u8>) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, value);
    }
}

/// Connection and request facts for one stream.
#[derive(Clone, Debug, Default)]
pub struct StreamInfo {
    /// Downstream peer (`source.address`, `source.port`).
    pub source: Option<SocketAddr>,
    /// Downstream local address (`destination.address`, `destination.port`).
    pub destination: Option<SocketAddr>,
    /// `connection.id` / `connection_id`.
    pub connection_id: Option<u64>,
    /// `connection.mtls`.
    pub mtls: bool,
    /// `connection.requested_server_name` (SNI).
    pub requested_server_name: Option<String>,
    /// `connection.tls_version`.
    pub tls_version: Option<String>,
    /// `request.protocol`: `HTTP/1.0`, `HTTP/1.1`, `HTTP/2`.
    pub protocol: Option<String>,
    /// `request.time`: when the first byte was received.
    pub start_time: Option<SystemTime>,
    /// Body bytes received so far (`request.size` when there is no content-length;
    /// `request.total_size` adds the header and trailer bytes of the maps).
    pub request_body_bytes: u64,
    /// Body bytes sent to the client (`response.size`; `response.total_size` adds the header
    /// and trailer bytes of the maps).
    pub response_body_bytes: u64,
    /// `response.code_details`.
    pub response_code_details: Option<String>,
    /// `response.flags`.
    pub response_flags: u64,
    /// `xds.route_name`.
    pub route_name: Option<String>,
    /// `xds.cluster_name`.
    pub cluster_name: Option<String>,
    /// `xds.virtual_host_name`.
    pub virtual_host_name: Option<String>,
    /// `xds.filter_chain_name`.
    pub filter_chain_name: Option<String>,
    /// `xds.listener_direction` (0 unspecified, 1 inbound, 2 outbound).
    pub listener_direction: Option<i64>,
    /// `upstream.address`, `upstream.port`.
    pub upstream_address: Option<SocketAddr>,
    /// `upstream.local_address`.
    pub upstream_local_address: Option<SocketAddr>,
    /// `upstream.request_attempt_count`.
    pub upstream_request_attempt_count: Option<u64>,
    /// `upstream.transport_failure_reason` (empty once a connection succeeded).
    pub upstream_transport_failure_reason: Option<String>,
    /// `response.backend_latency`: from the request's first byte sent upstream to the
    /// response's last byte received.
    pub backend_latency: Option<std::time::Duration>,
    /// `request.duration`, once the request is complete.
    pub request_duration: Option<std::time::Duration>,
    /// The stream's filter state, shared by its filters.
    pub filter_state: FilterState,
}
