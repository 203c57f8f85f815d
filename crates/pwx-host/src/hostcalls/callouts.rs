//! Callouts: `proxy_http_call` (validated as Envoy does, then handed to the embedder as a
//! deferred [`HttpCall`](crate::DeferredAction::HttpCall)) and `proxy_get_status`. The gRPC
//! calls are in [`grpc`](super::grpc).

use super::enter;
use crate::memory::{self, HostResult};
use crate::services::HttpCalloutRequest;
use crate::state::{DeferredAction, HostState};
use pwx_abi::{HostCall, Status};
use std::time::Duration;
use wasmtime::Caller;

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn owned_pairs(data: &[u8]) -> Pairs {
    pwx_abi::pairs::decode(data)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_vec()))
        .collect()
}

#[allow(clippy::too_many_arguments)] // the ABI's signature
pub(crate) fn proxy_http_call(
    mut caller: Caller<'_, HostState>,
    upstream_ptr: i32,
    upstream_len: i32,
    headers_ptr: i32,
    headers_len: i32,
    body_ptr: i32,
    body_len: i32,
    trailers_ptr: i32,
    trailers_len: i32,
    timeout_ms: i32,
    ret_token: i32,
) -> HostResult {
    enter(&caller, HostCall::HttpCall)?;
    // Envoy probes the token pointer first by writing 0 there.
    if let Err(status) = memory::write_u32(&mut caller, ret_token, 0) {
        return Ok(status.as_i32());
    }
    let read = |ptr, len| memory::read(&caller, ptr, len);
    let (upstream, headers, body, trailers) = match (
        read(upstream_ptr, upstream_len),
        read(headers_ptr, headers_len),
        read(body_ptr, body_len),
        read(trailers_ptr, trailers_len),
    ) {
        (Ok(u), Ok(h), Ok(b), Ok(t)) => (u, h, b, t),
        (Err(s), ..) | (_, Err(s), ..) | (_, _, Err(s), _) | (.., Err(s)) => return Ok(s.as_i32()),
    };
    if timeout_ms < 0 {
        return Ok(Status::BadArgument.as_i32());
    }
    let cluster = String::from_utf8_lossy(&upstream).into_owned();
    let state = caller.data_mut();
    if !state.services.clusters.has_cluster(&cluster) {
        return Ok(Status::BadArgument.as_i32());
    }
    let headers = owned_pairs(&headers);
    let has = |name: &[u8]| headers.iter().any(|(k, _)| k == name);
    if !has(b":path") || !has(b":method") || !has(b":authority") {
        return Ok(Status::BadArgument.as_i32());
    }
    let Some(root_context_id) = state.root_of(state.effective) else {
        return Ok(Status::InternalFailure.as_i32());
    };
    state.next_http_token = state.next_http_token.wrapping_add(4).max(4);
    let token = state.next_http_token;
    let request = HttpCalloutRequest {
        token,
        root_context_id,
        cluster,
        headers,
        body,
        trailers: owned_pairs(&trailers),
        timeout: (timeout_ms > 0).then(|| Duration::from_millis(timeout_ms as u64)),
    };
    if let Err(status) = memory::write_u32(&mut caller, ret_token, token) {
        return Ok(status.as_i32());
    }
    caller
        .data_mut()
        .defer(root_context_id, DeferredAction::HttpCall(request));
    Ok(Status::Ok.as_i32())
}

pub(crate) fn proxy_get_status(
    mut caller: Caller<'_, HostState>,
    ret_code: i32,
    ret_msg_ptr: i32,
    ret_msg_len: i32,
) -> HostResult {
    enter(&caller, HostCall::GetStatus)?;
    let state = caller.data();
    let (code, message) = state
        .root_of(state.effective)
        .and_then(|root| state.root(root))
        .map(|root| root.status.clone())
        .unwrap_or_default();
    if let Err(status) = memory::write_u32(&mut caller, ret_code, code) {
        return Ok(status.as_i32());
    }
    memory::return_bytes(&mut caller, &message, ret_msg_ptr, ret_msg_len)
}
