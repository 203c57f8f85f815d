//! What the embedder provides to every VM of the process: where logs go, the process-wide
//! stores (shared data, queues, metrics), and the I/O behind callouts and timers.

use crate::metrics::Metrics;
use crate::queues::SharedQueues;
use crate::shared_data::SharedData;
use pwx_abi::LogLevel;
use std::sync::{Arc, Mutex};

/// One log line of a module.
#[derive(Debug)]
pub struct LogRecord<'a> {
    /// Level the module logged at.
    pub level: LogLevel,
    /// Plugin name (empty for the VM context).
    pub plugin_name: &'a str,
    /// Plugin root id.
    pub root_id: &'a str,
    /// VM id.
    pub vm_id: &'a str,
    /// Whether the line came from a stream context (Envoy prefixes those with the plugin name).
    pub stream: bool,
    /// The message.
    pub message: &'a str,
}

impl LogRecord<'_> {
    /// Envoy's prefix: ` <plugin name> <root_id> <vm_id>` for stream contexts and
    /// ` <root_id> <vm_id>` for root contexts, empty parts omitted.
    pub fn envoy_prefix(&self) -> String {
        let mut parts = Vec::new();
        if self.stream && !self.plugin_name.is_empty() {
            parts.push(self.plugin_name);
        }
        parts.extend(
            [self.root_id, self.vm_id]
                .into_iter()
                .filter(|p| !p.is_empty()),
        );
        parts.iter().map(|p| format!(" {p}")).collect()
    }
}

/// Where module log lines go.
pub trait LogSink: Send + Sync {
    /// Records one line.
    fn log(&self, record: &LogRecord<'_>);
    /// The level modules see from `proxy_get_log_level`.
    fn level(&self) -> LogLevel;
}

/// Sends module logs to `tracing` (target `pwx::wasm`), as `wasm log <prefix>: <message>`.
pub struct TracingLog {
    /// Level reported to modules.
    pub level: LogLevel,
}

impl LogSink for TracingLog {
    fn log(&self, record: &LogRecord<'_>) {
        let prefix = record.envoy_prefix();
        let message = record.message;
        match record.level {
            LogLevel::Trace => tracing::trace!(target: "pwx::wasm", "wasm log{prefix}: {message}"),
            LogLevel::Debug => tracing::debug!(target: "pwx::wasm", "wasm log{prefix}: {message}"),
            LogLevel::Info => tracing::info!(target: "pwx::wasm", "wasm log{prefix}: {message}"),
            LogLevel::Warn => tracing::warn!(target: "pwx::wasm", "wasm log{prefix}: {message}"),
            LogLevel::Error | LogLevel::Critical => {
                tracing::error!(target: "pwx::wasm", "wasm log{prefix}: {message}")
            }
        }
    }

    fn level(&self) -> LogLevel {
        self.level
    }
}

/// A captured log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedLog {
    /// Level.
    pub level: LogLevel,
    /// Envoy-style prefix (see [`LogRecord::envoy_prefix`]).
    pub prefix: String,
    /// Message.
    pub message: String,
}

/// Keeps log lines in memory (tests, `pwx test`).
#[derive(Default)]
pub struct MemoryLog {
    lines: Mutex<Vec<CapturedLog>>,
    level: Option<LogLevel>,
}

impl MemoryLog {
    /// A log that reports `level` to modules.
    pub fn with_level(level: LogLevel) -> Self {
        MemoryLog {
            lines: Mutex::default(),
            level: Some(level),
        }
    }

    /// Takes every line captured so far.
    pub fn take(&self) -> Vec<CapturedLog> {
        std::mem::take(
            &mut *self
                .lines
                .lock()
                .unwrap_or_else(|poison| poison.into_inner()),
        )
    }

    /// The messages captured so far (without taking them).
    pub fn messages(&self) -> Vec<String> {
        let lines = self
            .lines
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        lines.iter().map(|l| l.message.clone()).collect()
    }
}

impl LogSink for MemoryLog {
    fn log(&self, record: &LogRecord<'_>) {
        let line = CapturedLog {
            level: record.level,
            prefix: record.envoy_prefix(),
            message: record.message.to_string(),
        };
        self.lines
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .push(line);
    }

    fn level(&self) -> LogLevel {
        self.level.unwrap_or(LogLevel::Trace)
    }
}

/// An HTTP callout the module asked for (`proxy_http_call`), handed to the embedder as a
/// [`DeferredAction::HttpCall`](crate::DeferredAction::HttpCall) once the callback returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCalloutRequest {
    /// Token the response will be delivered with.
    pub token: u32,
    /// Root context that owns the callout.
    pub root_context_id: u32,
    /// Cluster name.
    pub cluster: String,
    /// Request headers (`:method`, `:path`, `:authority` present), names lower-cased.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Body.
    pub body: Vec<u8>,
    /// Trailers.
    pub trailers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Timeout; `None` for no timeout.
    pub timeout: Option<std::time::Duration>,
}

