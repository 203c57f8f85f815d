//! The ABI's enumerations with Envoy's numeric values.

abi_enum! {
    /// Log levels of `proxy_log` and `proxy_get_log_level`.
    LogLevel {
        /// Most verbose.
        Trace = 0 => "trace",
        /// Debugging detail.
        Debug = 1 => "debug",
        /// Normal operation.
        Info = 2 => "info",
        /// Something unexpected.
        Warn = 3 => "warn",
        /// A failure.
        Error = 4 => "error",
        /// A failure that stops the filter.
        Critical = 5 => "critical",
    }
}

abi_enum! {
    /// Buffers readable with `proxy_get_buffer_bytes`.
    BufferType {
        /// HTTP request body.
        HttpRequestBody = 0 => "HttpRequestBody",
        /// HTTP response body.
        HttpResponseBody = 1 => "HttpResponseBody",
        /// TCP data from the client.
        DownstreamData = 2 => "DownstreamData",
        /// TCP data from the backend.
        UpstreamData = 3 => "UpstreamData",
        /// Body of an `http_call` response.
        HttpCallResponseBody = 4 => "HttpCallResponseBody",
        /// A received gRPC message.
        GrpcReceiveBuffer = 5 => "GrpcReceiveBuffer",
        /// The VM configuration.
        VmConfiguration = 6 => "VmConfiguration",
        /// The plugin configuration.
        PluginConfiguration = 7 => "PluginConfiguration",
        /// Foreign-function arguments and other call data.
        CallData = 8 => "CallData",
    }
}

abi_enum! {
    /// Header maps addressed by the `proxy_*_header_map_*` calls.
    MapType {
        /// HTTP request headers.
        HttpRequestHeaders = 0 => "HttpRequestHeaders",
        /// HTTP request trailers.
        HttpRequestTrailers = 1 => "HttpRequestTrailers",
        /// HTTP response headers.
        HttpResponseHeaders = 2 => "HttpResponseHeaders",
        /// HTTP response trailers.
        HttpResponseTrailers = 3 => "HttpResponseTrailers",
        /// gRPC initial metadata received.
        GrpcReceiveInitialMetadata = 4 => "GrpcReceiveInitialMetadata",
        /// gRPC trailing metadata received.
        GrpcReceiveTrailingMetadata = 5 => "GrpcReceiveTrailingMetadata",
        /// Headers of an `http_call` response.
        HttpCallResponseHeaders = 6 => "HttpCallResponseHeaders",
        /// Trailers of an `http_call` response.
        HttpCallResponseTrailers = 7 => "HttpCallResponseTrailers",
    }
}

abi_enum! {
    /// Kinds of metric for `proxy_define_metric`.
    MetricType {
        /// Monotonic counter.
        Counter = 0 => "counter",
        /// Value that goes up and down.
        Gauge = 1 => "gauge",
        /// Distribution of samples.
        Histogram = 2 => "histogram",
    }
}

abi_enum! {
    /// Streams addressed by `proxy_continue_stream` and `proxy_close_stream` (ABI 0.2.x).
    StreamType {
        /// The HTTP request (decoder) path.
        HttpRequest = 0 => "HttpRequest",
        /// The HTTP response (encoder) path.
        HttpResponse = 1 => "HttpResponse",
        /// Data read from the downstream connection.
        Downstream = 2 => "Downstream",
        /// Data written back to the downstream connection.
        Upstream = 3 => "Upstream",
    }
}

abi_enum! {
    /// Which side closed a connection (argument of the `*_connection_close` callbacks).
    PeerType {
        /// Unknown.
        Unknown = 0 => "Unknown",
        /// Closed locally.
        Local = 1 => "Local",
        /// Closed by the peer.
        Remote = 2 => "Remote",
    }
}

abi_enum! {
    /// What SDKs return from stream callbacks.
    Action {
        /// Go on to the next filter.
        Continue = 0 => "Continue",
        /// Stop iteration until the filter resumes the stream.
        Pause = 1 => "Pause",
    }
}

abi_enum! {
    /// Extended result of the header callbacks (C++ and AssemblyScript SDKs).
    FilterHeadersStatus {
        /// Continue.
        Continue = 0 => "Continue",
        /// Stop iteration (Envoy upgrades it to StopAllIterationAndWatermark by default).
        StopIteration = 1 => "StopIteration",
        /// Treated as Continue.
        ContinueAndEndStream = 2 => "ContinueAndEndStream",
        /// Stop everything and buffer the body.
        StopAllIterationAndBuffer = 3 => "StopAllIterationAndBuffer",
        /// Stop everything, buffering up to the watermark.
        StopAllIterationAndWatermark = 4 => "StopAllIterationAndWatermark",
    }
}

abi_enum! {
    /// Extended result of the body callbacks.
    FilterDataStatus {
        /// Forward the data.
        Continue = 0 => "Continue",
        /// Stop and buffer: the next callback sees the whole buffered body.
        StopIterationAndBuffer = 1 => "StopIterationAndBuffer",
        /// Stop and buffer up to the watermark.
        StopIterationAndWatermark = 2 => "StopIterationAndWatermark",
        /// Stop without buffering.
        StopIterationNoBuffer = 3 => "StopIterationNoBuffer",
    }
}

abi_enum! {
    /// Result of the trailer callbacks.
    FilterTrailersStatus {
        /// Continue.
        Continue = 0 => "Continue",
        /// Stop until resumed.
        StopIteration = 1 => "StopIteration",
    }
}

