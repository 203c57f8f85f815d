//! Properties: `proxy_get_property` over Envoy's attributes with Envoy's value encodings, and
//! `proxy_set_property` into the stream's filter state.

use super::enter;
use crate::headers::HeaderMap;
use crate::memory::{self, HostResult};
use crate::state::{Context, HostState, HttpStreamState};
use pwx_abi::{HostCall, MapType, Status};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};
use wasmtime::Caller;

/// A property value before encoding (Envoy's CEL types).
enum Value {
    Bytes(Vec<u8>),
    Int(i64),
    Uint(u64),
    Bool(bool),
    Timestamp(SystemTime),
    Duration(Duration),
    Map(Vec<(Vec<u8>, Vec<u8>)>),
}

impl Value {
    fn str(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    /// Envoy's `serializeValue`.
    fn encode(self) -> Vec<u8> {
        match self {
            Value::Bytes(bytes) => bytes,
            Value::Int(v) => v.to_le_bytes().to_vec(),
            Value::Uint(v) => v.to_le_bytes().to_vec(),
            Value::Bool(v) => vec![u8::from(v)],
            Value::Timestamp(t) => {
                let nanos = t
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as i64)
                    .unwrap_or(0);
                nanos.to_le_bytes().to_vec()
            }
            Value::Duration(d) => (d.as_nanos() as i64).to_le_bytes().to_vec(),
            Value::Map(pairs) => pwx_abi::pairs::encode(&pairs),
        }
    }
}

/// Resolves a property for the effective context.
fn resolve(state: &HostState, path: &[&[u8]]) -> Result<Value, Status> {
    let Some((&first, rest)) = path.split_first() else {
        return Err(Status::NotFound);
    };
    let plugin = state.effective_plugin();
    let scalar = |value: Value| {
        if rest.is_empty() {
            Ok(value)
        } else {
            Err(Status::NotFound)
        }
    };
    match first {
        b"plugin_name" => return scalar(Value::str(plugin.map_or("", |p| p.name.as_str()))),
        b"plugin_root_id" => return scalar(Value::str(plugin.map_or("", |p| p.root_id.as_str()))),
        b"plugin_vm_id" => return scalar(Value::str(&state.vm.vm_id)),
        b"xds" if rest.first() == Some(&&b"node"[..]) => return node(state, &rest[1..]),
        _ => {}
    }
    // Everything else needs a stream: in a root context Envoy has no stream info.
    let Some(Context::Stream(stream)) = state.contexts.get(&state.effective) else {
        return Err(Status::NotFound);
    };
    let http = &stream.http;
    match first {
        b"request" => request(http, rest),
        b"response" => response(http, rest),
        b"source" => address(http.info.source, rest),
        b"destination" => address(http.info.destination, rest),
        b"upstream" => upstream(http, rest),
        b"connection" => connection(http, rest),
        b"connection_id" => scalar(Value::Uint(
            http.info.connection_id.ok_or(Status::NotFound)?,
        )),
        b"xds" => xds(http, rest),
        b"filter_state" => match rest {
            [key] => key
                .strip_prefix(b"wasm.")
                .and_then(|name| http.info.filter_state.get(name))
                .map(Value::Bytes)
                .ok_or(Status::NotFound),
            [] => Err(Status::SerializationFailure),
            _ => Err(Status::NotFound),
        },
        name => {
            // Any other name: a filter-state object created with proxy_set_property.
            let value = http.info.filter_state.get(name).ok_or(Status::NotFound)?;
            scalar(Value::Bytes(value))
        }
    }
}

