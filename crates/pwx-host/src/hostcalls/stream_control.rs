//! Stream control: continue, close, local replies. Every action is deferred until the current
//! callback returns, as Envoy does; the module is never re-entered from a hostcall.

use super::enter;
use crate::memory::{self, HostResult};
use crate::state::{Access, Context, DeferredAction, HostState, LocalReply};
use pwx_abi::{HostCall, MapType, Status, StreamType};
use wasmtime::Caller;

/// Whether the effective context is a stream (the only place stream actions mean something).
fn effective_stream(state: &HostState) -> Option<u32> {
    matches!(
        state.contexts.get(&state.effective),
        Some(Context::Stream(_))
    )
    .then_some(state.effective)
}

/// Resuming a direction makes Envoy drop its pointers to that direction's maps.
fn release(state: &mut HostState, maps: [MapType; 2]) {
    if let Some(http) = state.effective_http_mut() {
        for map in maps {
            http.access[map as usize] = Access::None;
        }
    }
}

fn continue_direction(state: &mut HostState, stream: StreamType) -> Status {
    let Some(context) = effective_stream(state) else {
        // No-op on a root context.
        return Status::Ok;
    };
    match stream {
        StreamType::HttpRequest => {
            release(
                state,
                [MapType::HttpRequestHeaders, MapType::HttpRequestTrailers],
            );
            state.defer(context, DeferredAction::ContinueRequest);
        }
        StreamType::HttpResponse => {
            release(
                state,
                [MapType::HttpResponseHeaders, MapType::HttpResponseTrailers],
            );
            state.defer(context, DeferredAction::ContinueResponse);
        }
        StreamType::Downstream => state.defer(context, DeferredAction::ContinueDownstream),
        // Envoy has no way to resume the write path of a network filter.
        StreamType::Upstream => return Status::Unimplemented,
    }
    Status::Ok
}

pub(crate) fn proxy_continue_stream(mut caller: Caller<'_, HostState>, stream: i32) -> HostResult {
    enter(&caller, HostCall::ContinueStream)?;
    let Some(stream) = StreamType::from_u32(stream as u32) else {
        return Ok(Status::BadArgument.as_i32());
    };
    Ok(continue_direction(caller.data_mut(), stream).as_i32())
}

pub(crate) fn proxy_close_stream(mut caller: Caller<'_, HostState>, stream: i32) -> HostResult {
    enter(&caller, HostCall::CloseStream)?;
    let Some(stream) = StreamType::from_u32(stream as u32) else {
        return Ok(Status::BadArgument.as_i32());
    };
    let state = caller.data_mut();
    if let Some(context) = effective_stream(state) {
        let action = match stream {
            StreamType::HttpRequest | StreamType::HttpResponse => DeferredAction::ResetStream,
            StreamType::Downstream => DeferredAction::CloseDownstream,
            StreamType::Upstream => DeferredAction::CloseUpstream,
        };
        state.defer(context, action);
    }
    Ok(Status::Ok.as_i32())
}

pub(crate) fn proxy_continue_request(mut caller: Caller<'_, HostState>) -> HostResult {
    enter(&caller, HostCall::ContinueRequest)?;
    Ok(continue_direction(caller.data_mut(), StreamType::HttpRequest).as_i32())
}

pub(crate) fn proxy_continue_response(mut caller: Caller<'_, HostState>) -> HostResult {
    enter(&caller, HostCall::ContinueResponse)?;
    Ok(continue_direction(caller.data_mut(), StreamType::HttpResponse).as_i32())
}

pub(crate) fn proxy_clear_route_cache(mut caller: Caller<'_, HostState>) -> HostResult {
    enter(&caller, HostCall::ClearRouteCache)?;
    let state = caller.data_mut();
    if let Some(context) = effective_stream(state) {
        state.defer(context, DeferredAction::ClearRouteCache);
    }
    Ok(Status::Ok.as_i32())
}

#[allow(clippy::too_many_arguments)] // the ABI's signature
pub(crate) fn proxy_send_local_response(
    mut caller: Caller<'_, HostState>,
    status: i32,
    details_ptr: i32,
    details_len: i32,
    body_ptr: i32,
    body_len: i32,
    headers_ptr: i32,
    headers_len: i32,
    grpc_status: i32,
) -> HostResult {
    enter(&caller, HostCall::SendLocalResponse)?;
    let read = |ptr, len| memory::read(&caller, ptr, len);
    let (details, body, headers) = match (
        read(details_ptr, details_len),
        read(body_ptr, body_len),
        read(headers_ptr, headers_len),
    ) {
        (Ok(d), Ok(b), Ok(h)) => (d, b, h),
        (Err(s), _, _) | (_, Err(s), _) | (_, _, Err(s)) => return Ok(s.as_i32()),
    };
    let state = caller.data_mut();
    let Some(context) = effective_stream(state) else {
        return Ok(Status::Ok.as_i32());
    };
    let headers = pwx_abi::pairs::decode(&headers)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    let details = String::from_utf8_lossy(&details)
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect();
    let grpc_status = (grpc_status as u32 <= 16).then_some(grpc_status as u32);
    state.defer(
        context,
        DeferredAction::LocalReply(LocalReply {
            status: status as u32,
            details,
            body,
            headers,
            grpc_status,
        }),
    );
    state.local_reply_sent = true;
    Ok(Status::Ok.as_i32())
}