abi_enum! {
    /// gRPC status codes (used by `proxy_send_local_response` and `proxy_on_grpc_close`).
    GrpcStatus {
        /// Success.
        Ok = 0 => "OK",
        /// Cancelled.
        Canceled = 1 => "CANCELLED",
        /// Unknown error.
        Unknown = 2 => "UNKNOWN",
        /// Invalid argument.
        InvalidArgument = 3 => "INVALID_ARGUMENT",
        /// Deadline exceeded.
        DeadlineExceeded = 4 => "DEADLINE_EXCEEDED",
        /// Not found.
        NotFound = 5 => "NOT_FOUND",
        /// Already exists.
        AlreadyExists = 6 => "ALREADY_EXISTS",
        /// Permission denied.
        PermissionDenied = 7 => "PERMISSION_DENIED",
        /// Resource exhausted.
        ResourceExhausted = 8 => "RESOURCE_EXHAUSTED",
        /// Failed precondition.
        FailedPrecondition = 9 => "FAILED_PRECONDITION",
        /// Aborted.
        Aborted = 10 => "ABORTED",
        /// Out of range.
        OutOfRange = 11 => "OUT_OF_RANGE",
        /// Unimplemented.
        Unimplemented = 12 => "UNIMPLEMENTED",
        /// Internal error.
        Internal = 13 => "INTERNAL",
        /// Unavailable (what Envoy's fail-closed reply carries).
        Unavailable = 14 => "UNAVAILABLE",
        /// Data loss.
        DataLoss = 15 => "DATA_LOSS",
        /// Unauthenticated.
        Unauthenticated = 16 => "UNAUTHENTICATED",
    }
}

abi_enum! {
    /// Envoy's `PluginConfig.failure_policy` (Envoy ≥ 1.33).
    FailurePolicy {
        /// Not set: behaves as FailClosed.
        Unspecified = 0 => "UNSPECIFIED",
        /// Rebuild the VM after a runtime error, with backoff; fail closed meanwhile.
        FailReload = 1 => "FAIL_RELOAD",
        /// Reject the stream with 503 (the default).
        FailClosed = 2 => "FAIL_CLOSED",
        /// Let the stream go on without the plugin.
        FailOpen = 3 => "FAIL_OPEN",
    }
}

impl FailurePolicy {
    /// The policy in force: `Unspecified` means `FailClosed`.
    pub const fn effective(self) -> FailurePolicy {
        match self {
            FailurePolicy::Unspecified => FailurePolicy::FailClosed,
            other => other,
        }
    }
}

impl LogLevel {
    /// Envoy's `proxy_get_log_level` can yield 6 (spdlog "off"); the Rust SDK only knows 0..=5,
    /// so a safe host clamps.
    pub const fn clamp_from_u32(value: u32) -> LogLevel {
        match LogLevel::from_u32(value) {
            Some(level) => level,
            None => LogLevel::Critical,
        }
    }
}

impl MapType {
    /// Maps a filter may write (the four HTTP maps); the rest are read-only.
    pub const fn is_http(self) -> bool {
        matches!(
            self,
            MapType::HttpRequestHeaders
                | MapType::HttpRequestTrailers
                | MapType::HttpResponseHeaders
                | MapType::HttpResponseTrailers
        )
    }
}

/// Sentinel a module passes as `grpc_status` to `proxy_send_local_response` for "no gRPC status".
pub const GRPC_STATUS_NONE: u32 = u32::MAX;

/// Stream-callback results as Envoy interprets them (`convertVmCallResult…`).
pub mod interpret {
    use super::{FilterDataStatus, FilterHeadersStatus, FilterTrailersStatus};

    /// A header-callback result; values above 4 mean StopAllIterationAndWatermark.
    pub fn headers(raw: u32) -> FilterHeadersStatus {
        FilterHeadersStatus::from_u32(raw)
            .unwrap_or(FilterHeadersStatus::StopAllIterationAndWatermark)
    }

    /// A body-callback result; values above 3 mean StopIterationNoBuffer.
    pub fn data(raw: u32) -> FilterDataStatus {
        FilterDataStatus::from_u32(raw).unwrap_or(FilterDataStatus::StopIterationNoBuffer)
    }

    /// A trailer-callback result; values above 1 mean StopIteration.
    pub fn trailers(raw: u32) -> FilterTrailersStatus {
        FilterTrailersStatus::from_u32(raw).unwrap_or(FilterTrailersStatus::StopIteration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_envoy() {
        assert_eq!(LogLevel::Critical as u32, 5);
        assert_eq!(BufferType::CallData as u32, 8);
        assert_eq!(MapType::HttpCallResponseTrailers as u32, 7);
        assert_eq!(StreamType::Upstream as u32, 3);
        assert_eq!(GrpcStatus::Unavailable as u32, 14);
        assert_eq!(FailurePolicy::FailOpen as u32, 3);
        assert_eq!(BufferType::from_u32(9), None);
        assert_eq!(MapType::ALL.len(), 8);
    }

    #[test]
    fn callback_results_are_interpreted_as_envoy_does() {
        assert_eq!(interpret::headers(1), FilterHeadersStatus::StopIteration);
        assert_eq!(
            interpret::headers(77),
            FilterHeadersStatus::StopAllIterationAndWatermark
        );
        assert_eq!(interpret::data(9), FilterDataStatus::StopIterationNoBuffer);
        assert_eq!(interpret::trailers(2), FilterTrailersStatus::StopIteration);
        assert_eq!(LogLevel::clamp_from_u32(6), LogLevel::Critical);
        assert_eq!(
            FailurePolicy::Unspecified.effective(),
            FailurePolicy::FailClosed
        );
    }
}
