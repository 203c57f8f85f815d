//! Per-VM resource limits: callback deadline, memory cap, body buffer limits.

use std::time::Duration;

/// Resource limits applied to every VM replica of a plugin.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Longest a single callback (including start-up functions) may run before it is
    /// interrupted and the VM fails. Measured with wasmtime epochs, so the precision is the
    /// engine's epoch tick.
    pub callback_deadline: Duration,
    /// Largest linear memory a VM may grow to, in bytes. Envoy's (V8) limit is 1 GiB.
    pub max_memory_bytes: usize,
    /// Largest request body buffered for a filter; beyond it the stream gets 413.
    pub request_buffer_bytes: usize,
    /// Largest response body buffered for a filter; beyond it the stream gets 500.
    pub response_buffer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            callback_deadline: Duration::from_secs(1),
            max_memory_bytes: 1 << 30,
            // Envoy's default per-connection buffer limit.
            request_buffer_bytes: 1 << 20,
            response_buffer_bytes: 1 << 20,
        }
    }
}
