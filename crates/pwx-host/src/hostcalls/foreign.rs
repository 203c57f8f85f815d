//! Foreign functions and the small Envoy/Emscripten extras.

use super::enter;
use crate::memory::{self, HostResult};
use crate::state::HostState;
use pwx_abi::{HostCall, Status};
use wasmtime::Caller;

/// No foreign function is registered yet (host runtime part 2 adds Envoy's): every name is
/// unknown, which Envoy answers with `NotFound`.
pub(crate) fn proxy_call_foreign_function(
    caller: Caller<'_, HostState>,
    name_ptr: i32,
    name_len: i32,
    args_ptr: i32,
    args_len: i32,
    _ret_ptr: i32,
    _ret_len: i32,
) -> HostResult {
    enter(&caller, HostCall::CallForeignFunction)?;
    if let Err(status) = memory::read(&caller, name_ptr, name_len)
        .and_then(|_| memory::read(&caller, args_ptr, args_len))
    {
        return Ok(status.as_i32());
    }
    Ok(Status::NotFound.as_i32())
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
