//! The host functions (`env.*` imports) Envoy links, per ABI version, with their wasm signatures.

use crate::sig::*;
use crate::{AbiVersion, Signature, ValType};

/// The module every `proxy_*` host function is imported from.
pub const ENV_MODULE: &str = "env";

/// Which ABI versions link a host function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Versions {
    /// Every version.
    All,
    /// Only 0.1.0 (replaced in 0.2.0).
    Only0_1,
    /// 0.2.0 and 0.2.1.
    Since0_2_0,
    /// Only 0.2.1.
    Since0_2_1,
}

impl Versions {
    /// Whether `version` links the function.
    pub const fn includes(self, version: AbiVersion) -> bool {
        match self {
            Versions::All => true,
            Versions::Only0_1 => matches!(version, AbiVersion::V0_1_0),
            Versions::Since0_2_0 => matches!(version, AbiVersion::V0_2_0 | AbiVersion::V0_2_1),
            Versions::Since0_2_1 => matches!(version, AbiVersion::V0_2_1),
        }
    }
}

macro_rules! host_calls {
    ($($variant:ident => $name:literal, $params:expr, $results:expr, $versions:ident;)+) => {
        /// A host function a module may import from `env`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum HostCall {
            $(
                #[doc = concat!("`env.", $name, "`")]
                $variant,
            )+
        }

        impl HostCall {
            /// Every host function, in table order.
            pub const ALL: &'static [HostCall] = &[$(HostCall::$variant,)+];

            /// The import name.
            pub const fn name(self) -> &'static str {
                match self { $(HostCall::$variant => $name,)+ }
            }

            /// The wasm signature Envoy links it with.
            pub const fn signature(self) -> Signature {
                match self {
                    $(HostCall::$variant => Signature { params: $params, results: $results },)+
                }
            }

            /// The ABI versions that link it.
            pub const fn versions(self) -> Versions {
                match self { $(HostCall::$variant => Versions::$versions,)+ }
            }
        }
    };
}

const STATUS: &[ValType] = I32X1;

host_calls! {
    Log => "proxy_log", I32X3, STATUS, All;
    GetLogLevel => "proxy_get_log_level", I32X1, STATUS, Since0_2_1;
    GetCurrentTimeNanoseconds => "proxy_get_current_time_nanoseconds", I32X1, STATUS, All;
    SetTickPeriodMilliseconds => "proxy_set_tick_period_milliseconds", I32X1, STATUS, All;
    GetConfiguration => "proxy_get_configuration", I32X2, STATUS, Only0_1;
    GetBufferBytes => "proxy_get_buffer_bytes", I32X5, STATUS, All;
    GetBufferStatus => "proxy_get_buffer_status", I32X3, STATUS, All;
    SetBufferBytes => "proxy_set_buffer_bytes", I32X5, STATUS, All;
    GetHeaderMapPairs => "proxy_get_header_map_pairs", I32X3, STATUS, All;
    SetHeaderMapPairs => "proxy_set_header_map_pairs", I32X3, STATUS, All;
    GetHeaderMapSize => "proxy_get_header_map_size", I32X2, STATUS, All;
    GetHeaderMapValue => "proxy_get_header_map_value", I32X5, STATUS, All;
    AddHeaderMapValue => "proxy_add_header_map_value", I32X5, STATUS, All;
    ReplaceHeaderMapValue => "proxy_replace_header_map_value", I32X5, STATUS, All;
    RemoveHeaderMapValue => "proxy_remove_header_map_value", I32X3, STATUS, All;
    GetProperty => "proxy_get_property", I32X4, STATUS, All;
    SetProperty => "proxy_set_property", I32X4, STATUS, All;
    GetSharedData => "proxy_get_shared_data", I32X5, STATUS, All;
    SetSharedData => "proxy_set_shared_data", I32X5, STATUS, All;
    RegisterSharedQueue => "proxy_register_shared_queue", I32X3, STATUS, All;
    ResolveSharedQueue => "proxy_resolve_shared_queue", I32X5, STATUS, All;
    EnqueueSharedQueue => "proxy_enqueue_shared_queue", I32X3, STATUS, All;
    DequeueSharedQueue => "proxy_dequeue_shared_queue", I32X3, STATUS, All;
    ContinueStream => "proxy_continue_stream", I32X1, STATUS, Since0_2_0;
    CloseStream => "proxy_close_stream", I32X1, STATUS, Since0_2_0;
    ContinueRequest => "proxy_continue_request", NONE, STATUS, Only0_1;
    ContinueResponse => "proxy_continue_response", NONE, STATUS, Only0_1;
    ClearRouteCache => "proxy_clear_route_cache", NONE, STATUS, Only0_1;
    SendLocalResponse => "proxy_send_local_response", I32X8, STATUS, All;
    HttpCall => "proxy_http_call", I32X10, STATUS, All;
    GrpcCall => "proxy_grpc_call", I32X12, STATUS, All;
    GrpcStream => "proxy_grpc_stream", I32X9, STATUS, All;
    GrpcSend => "proxy_grpc_send", I32X4, STATUS, All;
    GrpcCancel => "proxy_grpc_cancel", I32X1, STATUS, All;
    GrpcClose => "proxy_grpc_close", I32X1, STATUS, All;
    GetStatus => "proxy_get_status", I32X3, STATUS, All;
    SetEffectiveContext => "proxy_set_effective_context", I32X1, STATUS, All;
    Done => "proxy_done", NONE, STATUS, All;
    CallForeignFunction => "proxy_call_foreign_function", I32X6, STATUS, All;
    DefineMetric => "proxy_define_metric", I32X4, STATUS, All;
    IncrementMetric => "proxy_increment_metric", I32_I64, STATUS, All;
    RecordMetric => "proxy_record_metric", I32_I64, STATUS, All;
    GetMetric => "proxy_get_metric", I32X2, STATUS, All;
    EnvoyResolveDns => "envoy_resolve_dns", I32X3, STATUS, All;
    EmscriptenNotifyMemoryGrowth => "emscripten_notify_memory_growth", I32X1, NONE, All;
    PthreadEqual => "pthread_equal", I32X2, I32X1, All;
}

