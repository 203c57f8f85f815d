//! The `env.proxy_*` host functions, one module per ABI area, and the linker that registers
//! exactly the set Envoy links for a module's ABI version.

mod buffers;
mod callouts;
mod context;
mod foreign;
mod grpc;
mod header_maps;
mod log;
mod metrics;
mod properties;
mod queues;
mod shared_data;
mod stream_control;
pub(crate) mod wasi;

use crate::state::{HostState, Phase};
use pwx_abi::{AbiVersion, HostCall};
use wasmtime::{Caller, Linker};

/// Fails the VM if the module calls `call` where Envoy forbids it: during start-up functions
/// only logging is allowed, and inside the allocator only logging (V8's "restricted_callback").
pub(crate) fn enter(caller: &Caller<'_, HostState>, call: HostCall) -> wasmtime::Result<()> {
    let state = caller.data();
    if state.allocating && !call.allowed_during_allocation() {
        wasmtime::bail!(
            "restricted_callback: {} called from inside the module allocator",
            call.name()
        );
    }
    if state.phase == Phase::Startup && !call.allowed_during_startup() {
        wasmtime::bail!(
            "restricted_callback: {} called during module start-up (_initialize/_start/main); \
             only proxy_log and WASI calls are allowed there",
            call.name()
        );
    }
    Ok(())
}

/// Registers every host function `abi` links.
pub(crate) fn link(linker: &mut Linker<HostState>, abi: AbiVersion) -> wasmtime::Result<()> {
    use HostCall::*;
    const ENV: &str = pwx_abi::imports::ENV_MODULE;
    for call in HostCall::for_version(abi) {
        let name = call.name();
        match call {
            Log => linker.func_wrap(ENV, name, log::proxy_log)?,
            GetLogLevel => linker.func_wrap(ENV, name, log::proxy_get_log_level)?,
            GetCurrentTimeNanoseconds => {
                linker.func_wrap(ENV, name, log::proxy_get_current_time_nanoseconds)?
            }
            SetTickPeriodMilliseconds => {
                linker.func_wrap(ENV, name, context::proxy_set_tick_period_milliseconds)?
            }
            GetConfiguration => linker.func_wrap(ENV, name, buffers::proxy_get_configuration)?,
            GetBufferBytes => linker.func_wrap(ENV, name, buffers::proxy_get_buffer_bytes)?,
            GetBufferStatus => linker.func_wrap(ENV, name, buffers::proxy_get_buffer_status)?,
            SetBufferBytes => linker.func_wrap(ENV, name, buffers::proxy_set_buffer_bytes)?,
            GetHeaderMapPairs => {
                linker.func_wrap(ENV, name, header_maps::proxy_get_header_map_pairs)?
            }
            SetHeaderMapPairs => {
                linker.func_wrap(ENV, name, header_maps::proxy_set_header_map_pairs)?
            }
            GetHeaderMapSize => {
                linker.func_wrap(ENV, name, header_maps::proxy_get_header_map_size)?
            }
            GetHeaderMapValue => {
                linker.func_wrap(ENV, name, header_maps::proxy_get_header_map_value)?
            }
            AddHeaderMapValue => {
                linker.func_wrap(ENV, name, header_maps::proxy_add_header_map_value)?
            }
            ReplaceHeaderMapValue => {
                linker.func_wrap(ENV, name, header_maps::proxy_replace_header_map_value)?
            }
            RemoveHeaderMapValue => {
                linker.func_wrap(ENV, name, header_maps::proxy_remove_header_map_value)?
            }
            GetProperty => linker.func_wrap(ENV, name, properties::proxy_get_property)?,
            SetProperty => linker.func_wrap(ENV, name, properties::proxy_set_property)?,
            GetSharedData => linker.func_wrap(ENV, name, shared_data::proxy_get_shared_data)?,
            SetSharedData => linker.func_wrap(ENV, name, shared_data::proxy_set_shared_data)?,
            RegisterSharedQueue => {
                linker.func_wrap(ENV, name, queues::proxy_register_shared_queue)?
            }
            ResolveSharedQueue => {
                linker.func_wrap(ENV, name, queues::proxy_resolve_shared_queue)?
            }
            EnqueueSharedQueue => {
                linker.func_wrap(ENV, name, queues::proxy_enqueue_shared_queue)?
            }
            DequeueSharedQueue => {
                linker.func_wrap(ENV, name, queues::proxy_dequeue_shared_queue)?
            }
            ContinueStream => linker.func_wrap(ENV, name, stream_control::proxy_continue_stream)?,
            CloseStream => linker.func_wrap(ENV, name, stream_control::proxy_close_stream)?,
            ContinueRequest => {
                linker.func_wrap(ENV, name, stream_control::proxy_continue_request)?
            }
            ContinueResponse => {
                linker.func_wrap(ENV, name, stream_control::proxy_continue_response)?
            }
            ClearRouteCache => {
                linker.func_wrap(ENV, name, stream_control::proxy_clear_route_cache)?
            }
            SendLocalResponse => {
                linker.func_wrap(ENV, name, stream_control::proxy_send_local_response)?
            }
            HttpCall => linker.func_wrap(ENV, name, callouts::proxy_http_call)?,
            GrpcCall => linker.func_wrap(ENV, name, grpc::proxy_grpc_call)?,
            GrpcStream => linker.func_wrap(ENV, name, grpc::proxy_grpc_stream)?,
            GrpcSend => linker.func_wrap(ENV, name, grpc::proxy_grpc_send)?,
            GrpcCancel => linker.func_wrap(ENV, name, grpc::proxy_grpc_cancel)?,
            GrpcClose => linker.func_wrap(ENV, name, grpc::proxy_grpc_close)?,
            GetStatus => linker.func_wrap(ENV, name, callouts::proxy_get_status)?,
            SetEffectiveContext => {
                linker.func_wrap(ENV, name, context::proxy_set_effective_context)?
            }
            Done => linker.func_wrap(ENV, name, context::proxy_done)?,
            CallForeignFunction => {
                linker.func_wrap(ENV, name, foreign::proxy_call_foreign_function)?
            }
            DefineMetric => linker.func_wrap(ENV, name, metrics::proxy_define_metric)?,
            IncrementMetric => linker.func_wrap(ENV, name, metrics::proxy_increment_metric)?,
            RecordMetric => linker.func_wrap(ENV, name, metrics::proxy_record_metric)?,
            GetMetric => linker.func_wrap(ENV, name, metrics::proxy_get_metric)?,
            EnvoyResolveDns => linker.func_wrap(ENV, name, foreign::envoy_resolve_dns)?,
            EmscriptenNotifyMemoryGrowth => {
                linker.func_wrap(ENV, name, foreign::emscripten_notify_memory_growth)?
            }
            PthreadEqual => linker.func_wrap(ENV, name, foreign::pthread_equal)?,
        };
    }
    wasi::link(linker)
}
