//! Raw `env.proxy_*` imports with the exact wasm signatures Envoy registers (ABI 0.2.1).

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    pub fn proxy_log(level: u32, msg: *const u8, len: usize) -> u32;
    pub fn proxy_get_log_level(ret_level: *mut u32) -> u32;
    pub fn proxy_get_current_time_nanoseconds(ret: *mut u64) -> u32;
    pub fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    pub fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: u32,
        max_size: u32,
        ret_ptr: *mut *mut u8,
        ret_len: *mut usize,
    ) -> u32;
    pub fn proxy_get_buffer_status(
        buffer_type: u32,
        ret_len: *mut usize,
        ret_flags: *mut u32,
    ) -> u32;
    pub fn proxy_set_buffer_bytes(
        buffer_type: u32,
        start: u32,
        size: u32,
        data: *const u8,
        len: usize,
    ) -> u32;
    pub fn proxy_get_header_map_pairs(map: u32, ret_ptr: *mut *mut u8, ret_len: *mut usize) -> u32;
    pub fn proxy_set_header_map_pairs(map: u32, data: *const u8, len: usize) -> u32;
    pub fn proxy_get_header_map_size(map: u32, ret_size: *mut usize) -> u32;
    pub fn proxy_get_header_map_value(
        map: u32,
        key: *const u8,
        key_len: usize,
        ret_ptr: *mut *mut u8,
        ret_len: *mut usize,
    ) -> u32;
    pub fn proxy_add_header_map_value(
        map: u32,
        key: *const u8,
        key_len: usize,
        val: *const u8,
        val_len: usize,
    ) -> u32;
    pub fn proxy_replace_header_map_value(
        map: u32,
        key: *const u8,
        key_len: usize,
        val: *const u8,
        val_len: usize,
    ) -> u32;
    pub fn proxy_remove_header_map_value(map: u32, key: *const u8, key_len: usize) -> u32;
    pub fn proxy_get_property(
        path: *const u8,
        path_len: usize,
        ret_ptr: *mut *mut u8,
        ret_len: *mut usize,
    ) -> u32;
    pub fn proxy_set_property(
        path: *const u8,
        path_len: usize,
        val: *const u8,
        val_len: usize,
    ) -> u32;
    pub fn proxy_get_shared_data(
        key: *const u8,
        key_len: usize,
        ret_ptr: *mut *mut u8,
        ret_len: *mut usize,
        ret_cas: *mut u32,
    ) -> u32;
    pub fn proxy_set_shared_data(
        key: *const u8,
        key_len: usize,
        val: *const u8,
        val_len: usize,
        cas: u32,
    ) -> u32;
    pub fn proxy_register_shared_queue(name: *const u8, name_len: usize, ret_id: *mut u32) -> u32;
    pub fn proxy_resolve_shared_queue(
        vm_id: *const u8,
        vm_id_len: usize,
        name: *const u8,
        name_len: usize,
        ret_id: *mut u32,
    ) -> u32;
    pub fn proxy_enqueue_shared_queue(queue: u32, val: *const u8, val_len: usize) -> u32;
    pub fn proxy_dequeue_shared_queue(
        queue: u32,
        ret_ptr: *mut *mut u8,
        ret_len: *mut usize,
    ) -> u32;
    pub fn proxy_continue_stream(stream: u32) -> u32;
    pub fn proxy_close_stream(stream: u32) -> u32;
    #[allow(clippy::too_many_arguments)]
    pub fn proxy_send_local_response(
        status: u32,
        details: *const u8,
        details_len: usize,
        body: *const u8,
        body_len: usize,
        headers: *const u8,
        headers_len: usize,
        grpc_status: i32,
    ) -> u32;
    pub fn proxy_get_status(ret_code: *mut u32, ret_ptr: *mut *mut u8, ret_len: *mut usize) -> u32;
    pub fn proxy_set_effective_context(context_id: u32) -> u32;
    pub fn proxy_done() -> u32;
    pub fn proxy_call_foreign_function(
        name: *const u8,
        name_len: usize,
        args: *const u8,
        args_len: usize,
        ret_ptr: *mut *mut u8,
        ret_len: *mut usize,
    ) -> u32;
    pub fn proxy_define_metric(
        kind: u32,
        name: *const u8,
        name_len: usize,
        ret_id: *mut u32,
    ) -> u32;
    pub fn proxy_increment_metric(id: u32, delta: i64) -> u32;
    pub fn proxy_record_metric(id: u32, value: u64) -> u32;
    pub fn proxy_get_metric(id: u32, ret: *mut u64) -> u32;
    #[allow(clippy::too_many_arguments)]
    pub fn proxy_grpc_call(
        upstream: *const u8,
        upstream_len: usize,
        service: *const u8,
        service_len: usize,
        method: *const u8,
        method_len: usize,
        metadata: *const u8,
        metadata_len: usize,
        message: *const u8,
        message_len: usize,
        timeout_ms: u32,
        ret_token: *mut u32,
    ) -> u32;
    #[allow(clippy::too_many_arguments)]
    pub fn proxy_grpc_stream(
        upstream: *const u8,
        upstream_len: usize,
        service: *const u8,
        service_len: usize,
        method: *const u8,
        method_len: usize,
        metadata: *const u8,
        metadata_len: usize,
        ret_token: *mut u32,
    ) -> u32;
    pub fn proxy_grpc_send(token: u32, message: *const u8, len: usize, end_stream: u32) -> u32;
    pub fn proxy_grpc_cancel(token: u32) -> u32;
    pub fn proxy_grpc_close(token: u32) -> u32;
}

/// Takes ownership of bytes the host allocated for a `ret_ptr`/`ret_len` pair.
pub fn take_bytes(ptr: *mut u8, len: usize) -> Vec<u8> {
    if ptr.is_null() || len == 0 {
        return Vec::new();
    }
    // SAFETY: the host allocated exactly `len` bytes through the SDK's allocator
    // (`proxy_on_memory_allocate`, a boxed slice of `len` bytes) and handed ownership over.
    unsafe { Vec::from_raw_parts(ptr, len, len) }
}

/// Writes one info-level line through the raw `proxy_log`.
pub fn log_info(msg: &str) {
    // SAFETY: `msg` is a live byte range for the duration of the call.
    unsafe {
        proxy_log(2, msg.as_ptr(), msg.len());
    }
}
