//! Header maps: `proxy_{get,set}_header_map_pairs`, `_size`, `_value`, `add`, `replace`,
//! `remove`, with Envoy's per-phase availability and statuses.

use super::enter;
use crate::headers::{HeaderBytes, HeaderMap};
use crate::memory::{self, HostResult};
use crate::state::{Access, HostState};
use pwx_abi::{AbiVersion, HostCall, MapType, Status};
use wasmtime::Caller;

/// The map as the module may read it now, or `None` when Envoy has no such map in this phase.
pub(crate) fn readable(state: &HostState, map: MapType) -> Option<&HeaderMap> {
    match map {
        MapType::HttpCallResponseHeaders => state.callout_maps.as_ref().map(|(headers, _)| headers),
        MapType::HttpCallResponseTrailers => {
            state.callout_maps.as_ref().map(|(_, trailers)| trailers)
        }
        // gRPC metadata is readable only inside its own callback.
        MapType::GrpcReceiveInitialMetadata | MapType::GrpcReceiveTrailingMetadata => state
            .grpc_metadata
            .as_ref()
            .filter(|(kind, _)| *kind == map)
            .map(|(_, metadata)| metadata),
        http => {
            let stream = state.effective_http()?;
            let index = http as usize;
            (stream.access[index] != Access::None).then(|| &stream.maps[index])
        }
    }
}

/// The map as the module may write it now (creating trailers during the last body callback).
fn writable(state: &mut HostState, map: MapType) -> Option<&mut HeaderMap> {
    if !map.is_http() {
        return None;
    }
    let stream = state.effective_http_mut()?;
    let index = map as usize;
    if stream.access[index] == Access::None && stream.creatable[index] {
        stream.access[index] = Access::ReadWrite;
    }
    (stream.access[index] == Access::ReadWrite).then(|| &mut stream.maps[index])
}

fn map_type(raw: i32) -> Result<MapType, i32> {
    MapType::from_u32(raw as u32).ok_or(Status::BadArgument.as_i32())
}

pub(crate) fn proxy_get_header_map_pairs(
    mut caller: Caller<'_, HostState>,
    map: i32,
    ret_ptr: i32,
    ret_len: i32,
) -> HostResult {
    enter(&caller, HostCall::GetHeaderMapPairs)?;
    let map = match map_type(map) {
        Ok(map) => map,
        Err(status) => return Ok(status),
    };
    // An unavailable or empty map is returned as ptr=0, len=0 (not a 4-byte zero count).
    let len = match readable(caller.data(), map) {
        Some(headers) if !headers.is_empty() => pwx_abi::pairs::encoded_len(headers.entries()),
        _ => 0,
    };
    memory::return_with(&mut caller, len, ret_ptr, ret_len, |state, block| {
        if let Some(headers) = readable(state, map) {
            pwx_abi::pairs::encode_into(headers.entries(), block);
        }
    })
}

pub(crate) fn proxy_set_header_map_pairs(
    mut caller: Caller<'_, HostState>,
    map: i32,
    ptr: i32,
    len: i32,
) -> HostResult {
    enter(&caller, HostCall::SetHeaderMapPairs)?;
    let map = match map_type(map) {
        Ok(map) => map,
        Err(status) => return Ok(status),
    };
    let (memory, state) = memory::split(&mut caller);
    let Some(data) = memory::range(memory, ptr, len) else {
        return Ok(Status::InvalidMemoryAccess.as_i32());
    };
    // Envoy parses malformed input as an empty list: every header is removed.
    let pairs = pwx_abi::pairs::decode(data).unwrap_or_default();
    let Some(headers) = writable(state, map) else {
        return Ok(Status::BadArgument.as_i32());
    };
    headers.set_all(pairs);
    Ok(Status::Ok.as_i32())
}

pub(crate) fn proxy_get_header_map_size(
    mut caller: Caller<'_, HostState>,
    map: i32,
    ret_size: i32,
) -> HostResult {
    enter(&caller, HostCall::GetHeaderMapSize)?;
    let map = match map_type(map) {
        Ok(map) => map,
        Err(status) => return Ok(status),
    };
    let size = match readable(caller.data(), map) {
        Some(headers) if map.is_http() => headers.byte_size() as u32,
        _ => return Ok(Status::BadArgument.as_i32()),
    };
    Ok(memory::status_of(memory::write_u32(
        &mut caller,
        ret_size,
        size,
    )))
}