/// A gRPC callout the module started (`proxy_grpc_call` or `proxy_grpc_stream`), handed to the
/// embedder as a [`DeferredAction::GrpcStart`](crate::DeferredAction::GrpcStart). What arrives
/// for it goes back with [`Vm::on_grpc_event`](crate::Vm::on_grpc_event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcCalloutRequest {
    /// Token its events are delivered with (calls 5, 9, …; streams 6, 10, …).
    pub token: u32,
    /// Root context that owns the callout.
    pub root_context_id: u32,
    /// Cluster name.
    pub cluster: String,
    /// `:authority` of the request (the cluster name unless the `GrpcService` names one).
    pub authority: String,
    /// Fully qualified service name (`package.Service`).
    pub service: Vec<u8>,
    /// Method name.
    pub method: Vec<u8>,
    /// Initial metadata: the `GrpcService`'s, then the module's (names lower-cased).
    pub initial_metadata: Vec<(Vec<u8>, Vec<u8>)>,
    /// The request message of a unary call (`None` for a stream).
    pub message: Option<Vec<u8>>,
    /// Timeout of a unary call, sent as `grpc-timeout` and enforced when not zero (Envoy sends
    /// `grpc-timeout: 0m` for zero and enforces nothing). Streams have none.
    pub timeout: Option<std::time::Duration>,
}

impl GrpcCalloutRequest {
    /// The request path, `/<service>/<method>`.
    pub fn path(&self) -> Vec<u8> {
        let mut path = Vec::with_capacity(self.service.len() + self.method.len() + 2);
        path.push(b'/');
        path.extend_from_slice(&self.service);
        path.push(b'/');
        path.extend_from_slice(&self.method);
        path
    }
}

/// What arrived for a gRPC callout, delivered to the module with
/// [`Vm::on_grpc_event`](crate::Vm::on_grpc_event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GrpcEvent {
    /// Response headers of a stream (`proxy_on_grpc_receive_initial_metadata`, map 4).
    InitialMetadata(crate::headers::HeaderMap),
    /// One response message (`proxy_on_grpc_receive`, buffer 5). For a unary call this is the
    /// successful end: no close follows.
    Message(Vec<u8>),
    /// Trailers of a stream (`proxy_on_grpc_receive_trailing_metadata`, map 5).
    TrailingMetadata(crate::headers::HeaderMap),
    /// The remote end closed (`proxy_on_grpc_close`); `proxy_get_status` reads the status and
    /// message during the callback.
    Close {
        /// gRPC status code.
        status: u32,
        /// Status message (`grpc-message`, or what the transport reported).
        message: Vec<u8>,
    },
}

/// The clusters callouts may name, supplied by the data plane. Envoy checks the name while the
/// hostcall runs (an unknown cluster is a synchronous `BadArgument`); the I/O itself happens
/// after the callback returns, on the worker that owns the VM.
pub trait Clusters: Send + Sync {
    /// Whether `cluster` is known.
    fn has_cluster(&self, cluster: &str) -> bool;
}

/// A process with no clusters: every callout is refused as Envoy refuses an unknown cluster.
pub struct NoClusters;

impl Clusters for NoClusters {
    fn has_cluster(&self, _cluster: &str) -> bool {
        false
    }
}

/// A fixed set of cluster names.
impl Clusters for std::collections::HashSet<String> {
    fn has_cluster(&self, cluster: &str) -> bool {
        self.contains(cluster)
    }
}

/// The Envoy node this process presents as (`xds.node`).
#[derive(Clone, Debug, Default)]
pub struct NodeInfo {
    /// `node.id`.
    pub id: String,
    /// `node.cluster`.
    pub cluster: String,
}

/// Everything the VMs of one process share.
pub struct Services {
    /// Where module logs go.
    pub log: Arc<dyn LogSink>,
    /// Shared key-value data, per `vm_id`.
    pub shared_data: SharedData,
    /// Shared queues, per `vm_id`.
    pub queues: SharedQueues,
    /// Metrics defined by modules.
    pub metrics: Metrics,
    /// The clusters callouts may name.
    pub clusters: Arc<dyn Clusters>,
    /// The node identity.
    pub node: NodeInfo,
}

impl Services {
    /// Services that log through `tracing` at info and have no clusters.
    pub fn new(log: Arc<dyn LogSink>) -> Self {
        Services {
            log,
            shared_data: SharedData::default(),
            queues: SharedQueues::default(),
            metrics: Metrics::default(),
            clusters: Arc::new(NoClusters),
            node: NodeInfo::default(),
        }
    }
}

impl Default for Services {
    fn default() -> Self {
        Services::new(Arc::new(TracingLog {
            level: LogLevel::Info,
        }))
    }
}
