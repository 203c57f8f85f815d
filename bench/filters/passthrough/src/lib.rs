//! The smallest proxy-wasm HTTP filter (ABI 0.2.1), written without the SDK: it exports only the
//! lifecycle callbacks a host needs to create and delete contexts, and none of the header or
//! body callbacks, so a host that skips callbacks a module does not export runs no guest code
//! per request beyond context creation and deletion. `bench/run.py` uses it to measure "pwx
//! without filters" while `pwx run` requires at least one filter, and runs it in Envoy too so
//! both proxies pay for the same module.

/// ABI marker: the host reads the version from this export's name.
#[unsafe(no_mangle)]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// Hands the host a buffer for data it returns to the guest (configuration, header values).
/// Sizes of zero get a one-byte allocation so the pointer is never null or dangling.
#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    match std::alloc::Layout::from_size_align(size.max(1), 1) {
        // SAFETY: the layout has a non-zero size, as `alloc` requires.
        Ok(layout) => unsafe { std::alloc::alloc(layout) },
        Err(_) => std::ptr::null_mut(),
    }
}

/// Root and stream contexts need no state.
#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_context_create(_context_id: u32, _parent_context_id: u32) {}

/// Accepts any VM configuration.
#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_vm_start(_root_context_id: u32, _vm_configuration_size: usize) -> u32 {
    1
}

/// Accepts any plugin configuration.
#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_configure(_root_context_id: u32, _configuration_size: usize) -> u32 {
    1
}

/// Done at once: nothing is pending.
#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_done(_context_id: u32) -> u32 {
    1
}

/// Nothing to free.
#[unsafe(no_mangle)]
pub extern "C" fn proxy_on_delete(_context_id: u32) {}
