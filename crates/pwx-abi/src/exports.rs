//! The functions a module exports for the host to call (start-up, allocator, callbacks), with
//! their wasm signatures per ABI version.

use crate::sig::*;
use crate::{AbiVersion, Signature};

signature_table! {
    /// A function the host may call in the module. Every one is optional except an allocator.
    /// `signature` is the one for ABI 0.2.x; see [`Callback::signature_for`].
    Callback {
    Initialize => "_initialize", NONE, NONE;
    Main => "main", I32X2, I32X1;
    MainVoid => "__main_void", NONE, I32X1;
    Start => "_start", NONE, NONE;
    Malloc => "malloc", I32X1, I32X1;
    OnMemoryAllocate => "proxy_on_memory_allocate", I32X1, I32X1;
    OnContextCreate => "proxy_on_context_create", I32X2, NONE;
    OnVmStart => "proxy_on_vm_start", I32X2, I32X1;
    OnConfigure => "proxy_on_configure", I32X2, I32X1;
    ValidateConfiguration => "proxy_validate_configuration", I32X2, I32X1;
    OnTick => "proxy_on_tick", I32X1, NONE;
    OnQueueReady => "proxy_on_queue_ready", I32X2, NONE;
    OnForeignFunction => "proxy_on_foreign_function", I32X3, NONE;
    OnNewConnection => "proxy_on_new_connection", I32X1, I32X1;
    OnDownstreamData => "proxy_on_downstream_data", I32X3, I32X1;
    OnUpstreamData => "proxy_on_upstream_data", I32X3, I32X1;
    OnDownstreamConnectionClose => "proxy_on_downstream_connection_close", I32X2, NONE;
    OnUpstreamConnectionClose => "proxy_on_upstream_connection_close", I32X2, NONE;
    OnRequestHeaders => "proxy_on_request_headers", I32X3, I32X1;
    OnRequestBody => "proxy_on_request_body", I32X3, I32X1;
    OnRequestTrailers => "proxy_on_request_trailers", I32X2, I32X1;
    OnRequestMetadata => "proxy_on_request_metadata", I32X2, I32X1;
    OnResponseHeaders => "proxy_on_response_headers", I32X3, I32X1;
    OnResponseBody => "proxy_on_response_body", I32X3, I32X1;
    OnResponseTrailers => "proxy_on_response_trailers", I32X2, I32X1;
    OnResponseMetadata => "proxy_on_response_metadata", I32X2, I32X1;
    OnHttpCallResponse => "proxy_on_http_call_response", I32X5, NONE;
    OnGrpcReceiveInitialMetadata => "proxy_on_grpc_receive_initial_metadata", I32X3, NONE;
    OnGrpcReceive => "proxy_on_grpc_receive", I32X3, NONE;
    OnGrpcReceiveTrailingMetadata => "proxy_on_grpc_receive_trailing_metadata", I32X3, NONE;
    OnGrpcClose => "proxy_on_grpc_close", I32X3, NONE;
    OnDone => "proxy_on_done", I32X1, I32X1;
    OnLog => "proxy_on_log", I32X1, NONE;
    OnDelete => "proxy_on_delete", I32X1, NONE;
    EnvoyOnResolveDns => "envoy_on_resolve_dns", I32X3, NONE;
    EnvoyOnStatsUpdate => "envoy_on_stats_update", I32X2, NONE;
    }
}

impl Callback {
    /// The signature Envoy expects for `version`: the header callbacks lost their
    /// `end_of_stream` argument in 0.1.0.
    pub const fn signature_for(self, version: AbiVersion) -> Signature {
        match (self, version) {
            (Callback::OnRequestHeaders | Callback::OnResponseHeaders, AbiVersion::V0_1_0) => {
                Signature {
                    params: I32X2,
                    results: I32X1,
                }
            }
            _ => self.signature(),
        }
    }

    /// Whether Envoy looks the export up for `version` (`proxy_on_foreign_function` is 0.2.x).
    pub const fn looked_up_for(self, version: AbiVersion) -> bool {
        !matches!(
            (self, version),
            (Callback::OnForeignFunction, AbiVersion::V0_1_0)
        )
    }

    /// Looks a callback up by export name.
    pub fn from_name(name: &str) -> Option<Callback> {
        Callback::ALL.iter().copied().find(|cb| cb.name() == name)
    }

    /// Start-up and allocator exports, which run with the restricted import set.
    pub const fn is_integration(self) -> bool {
        matches!(
            self,
            Callback::Initialize
                | Callback::Main
                | Callback::MainVoid
                | Callback::Start
                | Callback::Malloc
                | Callback::OnMemoryAllocate
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_callbacks_change_with_the_version() {
        let old = Callback::OnRequestHeaders.signature_for(AbiVersion::V0_1_0);
        let new = Callback::OnRequestHeaders.signature_for(AbiVersion::V0_2_1);
        assert_eq!(old.params.len(), 2);
        assert_eq!(new.params.len(), 3);
        assert_eq!(
            Callback::OnRequestBody
                .signature_for(AbiVersion::V0_1_0)
                .params
                .len(),
            3
        );
        assert!(!Callback::OnForeignFunction.looked_up_for(AbiVersion::V0_1_0));
        assert_eq!(Callback::from_name("proxy_on_log"), Some(Callback::OnLog));
        assert_eq!(old.to_string(), "(i32, i32) -> (i32)");
    }
}