impl HostCall {
    /// Looks a host function up by import name (any version).
    pub fn from_name(name: &str) -> Option<HostCall> {
        HostCall::ALL
            .iter()
            .copied()
            .find(|call| call.name() == name)
    }

    /// Host functions linked for `version`.
    pub fn for_version(version: AbiVersion) -> impl Iterator<Item = HostCall> {
        HostCall::ALL
            .iter()
            .copied()
            .filter(move |call| call.versions().includes(version))
    }

    /// Whether the module may call it while the host runs its start-up functions
    /// (`_initialize`, `_start`, `main`); anything else fails the VM ("restricted_callback").
    pub const fn allowed_during_startup(self) -> bool {
        matches!(self, HostCall::Log | HostCall::EmscriptenNotifyMemoryGrowth)
    }

    /// Whether the module may call it from inside its allocator while the host is copying a
    /// result into guest memory.
    pub const fn allowed_during_allocation(self) -> bool {
        matches!(self, HostCall::Log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_sets_match_envoy() {
        let names = |v| {
            HostCall::for_version(v)
                .map(HostCall::name)
                .collect::<Vec<_>>()
        };
        let v010 = names(AbiVersion::V0_1_0);
        let v020 = names(AbiVersion::V0_2_0);
        let v021 = names(AbiVersion::V0_2_1);
        assert!(v010.contains(&"proxy_get_configuration"));
        assert!(!v010.contains(&"proxy_continue_stream"));
        assert!(!v020.contains(&"proxy_get_log_level"));
        assert!(v021.contains(&"proxy_get_log_level"));
        assert!(!v021.contains(&"proxy_clear_route_cache"));
        assert_eq!(v021.len(), v020.len() + 1);
    }

    #[test]
    fn signatures_have_the_64_bit_metric_values() {
        assert_eq!(
            HostCall::IncrementMetric.signature().params,
            &[ValType::I32, ValType::I64]
        );
        assert_eq!(HostCall::GrpcCall.signature().params.len(), 12);
        assert_eq!(
            HostCall::from_name("proxy_http_call"),
            Some(HostCall::HttpCall)
        );
        assert!(
            HostCall::EmscriptenNotifyMemoryGrowth
                .signature()
                .results
                .is_empty()
        );
    }
}
