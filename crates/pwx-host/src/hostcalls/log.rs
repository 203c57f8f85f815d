//! Logging and time: `proxy_log`, `proxy_get_log_level`, `proxy_get_current_time_nanoseconds`.

use super::enter;
use crate::memory::{self, HostResult};
use crate::state::HostState;
use pwx_abi::{HostCall, LogLevel, Status};
use wasmtime::Caller;

pub(crate) fn proxy_log(
    caller: Caller<'_, HostState>,
    level: i32,
    ptr: i32,
    len: i32,
) -> HostResult {
    enter(&caller, HostCall::Log)?;
    let Some(level) = LogLevel::from_u32(level as u32) else {
        return Ok(Status::BadArgument.as_i32());
    };
    let Some(bytes) = memory::slice(&caller, ptr, len) else {
        return Ok(Status::InvalidMemoryAccess.as_i32());
    };
    let message = String::from_utf8_lossy(bytes);
    caller.data().log(level, &message);
    Ok(Status::Ok.as_i32())
}

pub(crate) fn proxy_get_log_level(mut caller: Caller<'_, HostState>, ret_level: i32) -> HostResult {
    enter(&caller, HostCall::GetLogLevel)?;
    let level = caller.data().services.log.level();
    Ok(memory::status_of(memory::write_u32(
        &mut caller,
        ret_level,
        level as u32,
    )))
}

pub(crate) fn proxy_get_current_time_nanoseconds(
    mut caller: Caller<'_, HostState>,
    ret_time: i32,
) -> HostResult {
    enter(&caller, HostCall::GetCurrentTimeNanoseconds)?;
    Ok(memory::status_of(memory::write_u64(
        &mut caller,
        ret_time,
        unix_nanos(),
    )))
}

/// Wall-clock nanoseconds since the Unix epoch.
pub(crate) fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