pub(crate) fn proxy_get_header_map_value(
    mut caller: Caller<'_, HostState>,
    map: i32,
    key_ptr: i32,
    key_len: i32,
    ret_ptr: i32,
    ret_len: i32,
) -> HostResult {
    enter(&caller, HostCall::GetHeaderMapValue)?;
    let map = match map_type(map) {
        Ok(map) => map,
        Err(status) => return Ok(status),
    };
    let Some(key) = memory::slice(&caller, key_ptr, key_len) else {
        return Ok(Status::InvalidMemoryAccess.as_i32());
    };
    let state = caller.data();
    let Some(headers) = readable(state, map) else {
        // In the access-log phase Envoy answers NotFound rather than BadArgument.
        let in_log = state.effective_http().is_some_and(|h| h.in_log);
        return Ok(if in_log {
            Status::NotFound
        } else {
            Status::BadArgument
        }
        .as_i32());
    };
    // The value is shared with the map, not copied: the guest block is written from it.
    let value: HeaderBytes = match headers
        .entries()
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
    {
        Some((_, value)) => value.clone(),
        None if state.abi == AbiVersion::V0_1_0 => HeaderBytes::from(&[][..]),
        None => return Ok(Status::NotFound.as_i32()),
    };
    memory::return_bytes(&mut caller, &value, ret_ptr, ret_len)
}

/// Shared body of add / replace / remove: key and value are read in place from guest memory.
fn modify(
    caller: &mut Caller<'_, HostState>,
    call: HostCall,
    map: i32,
    key: (i32, i32),
    value: Option<(i32, i32)>,
    apply: impl FnOnce(&mut HeaderMap, &[u8], &[u8]),
) -> HostResult {
    enter(caller, call)?;
    let map = match map_type(map) {
        Ok(map) => map,
        Err(status) => return Ok(status),
    };
    let (memory, state) = memory::split(caller);
    let Some(key) = memory::range(memory, key.0, key.1) else {
        return Ok(Status::InvalidMemoryAccess.as_i32());
    };
    let value = match value {
        Some((ptr, len)) => match memory::range(memory, ptr, len) {
            Some(value) => value,
            None => return Ok(Status::InvalidMemoryAccess.as_i32()),
        },
        None => &[],
    };
    let Some(headers) = writable(state, map) else {
        return Ok(Status::BadArgument.as_i32());
    };
    apply(headers, key, value);
    Ok(Status::Ok.as_i32())
}

pub(crate) fn proxy_add_header_map_value(
    mut caller: Caller<'_, HostState>,
    map: i32,
    key_ptr: i32,
    key_len: i32,
    value_ptr: i32,
    value_len: i32,
) -> HostResult {
    modify(
        &mut caller,
        HostCall::AddHeaderMapValue,
        map,
        (key_ptr, key_len),
        Some((value_ptr, value_len)),
        |h, k, v| h.add(k, v),
    )
}

pub(crate) fn proxy_replace_header_map_value(
    mut caller: Caller<'_, HostState>,
    map: i32,
    key_ptr: i32,
    key_len: i32,
    value_ptr: i32,
    value_len: i32,
) -> HostResult {
    modify(
        &mut caller,
        HostCall::ReplaceHeaderMapValue,
        map,
        (key_ptr, key_len),
        Some((value_ptr, value_len)),
        |h, k, v| {
            // Envoy's `setCopy`: every value of the key goes and one is appended at the end;
            // pseudo-headers keep their place at the front.
            if k.starts_with(b":") {
                h.replace(k, v)
            } else {
                h.remove(k);
                h.add(k, v)
            }
        },
    )
}

pub(crate) fn proxy_remove_header_map_value(
    mut caller: Caller<'_, HostState>,
    map: i32,
    key_ptr: i32,
    key_len: i32,
) -> HostResult {
    modify(
        &mut caller,
        HostCall::RemoveHeaderMapValue,
        map,
        (key_ptr, key_len),
        None,
        |h, k, _| h.remove(k),
    )
}
