//! Context management and timers: `proxy_set_effective_context`, `proxy_done`,
//! `proxy_set_tick_period_milliseconds`.

use super::enter;
use crate::memory::HostResult;
use crate::state::{DeferredAction, HostState};
use pwx_abi::{HostCall, Status};
use std::time::Duration;
use wasmtime::Caller;

pub(crate) fn proxy_set_effective_context(
    mut caller: Caller<'_, HostState>,
    context_id: i32,
) -> HostResult {
    enter(&caller, HostCall::SetEffectiveContext)?;
    let state = caller.data_mut();
    let id = context_id as u32;
    // Context 0 is the VM's own context, which Envoy accepts.
    if id != 0 && !state.contexts.contains_key(&id) {
        return Ok(Status::BadArgument.as_i32());
    }
    state.effective = id;
    Ok(Status::Ok.as_i32())
}

pub(crate) fn proxy_done(mut caller: Caller<'_, HostState>) -> HostResult {
    enter(&caller, HostCall::Done)?;
    let state = caller.data_mut();
    let Some(root_id) = state.root_of(state.effective) else {
        return Ok(Status::NotFound.as_i32());
    };
    match state.root_mut(root_id) {
        Some(root) if root.pending_done => {
            root.pending_done = false;
            state.defer(root_id, DeferredAction::DeleteRoot);
            Ok(Status::Ok.as_i32())
        }
        _ => Ok(Status::NotFound.as_i32()),
    }
}

pub(crate) fn proxy_set_tick_period_milliseconds(
    mut caller: Caller<'_, HostState>,
    period_ms: i32,
) -> HostResult {
    enter(&caller, HostCall::SetTickPeriodMilliseconds)?;
    let state = caller.data_mut();
    // The timer belongs to the root context of the effective context.
    if let Some(root_id) = state.root_of(state.effective) {
        let period = (period_ms != 0).then(|| Duration::from_millis(u64::from(period_ms as u32)));
        state.defer(root_id, DeferredAction::SetTickPeriod(period));
    }
    Ok(Status::Ok.as_i32())
}
