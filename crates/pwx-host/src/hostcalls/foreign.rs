//! Foreign functions (`proxy_call_foreign_function`) and the small Envoy/Emscripten extras.

use super::enter;
use crate::memory::{self, HostResult};
use crate::state::{DeferredAction, HostState};
use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use pwx_abi::{HostCall, Status, foreign};
use std::io::{Read, Write};
use wasmtime::Caller;

/// Largest output `uncompress` produces: a guard against decompression bombs (Envoy has
/// none; listed in compat.md).
const MAX_UNCOMPRESSED: u64 = 64 << 20;

/// Envoy's foreign functions that mean something here: `compress`/`uncompress` (zlib),
/// `clear_route_cache`, `set_envoy_filter_state` (the factories pwx knows) and
/// `declare_property`. Any other name is `NotFound`, as in Envoy.
pub(crate) fn proxy_call_foreign_function(
    mut caller: Caller<'_, HostState>,
    name_ptr: i32,
    name_len: i32,
    args_ptr: i32,
    args_len: i32,
    ret_ptr: i32,
    ret_len: i32,
) -> HostResult {
    enter(&caller, HostCall::CallForeignFunction)?;
    let (name, args) = match memory::read(&caller, name_ptr, name_len)
        .and_then(|name| memory::read(&caller, args_ptr, args_len).map(|args| (name, args)))
    {
        Ok(read) => read,
        Err(status) => return Ok(status.as_i32()),
    };
    let result = match String::from_utf8_lossy(&name).as_ref() {
        foreign::COMPRESS => compress(&args),
        foreign::UNCOMPRESS => uncompress(&args),
        foreign::CLEAR_ROUTE_CACHE => {
            let state = caller.data_mut();
            if state.effective_http().is_some() {
                let context = state.effective;
                state.defer(context, DeferredAction::ClearRouteCache);
            }
            Ok(Vec::new())
        }
        foreign::SET_ENVOY_FILTER_STATE => set_envoy_filter_state(caller.data_mut(), &args),
        foreign::DECLARE_PROPERTY => foreign::DeclarePropertyArguments::decode(&args)
            .map(|_| Vec::new())
            .map_err(|_| Status::BadArgument),
        _ => Err(Status::NotFound),
    };
    match result {
        Ok(bytes) => memory::return_bytes(&mut caller, &bytes, ret_ptr, ret_len),
        Err(status) => Ok(status.as_i32()),
    }
}

fn compress(data: &[u8]) -> Result<Vec<u8>, Status> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    encoder
        .write_all(data)
        .and_then(|()| encoder.finish())
        .map_err(|_| Status::SerializationFailure)
}

fn uncompress(data: &[u8]) -> Result<Vec<u8>, Status> {
    let mut out = Vec::new();
    ZlibDecoder::new(data)
        .take(MAX_UNCOMPRESSED + 1)
        .read_to_end(&mut out)
        .map_err(|_| Status::SerializationFailure)?;
    if out.len() as u64 > MAX_UNCOMPRESSED {
        return Err(Status::SerializationFailure);
    }
    Ok(out)
}

/// Envoy creates the object through the factory registered for the key: an unparsable
/// argument is `BadArgument`, a key without a factory `NotFound`. The value lands in the
/// stream's filter state, readable as the `filter_state` property.
fn set_envoy_filter_state(state: &mut HostState, args: &[u8]) -> Result<Vec<u8>, Status> {
    let args =
        foreign::SetEnvoyFilterStateArguments::decode(args).map_err(|_| Status::BadArgument)?;
    if !foreign::KNOWN_FILTER_STATE_KEYS.contains(&args.path.as_str()) {
        return Err(Status::NotFound);
    }
    let http = state.effective_http_mut().ok_or(Status::NotFound)?;
    http.info
        .filter_state
        .set(args.path.into_bytes(), args.value.into_bytes());
    Ok(Vec::new())
}

/// Envoy's asynchronous DNS resolution is not provided: pwx answers `Unimplemented` (listed in
/// compat.md) rather than hand out a token that would never complete.
pub(crate) fn envoy_resolve_dns(
    caller: Caller<'_, HostState>,
    _addr_ptr: i32,
    _addr_len: i32,
    _ret_token: i32,
) -> HostResult {
    enter(&caller, HostCall::EnvoyResolveDns)?;
    Ok(Status::Unimplemented.as_i32())
}

/// Emscripten's memory-growth notification: nothing to do, wasmtime tracks memory itself.
pub(crate) fn emscripten_notify_memory_growth(
    caller: Caller<'_, HostState>,
    _memory_index: i32,
) -> wasmtime::Result<()> {
    enter(&caller, HostCall::EmscriptenNotifyMemoryGrowth)
}

/// Modules are single-threaded: two thread handles are equal when their values are.
pub(crate) fn pthread_equal(caller: Caller<'_, HostState>, a: i32, b: i32) -> HostResult {
    enter(&caller, HostCall::PthreadEqual)?;
    Ok(i32::from(a == b))
}