/// A group asked for as a whole cannot be enumerated: Envoy answers SerializationFailure.
fn field<'r, 'p>(rest: &'r [&'p [u8]]) -> Result<(&'p [u8], &'r [&'p [u8]]), Status> {
    rest.split_first()
        .map(|(f, r)| (*f, r))
        .ok_or(Status::SerializationFailure)
}

fn leaf(value: Option<Value>, rest: &[&[u8]]) -> Result<Value, Status> {
    if !rest.is_empty() {
        return Err(Status::NotFound);
    }
    value.ok_or(Status::NotFound)
}

fn header_value(map: &HeaderMap, key: &[u8]) -> Option<Value> {
    map.joined(key).map(Value::Bytes)
}

/// `request.headers` / `response.headers` / `response.trailers`, whole or one key.
fn header_map(map: &HeaderMap, rest: &[&[u8]]) -> Result<Value, Status> {
    match rest {
        [] => Ok(Value::Map(
            map.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect(),
        )),
        [key] => header_value(map, key).ok_or(Status::NotFound),
        _ => Err(Status::NotFound),
    }
}

fn request(http: &HttpStreamState, rest: &[&[u8]]) -> Result<Value, Status> {
    let (name, rest) = field(rest)?;
    let headers = &http.maps[MapType::HttpRequestHeaders as usize];
    let path = headers.get(b":path");
    let value = match name {
        b"headers" => return header_map(headers, rest),
        b"path" => path.map(|p| Value::Bytes(p.to_vec())),
        b"url_path" => {
            path.map(|p| Value::Bytes(p.split(|b| *b == b'?').next().unwrap_or(p).to_vec()))
        }
        b"query" => {
            path.map(|p| Value::Bytes(p.splitn(2, |b| *b == b'?').nth(1).unwrap_or(b"").to_vec()))
        }
        b"host" => header_value(headers, b":authority"),
        b"scheme" => header_value(headers, b":scheme"),
        b"method" => header_value(headers, b":method"),
        b"referer" => header_value(headers, b"referer"),
        b"useragent" => header_value(headers, b"user-agent"),
        b"id" => header_value(headers, b"x-request-id"),
        b"protocol" => http.info.protocol.as_deref().map(Value::str),
        b"time" => http.info.start_time.map(Value::Timestamp),
        b"duration" => http.info.request_duration.map(Value::Duration),
        b"size" => Some(Value::Int(
            headers
                .get_str("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(http.info.request_body_bytes as i64),
        )),
        // Envoy: bytes received + the byte size of the header and trailer maps.
        b"total_size" => Some(Value::Int(
            (http.info.request_body_bytes
                + headers.byte_size() as u64
                + http.maps[MapType::HttpRequestTrailers as usize].byte_size() as u64)
                as i64,
        )),
        _ => None,
    };
    leaf(value, rest)
}

fn response(http: &HttpStreamState, rest: &[&[u8]]) -> Result<Value, Status> {
    let (name, rest) = field(rest)?;
    let headers = &http.maps[MapType::HttpResponseHeaders as usize];
    let trailers = &http.maps[MapType::HttpResponseTrailers as usize];
    let value = match name {
        b"headers" => return header_map(headers, rest),
        b"trailers" => return header_map(trailers, rest),
        b"code" => headers
            .get_str(":status")
            .and_then(|s| s.parse().ok())
            .map(Value::Int),
        b"code_details" => http.info.response_code_details.as_deref().map(Value::str),
        b"flags" => Some(Value::Uint(http.info.response_flags)),
        // Envoy: `grpc-status` from the trailers, else the headers, else the HTTP status
        // mapped as gRPC maps it (200 without `grpc-status` is UNKNOWN).
        b"grpc_status" => trailers
            .get(b"grpc-status")
            .or_else(|| headers.get(b"grpc-status"))
            .map(|v| Value::Int(i64::from(pwx_abi::grpc::parse_grpc_status(v) as i32)))
            .or_else(|| {
                headers
                    .get_str(":status")
                    .and_then(|s| s.parse().ok())
                    .map(|status| Value::Int(i64::from(pwx_abi::grpc::http_to_grpc_status(status))))
            }),
        b"size" => Some(Value::Int(http.info.response_body_bytes as i64)),
        b"total_size" => Some(Value::Int(
            (http.info.response_body_bytes
                + headers.byte_size() as u64
                + trailers.byte_size() as u64) as i64,
        )),
        b"backend_latency" => http.info.backend_latency.map(Value::Duration),
        _ => None,
    };
    leaf(value, rest)
}

fn address(addr: Option<SocketAddr>, rest: &[&[u8]]) -> Result<Value, Status> {
    let (name, rest) = field(rest)?;
    let value = match name {
        b"address" => addr.map(|a| Value::str(&a.to_string())),
        b"port" => addr.map(|a| Value::Int(i64::from(a.port()))),
        _ => None,
    };
    leaf(value, rest)
}

fn upstream(http: &HttpStreamState, rest: &[&[u8]]) -> Result<Value, Status> {
    let (name, rest) = field(rest)?;
    let info = &http.info;
    let value = match name {
        b"address" => info.upstream_address.map(|a| Value::str(&a.to_string())),
        b"port" => info
            .upstream_address
            .map(|a| Value::Int(i64::from(a.port()))),
        b"local_address" => info
            .upstream_local_address
            .map(|a| Value::str(&a.to_string())),
        b"request_attempt_count" => info.upstream_request_attempt_count.map(Value::Uint),
        b"transport_failure_reason" => info
            .upstream_transport_failure_reason
            .as_deref()
            .map(Value::str),
        _ => None,
    };
    leaf(value, rest)
}

fn connection(http: &HttpStreamState, rest: &[&[u8]]) -> Result<Value, Status> {
    let (name, rest) = field(rest)?;
    let info = &http.info;
    let value = match name {
        b"id" => info.connection_id.map(Value::Uint),
        b"mtls" => Some(Value::Bool(info.mtls)),
        b"requested_server_name" => Some(Value::str(
            info.requested_server_name.as_deref().unwrap_or(""),
        )),
        b"tls_version" => info.tls_version.as_deref().map(Value::str),
        _ => None,
    };
    leaf(value, rest)
}

fn xds(http: &HttpStreamState, rest: &[&[u8]]) -> Result<Value, Status> {
    let (name, rest) = field(rest)?;
    let info = &http.info;
    let value = match name {
        b"route_name" => info.route_name.as_deref().map(Value::str),
        b"cluster_name" => info.cluster_name.as_deref().map(Value::str),
        b"virtual_host_name" => info.virtual_host_name.as_deref().map(Value::str),
        b"filter_chain_name" => info.filter_chain_name.as_deref().map(Value::str),
        b"listener_direction" => info.listener_direction.map(Value::Int),
        // pwx configuration carries no metadata: Envoy's empty `Metadata` serializes to no
        // bytes. The route's and cluster's exist once a route was chosen.
        b"listener_metadata" => info.listener_direction.map(|_| Value::Bytes(Vec::new())),
        b"route_metadata" => info
            .virtual_host_name
            .as_ref()
            .map(|_| Value::Bytes(Vec::new())),
        b"cluster_metadata" => info.cluster_name.as_ref().map(|_| Value::Bytes(Vec::new())),
        _ => None,
    };
    leaf(value, rest)
}

/// `xds.node`: the `envoy.config.core.v3.Node` message (binary protobuf), or one of its
/// string fields.
fn node(state: &HostState, rest: &[&[u8]]) -> Result<Value, Status> {
    let node = &state.services.node;
    match rest {
        [] => {
            let mut out = Vec::new();
            for (tag, value) in [(1u8, &node.id), (2u8, &node.cluster)] {
                if !value.is_empty() {
                    out.push(tag << 3 | 2);
                    put_varint(&mut out, value.len() as u64);
                    out.extend_from_slice(value.as_bytes());
                }
            }
            Ok(Value::Bytes(out))
        }
        [b"id"] => Ok(Value::str(&node.id)),
        [b"cluster"] => Ok(Value::str(&node.cluster)),
        _ => Err(Status::NotFound),
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(crate) fn proxy_get_property(
    mut caller: Caller<'_, HostState>,
    path_ptr: i32,
    path_len: i32,
    ret_ptr: i32,
    ret_len: i32,
) -> HostResult {
    enter(&caller, HostCall::GetProperty)?;
    let path = match memory::read(&caller, path_ptr, path_len) {
        Ok(path) => path,
        Err(status) => return Ok(status.as_i32()),
    };
    // An empty path names the whole attribute tree, which Envoy cannot serialize.
    if path.is_empty() {
        return Ok(Status::SerializationFailure.as_i32());
    }
    let segments = pwx_abi::path::decode(&path);
    match resolve(caller.data(), &segments) {
        Ok(value) => memory::return_bytes(&mut caller, &value.encode(), ret_ptr, ret_len),
        Err(status) => Ok(status.as_i32()),
    }
}

pub(crate) fn proxy_set_property(
    mut caller: Caller<'_, HostState>,
    path_ptr: i32,
    path_len: i32,
    value_ptr: i32,
    value_len: i32,
) -> HostResult {
    enter(&caller, HostCall::SetProperty)?;
    let (path, value) = match (
        memory::read(&caller, path_ptr, path_len),
        memory::read(&caller, value_ptr, value_len),
    ) {
        (Ok(path), Ok(value)) => (path, value),
        (Err(status), _) | (_, Err(status)) => return Ok(status.as_i32()),
    };
    // Envoy keys the filter state by the raw path bytes; with no stream there is none.
    let Some(http) = caller.data_mut().effective_http_mut() else {
        return Ok(Status::NotFound.as_i32());
    };
    http.info.filter_state.set(path, value);
    Ok(Status::Ok.as_i32())
}
