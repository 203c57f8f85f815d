//! Shared queues: register, resolve, enqueue, dequeue.

use super::enter;
use crate::memory::{self, HostResult};
use crate::queues::{QueueConsumer, QueueError};
use crate::state::HostState;
use pwx_abi::{HostCall, Status};
use wasmtime::Caller;

fn queue_status(error: QueueError) -> i32 {
    match error {
        QueueError::NotFound => Status::NotFound.as_i32(),
        QueueError::Empty => Status::Empty.as_i32(),
    }
}

pub(crate) fn proxy_register_shared_queue(
    mut caller: Caller<'_, HostState>,
    name_ptr: i32,
    name_len: i32,
    ret_id: i32,
) -> HostResult {
    enter(&caller, HostCall::RegisterSharedQueue)?;
    let name = match memory::read(&caller, name_ptr, name_len) {
        Ok(name) => name,
        Err(status) => return Ok(status.as_i32()),
    };
    let state = caller.data();
    // The caller's root context becomes the queue's only consumer.
    let consumer = QueueConsumer {
        vm_instance: state.instance_id,
        root_context_id: state.root_of(state.effective).unwrap_or(0),
    };
    let token = state
        .services
        .queues
        .register(&state.vm.vm_id, &name, consumer);
    Ok(memory::status_of(memory::write_u32(
        &mut caller,
        ret_id,
        token,
    )))
}

pub(crate) fn proxy_resolve_shared_queue(
    mut caller: Caller<'_, HostState>,
    vm_id_ptr: i32,
    vm_id_len: i32,
    name_ptr: i32,
    name_len: i32,
    ret_id: i32,
) -> HostResult {
    enter(&caller, HostCall::ResolveSharedQueue)?;
    let (vm_id, name) = match (
        memory::read(&caller, vm_id_ptr, vm_id_len),
        memory::read(&caller, name_ptr, name_len),
    ) {
        (Ok(v), Ok(n)) => (v, n),
        (Err(s), _) | (_, Err(s)) => return Ok(s.as_i32()),
    };
    let state = caller.data();
    // An empty vm_id means the caller's own.
    let vm_id = if vm_id.is_empty() {
        state.vm.vm_id.clone()
    } else {
        String::from_utf8_lossy(&vm_id).into_owned()
    };
    let Some(token) = state.services.queues.resolve(&vm_id, &name) else {
        return Ok(Status::NotFound.as_i32());
    };
    Ok(memory::status_of(memory::write_u32(
        &mut caller,
        ret_id,
        token,
    )))
}

pub(crate) fn proxy_enqueue_shared_queue(
    caller: Caller<'_, HostState>,
    token: i32,
    value_ptr: i32,
    value_len: i32,
) -> HostResult {
    enter(&caller, HostCall::EnqueueSharedQueue)?;
    let value = match memory::read(&caller, value_ptr, value_len) {
        Ok(value) => value,
        Err(status) => return Ok(status.as_i32()),
    };
    Ok(
        match caller.data().services.queues.enqueue(token as u32, &value) {
            Ok(()) => Status::Ok.as_i32(),
            Err(error) => queue_status(error),
        },
    )
}

pub(crate) fn proxy_dequeue_shared_queue(
    mut caller: Caller<'_, HostState>,
    token: i32,
    ret_ptr: i32,
    ret_len: i32,
) -> HostResult {
    enter(&caller, HostCall::DequeueSharedQueue)?;
    match caller.data().services.queues.dequeue(token as u32) {
        Ok(item) => memory::return_bytes(&mut caller, &item, ret_ptr, ret_len),
        Err(error) => Ok(queue_status(error)),
    }
}
