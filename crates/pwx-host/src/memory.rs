//! Guest memory access from hostcalls: every pointer bounds-checked, results returned through
//! the module's allocator exactly as Envoy does (no allocation for empty results, exact sizes).

use crate::state::HostState;
use pwx_abi::Status;
use wasmtime::Caller;

/// A hostcall's outcome: a status for the module, or an error that traps the VM.
pub(crate) type HostResult = wasmtime::Result<i32>;

/// The module's memory as a slice (empty if it exports none).
pub(crate) fn memory<'a>(caller: &'a Caller<'_, HostState>) -> &'a [u8] {
    match caller.data().memory {
        Some(memory) => memory.data(caller),
        None => &[],
    }
}

/// `len` bytes at `ptr`, or `None` if the range leaves memory. `(0, 0)` is a valid empty range.
pub(crate) fn slice<'a>(caller: &'a Caller<'_, HostState>, ptr: i32, len: i32) -> Option<&'a [u8]> {
    range(memory(caller), ptr, len)
}

/// `len` bytes at `ptr` of `memory`, or `None` if the range leaves it.
pub(crate) fn range(memory: &[u8], ptr: i32, len: i32) -> Option<&[u8]> {
    let start = ptr as u32 as usize;
    let end = start.checked_add(len as u32 as usize)?;
    memory.get(start..end)
}

/// The module's memory and the store data at once: a hostcall reads its arguments in place
/// while it changes the state, without copying them out first.
pub(crate) fn split<'a>(caller: &'a mut Caller<'_, HostState>) -> (&'a [u8], &'a mut HostState) {
    match caller.data().memory {
        Some(memory) => {
            let (data, state) = memory.data_and_store_mut(caller);
            (data, state)
        }
        None => (&[], caller.data_mut()),
    }
}

/// Copies `len` bytes at `ptr` out of guest memory.
pub(crate) fn read(caller: &Caller<'_, HostState>, ptr: i32, len: i32) -> Result<Vec<u8>, Status> {
    slice(caller, ptr, len)
        .map(<[u8]>::to_vec)
        .ok_or(Status::InvalidMemoryAccess)
}

/// Writes `bytes` at `ptr`.
pub(crate) fn write(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    bytes: &[u8],
) -> Result<(), Status> {
    let Some(memory) = caller.data().memory else {
        return Err(Status::InvalidMemoryAccess);
    };
    let start = ptr as u32 as usize;
    let end = start
        .checked_add(bytes.len())
        .ok_or(Status::InvalidMemoryAccess)?;
    let target = memory
        .data_mut(caller)
        .get_mut(start..end)
        .ok_or(Status::InvalidMemoryAccess)?;
    target.copy_from_slice(bytes);
    Ok(())
}

/// Writes a little-endian u32 at `ptr`.
pub(crate) fn write_u32(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    value: u32,
) -> Result<(), Status> {
    write(caller, ptr, &value.to_le_bytes())
}

/// Writes a little-endian u64 at `ptr`.
pub(crate) fn write_u64(
    caller: &mut Caller<'_, HostState>,
    ptr: i32,
    value: u64,
) -> Result<(), Status> {
    write(caller, ptr, &value.to_le_bytes())
}

/// Calls the module allocator for `len` (> 0) bytes. `Ok(None)` when it returns 0 or an
/// out-of-bounds block; an `Err` (a trap inside the allocator) fails the VM.
pub(crate) fn allocate(
    caller: &mut Caller<'_, HostState>,
    len: usize,
) -> wasmtime::Result<Option<u32>> {
    let Some(allocator) = caller.data().allocator.clone() else {
        return Ok(None);
    };
    let Ok(size) = i32::try_from(len) else {
        return Ok(None);
    };
    caller.data_mut().allocating = true;
    let result = allocator.call(&mut *caller, size);
    caller.data_mut().allocating = false;
    let ptr = result? as u32;
    if ptr == 0 || slice(caller, ptr as i32, size).is_none() {
        return Ok(None);
    }
    Ok(Some(ptr))
}

/// Returns `len` bytes produced by `fill` to the module through `ret_ptr`/`ret_len`.
///
/// Empty results write 0/0 without calling the allocator. `fill` writes straight into the
/// allocated guest block, so a header map is serialized with no intermediate copy.
pub(crate) fn return_with(
    caller: &mut Caller<'_, HostState>,
    len: usize,
    ret_ptr: i32,
    ret_len: i32,
    fill: impl FnOnce(&HostState, &mut [u8]),
) -> HostResult {
    if len == 0 {
        return Ok(status_of(
            write_u32(caller, ret_ptr, 0).and_then(|()| write_u32(caller, ret_len, 0)),
        ));
    }
    let Some(ptr) = allocate(caller, len)? else {
        return Ok(Status::InvalidMemoryAccess.as_i32());
    };
    let Some(memory) = caller.data().memory else {
        return Ok(Status::InvalidMemoryAccess.as_i32());
    };
    let (data, state) = memory.data_and_store_mut(&mut *caller);
    let start = ptr as usize;
    // `allocate` checked the block is inside memory, and the allocator cannot shrink memory.
    let Some(block) = data.get_mut(start..start + len) else {
        return Ok(Status::InvalidMemoryAccess.as_i32());
    };
    fill(state, block);
    let len = len as u32;
    Ok(status_of(
        write_u32(caller, ret_ptr, ptr).and_then(|()| write_u32(caller, ret_len, len)),
    ))
}

/// Returns a byte string to the module.
pub(crate) fn return_bytes(
    caller: &mut Caller<'_, HostState>,
    bytes: &[u8],
    ret_ptr: i32,
    ret_len: i32,
) -> HostResult {
    return_with(caller, bytes.len(), ret_ptr, ret_len, |_, block| {
        block.copy_from_slice(bytes)
    })
}

/// The status for a write result.
pub(crate) fn status_of(result: Result<(), Status>) -> i32 {
    match result {
        Ok(()) => Status::Ok.as_i32(),
        Err(status) => status.as_i32(),
    }
}
