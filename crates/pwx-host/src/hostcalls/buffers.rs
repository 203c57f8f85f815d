//! Buffers: bodies, configurations and call data (`proxy_get_buffer_bytes`,
//! `proxy_get_buffer_status`, `proxy_set_buffer_bytes`, 0.1.0 `proxy_get_configuration`).

use super::enter;
use crate::memory::{self, HostResult};
use crate::state::HostState;
use pwx_abi::{BufferType, HostCall, Status};
use wasmtime::Caller;

/// The bytes of a buffer as the module may read it now, or the status Envoy returns.
pub(crate) fn buffer(state: &HostState, buffer: BufferType) -> Result<&[u8], Status> {
    match buffer {
        BufferType::HttpRequestBody => {
            Ok(state.effective_http().map_or(&[][..], |h| &h.request_body))
        }
        BufferType::HttpResponseBody => {
            Ok(state.effective_http().map_or(&[][..], |h| &h.response_body))
        }
        // A connection's data outside its callback (and any HTTP context) reads as empty.
        BufferType::DownstreamData => Ok(state
            .effective_net()
            .and_then(|n| n.downstream.as_deref())
            .unwrap_or(&[])),
        BufferType::UpstreamData => Ok(state
            .effective_net()
            .and_then(|n| n.upstream.as_deref())
            .unwrap_or(&[])),
        BufferType::HttpCallResponseBody | BufferType::GrpcReceiveBuffer | BufferType::CallData => {
            match state.call_data.as_deref() {
                Some(data) if state.call_data_kind == Some(buffer) => Ok(data),
                // Outside its callback only the callout response body is missing; the gRPC
                // buffer and call data read as empty (as Envoy answers).
                _ if buffer == BufferType::HttpCallResponseBody => Err(Status::NotFound),
                _ => Ok(&[]),
            }
        }
        BufferType::VmConfiguration => Ok(&state.vm.configuration),
        BufferType::PluginConfiguration => {
            let root = state.configuring.ok_or(Status::NotFound)?;
            state
                .root(root)
                .map(|r| r.plugin.configuration.as_slice())
                .ok_or(Status::NotFound)
        }
    }
}

pub(crate) fn proxy_get_buffer_bytes(
    mut caller: Caller<'_, HostState>,
    buffer_type: i32,
    start: i32,
    max_size: i32,
    ret_ptr: i32,
    ret_len: i32,
) -> HostResult {
    enter(&caller, HostCall::GetBufferBytes)?;
    let Some(kind) = BufferType::from_u32(buffer_type as u32) else {
        return Ok(Status::BadArgument.as_i32());
    };
    let len = match buffer(caller.data(), kind) {
        Ok(bytes) => bytes.len(),
        Err(status) => return Ok(status.as_i32()),
    };
    // Envoy clamps instead of failing: a start past the end is empty, a size past the end is
    // truncated.
    let start = (start as u32 as usize).min(len);
    let end = start.saturating_add(max_size as u32 as usize).min(len);
    memory::return_with(
        &mut caller,
        end - start,
        ret_ptr,
        ret_len,
        |state, block| {
            if let Ok(bytes) = buffer(state, kind) {
                block.copy_from_slice(&bytes[start..end]);
            }
        },
    )
}

pub(crate) fn proxy_get_buffer_status(
    mut caller: Caller<'_, HostState>,
    buffer_type: i32,
    ret_len: i32,
    ret_flags: i32,
) -> HostResult {
    enter(&caller, HostCall::GetBufferStatus)?;
    let Some(kind) = BufferType::from_u32(buffer_type as u32) else {
        return Ok(Status::BadArgument.as_i32());
    };
    let len = match buffer(caller.data(), kind) {
        Ok(bytes) => bytes.len() as u32,
        Err(status) => return Ok(status.as_i32()),
    };
    // Envoy never sets the EndOfStream flag.
    let written = memory::write_u32(&mut caller, ret_len, len)
        .and_then(|()| memory::write_u32(&mut caller, ret_flags, 0));
    Ok(memory::status_of(written))
}

