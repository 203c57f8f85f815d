//! `proxy_get_shared_data` / `proxy_set_shared_data` over the process-wide store.

use super::enter;
use crate::memory::{self, HostResult};
use crate::state::HostState;
use pwx_abi::{HostCall, Status};
use wasmtime::Caller;

pub(crate) fn proxy_get_shared_data(
    mut caller: Caller<'_, HostState>,
    key_ptr: i32,
    key_len: i32,
    ret_ptr: i32,
    ret_len: i32,
    ret_cas: i32,
) -> HostResult {
    enter(&caller, HostCall::GetSharedData)?;
    let key = match memory::read(&caller, key_ptr, key_len) {
        Ok(key) => key,
        Err(status) => return Ok(status.as_i32()),
    };
    let state = caller.data();
    let Some((value, cas)) = state.services.shared_data.get(&state.vm.vm_id, &key) else {
        return Ok(Status::NotFound.as_i32());
    };
    if let Err(status) = memory::write_u32(&mut caller, ret_cas, cas) {
        return Ok(status.as_i32());
    }
    memory::return_bytes(&mut caller, &value, ret_ptr, ret_len)
}

pub(crate) fn proxy_set_shared_data(
    caller: Caller<'_, HostState>,
    key_ptr: i32,
    key_len: i32,
    value_ptr: i32,
    value_len: i32,
    cas: i32,
) -> HostResult {
    enter(&caller, HostCall::SetSharedData)?;
    let (key, value) = match (
        memory::read(&caller, key_ptr, key_len),
        memory::read(&caller, value_ptr, value_len),
    ) {
        (Ok(k), Ok(v)) => (k, v),
        (Err(s), _) | (_, Err(s)) => return Ok(s.as_i32()),
    };
    let state = caller.data();
    Ok(match state
        .services
        .shared_data
        .set(&state.vm.vm_id, &key, &value, cas as u32)
    {
        Ok(()) => Status::Ok,
        Err(_) => Status::CasMismatch,
    }
    .as_i32())
}