pub(crate) fn proxy_set_buffer_bytes(
    mut caller: Caller<'_, HostState>,
    buffer_type: i32,
    start: i32,
    size: i32,
    data_ptr: i32,
    data_len: i32,
) -> HostResult {
    enter(&caller, HostCall::SetBufferBytes)?;
    let Some(kind) = BufferType::from_u32(buffer_type as u32) else {
        return Ok(Status::BadArgument.as_i32());
    };
    let data = match memory::read(&caller, data_ptr, data_len) {
        Ok(data) => data,
        Err(status) => return Ok(status.as_i32()),
    };
    let state = caller.data_mut();
    if let Some(net) = state.effective_net_mut() {
        return Ok(
            set_network_buffer(net, kind, start as u32 as usize, size as u32 as usize).as_i32(),
        );
    }
    let target = match kind {
        BufferType::HttpRequestBody | BufferType::HttpResponseBody => {
            let direction = match kind {
                BufferType::HttpRequestBody => crate::http::Direction::Request,
                _ => crate::http::Direction::Response,
            };
            match state.effective_http_mut() {
                // The body does not exist yet while its headers are being handled.
                Some(http) if http.in_headers == Some(direction) => {
                    return Ok(Status::BadArgument.as_i32());
                }
                Some(http) if kind == BufferType::HttpRequestBody => &mut http.request_body,
                Some(http) => &mut http.response_body,
                None => return Ok(Status::NotFound.as_i32()),
            }
        }
        BufferType::DownstreamData | BufferType::UpstreamData => {
            return Ok(Status::NotFound.as_i32());
        }
        // Call responses, gRPC messages, configurations and call data are read-only.
        _ => {
            return Ok(match buffer(state, kind) {
                Ok(_) => Status::BadArgument,
                Err(status) => status,
            }
            .as_i32());
        }
    };
    Ok(splice(target, start as u32 as usize, size as u32 as usize, &data).as_i32())
}

/// Envoy's `Buffer::copyFrom`: prepend (start 0, size 0), replace a prefix or everything
/// (start 0), append (start at or past the end); anything in the middle is `BadArgument`.
pub(crate) fn splice(buffer: &mut Vec<u8>, start: usize, size: usize, data: &[u8]) -> Status {
    if start == 0 {
        let drained = size.min(buffer.len());
        buffer.splice(0..drained, data.iter().copied());
        Status::Ok
    } else if start >= buffer.len() {
        buffer.extend_from_slice(data);
        Status::Ok
    } else {
        Status::BadArgument
    }
}

/// `proxy_set_buffer_bytes` in a network (TCP) context, as Envoy 1.40 behaves (recorded in
/// conformance/cases/tcp/data_edit*.yaml): only the live buffer of the callback in progress (or
/// of a paused direction) is writable, everything else (the other direction, HTTP bodies,
/// configurations) is `BadArgument`. On the live buffer the start/size rules of `splice` hold,
/// but only the drained prefix takes effect: the bytes given are not inserted.
fn set_network_buffer(
    net: &mut crate::state::NetStreamState,
    kind: BufferType,
    start: usize,
    size: usize,
) -> Status {
    let live = match kind {
        BufferType::DownstreamData => net.downstream.as_mut(),
        BufferType::UpstreamData => net.upstream.as_mut(),
        _ => None,
    };
    let Some(buffer) = live else {
        return Status::BadArgument;
    };
    if start == 0 {
        let drained = size.min(buffer.len());
        buffer.drain(..drained);
        Status::Ok
    } else if start >= buffer.len() {
        Status::Ok
    } else {
        Status::BadArgument
    }
}

/// ABI 0.1.0: the configuration of the context (plugin configuration during `on_configure`,
/// VM configuration otherwise).
pub(crate) fn proxy_get_configuration(
    mut caller: Caller<'_, HostState>,
    ret_ptr: i32,
    ret_len: i32,
) -> HostResult {
    enter(&caller, HostCall::GetConfiguration)?;
    let kind = if caller.data().configuring.is_some() {
        BufferType::PluginConfiguration
    } else {
        BufferType::VmConfiguration
    };
    let len = buffer(caller.data(), kind).map_or(0, <[u8]>::len);
    memory::return_with(&mut caller, len, ret_ptr, ret_len, |state, block| {
        if let Ok(bytes) = buffer(state, kind) {
            block.copy_from_slice(bytes);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_follows_envoy() {
        let mut b = b"hello".to_vec();
        assert_eq!(splice(&mut b, 0, 0, b">"), Status::Ok);
        assert_eq!(b, b">hello");
        assert_eq!(splice(&mut b, 0, 1, b"<<"), Status::Ok);
        assert_eq!(b, b"<<hello");
        assert_eq!(splice(&mut b, u32::MAX as usize, 0, b"!"), Status::Ok);
        assert_eq!(b, b"<<hello!");
        assert_eq!(splice(&mut b, 3, 1, b"x"), Status::BadArgument);
        assert_eq!(splice(&mut b, 0, u32::MAX as usize, b""), Status::Ok);
        assert!(b.is_empty());
        assert_eq!(splice(&mut b, 0, 0, b"new"), Status::Ok);
        assert_eq!(b, b"new");
    }
}
