//! What a VM's store holds: the module's memory and allocator, the contexts, the callback in
//! progress, and the actions deferred until it returns.

use crate::headers::HeaderMap;
use crate::plugin::{PluginConfig, VmConfig};
use crate::services::Services;
use crate::stream_info::StreamInfo;
use pwx_abi::{AbiVersion, LogLevel};
use std::collections::HashMap;
use std::sync::Arc;
use wasmtime::{Memory, StoreLimits, TypedFunc};

/// Which kind of code is running in the VM now; decides which imports may be called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Nothing runs.
    Idle,
    /// `_initialize`/`_start`/`main`: only the start-up whitelist may be called.
    Startup,
    /// A proxy-wasm callback.
    Callback,
}

/// An action a hostcall asked for, applied by the embedder after the callback returns
/// (Envoy never re-enters the module from inside a hostcall).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeferredAction {
    /// Resume the request path of an HTTP stream (`continue_stream(HttpRequest)`).
    ContinueRequest,
    /// Resume the response path (`continue_stream(HttpResponse)`).
    ContinueResponse,
    /// Reset the HTTP stream (`close_stream(HttpRequest|HttpResponse)`).
    ResetStream,
    /// Send a local reply instead of (or in place of the rest of) the upstream response.
    LocalReply(LocalReply),
    /// Resume reading from the downstream connection (TCP).
    ContinueDownstream,
    /// Close the downstream connection (TCP).
    CloseDownstream,
    /// Close the upstream connection (TCP).
    CloseUpstream,
    /// Clear the route cache (ABI 0.1.0 `proxy_clear_route_cache`).
    ClearRouteCache,
    /// A root context's tick period changed; `None` disables the timer.
    SetTickPeriod(Option<std::time::Duration>),
    /// A root context that returned false from `on_done` called `proxy_done`: delete it.
    DeleteRoot,
    /// Start an HTTP callout (`proxy_http_call`); its response is delivered with
    /// [`Vm::on_http_call_response`](crate::Vm::on_http_call_response).
    HttpCall(crate::services::HttpCalloutRequest),
    /// Start a gRPC call or stream (`proxy_grpc_call`, `proxy_grpc_stream`); what arrives for
    /// it is delivered with [`Vm::on_grpc_event`](crate::Vm::on_grpc_event).
    GrpcStart(crate::services::GrpcCalloutRequest),
    /// Send a message on a gRPC stream (`proxy_grpc_send`); `end_stream` half-closes it after.
    GrpcSend {
        /// Stream token.
        token: u32,
        /// The message (framed by the embedder).
        message: Vec<u8>,
        /// Half-close the local side after this message.
        end_stream: bool,
    },
    /// Half-close the local side of a gRPC stream (`proxy_grpc_close` on a stream): no more
    /// messages are sent, the response keeps arriving.
    GrpcHalfClose {
        /// Stream token.
        token: u32,
    },
    /// Abandon a gRPC call or stream (`proxy_grpc_cancel`, or `proxy_grpc_close` on a call):
    /// reset it; the module receives nothing more for it.
    GrpcCancel {
        /// Call or stream token.
        token: u32,
    },
}

/// A gRPC callout the module may still act on, by token.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GrpcCallout {
    /// The root context that owns it (the one hostcalls must name it from).
    pub(crate) root: u32,
    /// The module closed its side (`proxy_grpc_close` on a stream).
    pub(crate) local_closed: bool,
    /// The remote end closed (`proxy_on_grpc_close` was delivered).
    pub(crate) remote_closed: bool,
}

/// A local reply a filter asked for with `proxy_send_local_response`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status code.
    pub status: u32,
    /// Response code details (whitespace replaced by `_`, as Envoy does).
    pub details: String,
    /// Body.
    pub body: Vec<u8>,
    /// Headers added to the reply.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// gRPC status (0..=16) for a gRPC-style reply; `None` otherwise.
    pub grpc_status: Option<u32>,
}

/// A deferred action and the context it targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deferred {
    /// The context (stream or root) the action applies to.
    pub context_id: u32,
    /// The action.
    pub action: DeferredAction,
}

/// A root context: one per plugin per VM.
pub(crate) struct RootContext {
    pub(crate) plugin: Arc<PluginConfig>,
    /// `on_context_create` was delivered, so `on_delete` is owed.
    pub(crate) created: bool,
    /// `on_done` returned false: waiting for `proxy_done`.
    pub(crate) pending_done: bool,
    /// Last callout failure, for `proxy_get_status`.
    pub(crate) status: (u32, Vec<u8>),
}

/// How the module may touch one of a stream's header maps right now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Access {
    /// Not available (Envoy has no pointer to it in this phase): `BadArgument`.
    #[default]
    None,
    /// Readable only (`on_log`).
    ReadOnly,
    /// Readable and writable (its callback, or while the stream is paused after it).
    ReadWrite,
}

/// HTTP stream state: the four HTTP maps (indexed by `MapType` 0..=3), the bodies, and where
/// each is available. The maps are kept after they leave the module so properties
/// (`request.path`, `response.code`, …) and `on_log` can read them.
#[derive(Default)]
pub(crate) struct HttpStreamState {
    pub(crate) maps: [HeaderMap; 4],
    pub(crate) access: [Access; 4],
    /// Trailers that do not exist yet may be created by writing them during the last body
    /// callback (request trailers = index 1, response trailers = index 3).
    pub(crate) creatable: [bool; 4],
    /// The request body visible to the module (current chunk, or everything buffered).
    pub(crate) request_body: Vec<u8>,
    /// The response body visible to the module.
    pub(crate) response_body: Vec<u8>,
    /// Body held back by `StopIterationAndWatermark` (request, response): passed on with the
    /// next chunk that continues, but not visible to the module (Envoy shows it only the new
    /// chunk).
    pub(crate) watermarked: [Vec<u8>; 2],
    /// Connection and request facts for properties.
    pub(crate) info: StreamInfo,
    /// Inside `on_log`.
    pub(crate) in_log: bool,
    /// Inside a headers callback of this direction: its body cannot be written yet (Envoy
    /// answers `BadArgument`).
    pub(crate) in_headers: Option<crate::http::Direction>,
    /// Where each direction is paused.
    pub(crate) request_paused: crate::http::Paused,
    pub(crate) response_paused: crate::http::Paused,
}

/// A network (TCP) connection's data buffers: `Some` while the module may touch them (inside
/// their callback, or while that direction is paused after it), `None` otherwise.
#[derive(Default)]
pub(crate) struct NetStreamState {
    /// `DownstreamData` (buffer 2): bytes read from the client.
    pub(crate) downstream: Option<Vec<u8>>,
    /// `UpstreamData` (buffer 3): bytes read from the upstream.
    pub(crate) upstream: Option<Vec<u8>>,
}

/// A stream context: an HTTP stream, or a network connection when `net` is set. Both keep
/// their connection facts and filter state in `http` (properties read them there).
pub(crate) struct StreamContext {
    pub(crate) root_id: u32,
    /// `on_context_create` was delivered (lazily, at the first callback).
    pub(crate) created: bool,
    pub(crate) http: HttpStreamState,
    /// Set for network (TCP) connections.
    pub(crate) net: Option<NetStreamState>,
}

/// Every context of a VM, by id.
pub(crate) enum Context {
    Root(RootContext),
    Stream(Box<StreamContext>),
}

/// The store data of one VM replica.
pub struct HostState {
    pub(crate) abi: AbiVersion,
    /// Process-unique id of this VM replica.
    pub(crate) instance_id: u64,
    /// Metrics this VM defined, by the id it was given (`type + 4k`).
    pub(crate) metric_ids: HashMap<u32, Arc<crate::metrics::Metric>>,
    /// Next `k` per metric type.
    pub(crate) next_metric_seq: [u32; 3],
    /// Next callout token (multiples of 4 for HTTP calls).
    pub(crate) next_http_token: u32,
    /// Last gRPC call token (5, 9, …) and stream token (6, 10, …) handed out.
    pub(crate) last_grpc_call_token: u32,
    pub(crate) last_grpc_stream_token: u32,
    /// gRPC calls and streams the module may still act on, by token.
    pub(crate) grpc_callouts: HashMap<u32, GrpcCallout>,
    /// gRPC metadata being delivered (map 4 or 5) and which of the two it is.
    pub(crate) grpc_metadata: Option<(pwx_abi::MapType, HeaderMap)>,
    pub(crate) memory: Option<Memory>,
    /// Shared, so a hostcall can hold it while it calls into the store (cloning a
    /// `TypedFunc` copies its registered type).
    pub(crate) allocator: Option<Arc<TypedFunc<i32, i32>>>,
    pub(crate) phase: Phase,
    /// The module's allocator is running inside a hostcall.
    pub(crate) allocating: bool,
    /// Context of the callback in progress (0 = the VM context).
    pub(crate) current: u32,
    /// Context hostcalls act on (`proxy_set_effective_context` changes it for one callback).
    pub(crate) effective: u32,
    /// `proxy_on_configure` of this root is running: the plugin configuration is readable.
    pub(crate) configuring: Option<u32>,
    /// Bytes of the read-only buffer of the callback in progress (callout response body,
    /// gRPC message or call data), and which buffer type they are.
    pub(crate) call_data: Option<Vec<u8>>,
    pub(crate) call_data_kind: Option<pwx_abi::BufferType>,
    /// Headers and trailers of the callout response being delivered (maps 6 and 7).
    pub(crate) callout_maps: Option<(HeaderMap, HeaderMap)>,
    /// Looked up several times per callback: hashed with Fx, not SipHash (ids are ours).
    pub(crate) contexts: rustc_hash::FxHashMap<u32, Context>,
    pub(crate) next_context_id: u32,
    pub(crate) vm: Arc<VmConfig>,
    pub(crate) services: Arc<Services>,
    pub(crate) deferred: Vec<Deferred>,
    /// `proxy_send_local_response` was called in this callback: its result is forced to stop.
    pub(crate) local_reply_sent: bool,
    pub(crate) limits: StoreLimits,
    /// Why the VM failed, once it has.
    pub(crate) failed: Option<String>,
}

impl HostState {
    pub(crate) fn new(
        abi: AbiVersion,
        vm: Arc<VmConfig>,
        services: Arc<Services>,
        limits: StoreLimits,
    ) -> Self {
        static NEXT_INSTANCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        HostState {
            abi,
            instance_id: NEXT_INSTANCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            metric_ids: HashMap::new(),
            next_metric_seq: [1; 3],
            next_http_token: 0,
            last_grpc_call_token: pwx_abi::grpc::TokenKind::GrpcCall.first() - 4,
            last_grpc_stream_token: pwx_abi::grpc::TokenKind::GrpcStream.first() - 4,
            grpc_callouts: HashMap::new(),
            grpc_metadata: None,
            memory: None,
            allocator: None,
            phase: Phase::Idle,
            allocating: false,
            current: 0,
            effective: 0,
            configuring: None,
            call_data: None,
            call_data_kind: None,
            callout_maps: None,
            contexts: Default::default(),
            next_context_id: 1,
            vm,
            services,
            deferred: Vec::new(),
            local_reply_sent: false,
            limits,
            failed: None,
        }
    }

    /// The root context id of `context_id` (itself for a root).
    pub(crate) fn root_of(&self, context_id: u32) -> Option<u32> {
        match self.contexts.get(&context_id)? {
            Context::Root(_) => Some(context_id),
            Context::Stream(stream) => Some(stream.root_id),
        }
    }

    pub(crate) fn root(&self, root_id: u32) -> Option<&RootContext> {
        match self.contexts.get(&root_id)? {
            Context::Root(root) => Some(root),
            Context::Stream(_) => None,
        }
    }

    pub(crate) fn root_mut(&mut self, root_id: u32) -> Option<&mut RootContext> {
        match self.contexts.get_mut(&root_id)? {
            Context::Root(root) => Some(root),
            Context::Stream(_) => None,
        }
    }

    /// The plugin the effective context belongs to.
    pub(crate) fn effective_plugin(&self) -> Option<&Arc<PluginConfig>> {
        let root = self.root_of(self.effective)?;
        self.root(root).map(|r| &r.plugin)
    }

    /// The HTTP state of the effective context, if it is a stream.
    pub(crate) fn effective_http(&self) -> Option<&HttpStreamState> {
        match self.contexts.get(&self.effective)? {
            Context::Stream(stream) => Some(&stream.http),
            Context::Root(_) => None,
        }
    }

    /// The network state of the effective context, if it is a network connection.
    pub(crate) fn effective_net(&self) -> Option<&NetStreamState> {
        match self.contexts.get(&self.effective)? {
            Context::Stream(stream) => stream.net.as_ref(),
            Context::Root(_) => None,
        }
    }

    pub(crate) fn effective_net_mut(&mut self) -> Option<&mut NetStreamState> {
        match self.contexts.get_mut(&self.effective)? {
            Context::Stream(stream) => stream.net.as_mut(),
            Context::Root(_) => None,
        }
    }

    pub(crate) fn effective_http_mut(&mut self) -> Option<&mut HttpStreamState> {
        match self.contexts.get_mut(&self.effective)? {
            Context::Stream(stream) => Some(&mut stream.http),
            Context::Root(_) => None,
        }
    }

    /// Emits a log line for the module, prefixed as Envoy prefixes it.
    pub(crate) fn log(&self, level: LogLevel, message: &str) {
        let plugin = self.effective_plugin();
        let is_stream = matches!(self.contexts.get(&self.effective), Some(Context::Stream(_)));
        let record = crate::services::LogRecord {
            level,
            plugin_name: plugin.map(|p| p.name.as_str()).unwrap_or(""),
            root_id: plugin.map(|p| p.root_id.as_str()).unwrap_or(""),
            vm_id: &self.vm.vm_id,
            stream: is_stream,
            message,
        };
        self.services.log.log(&record);
    }

    pub(crate) fn defer(&mut self, context_id: u32, action: DeferredAction) {
        self.deferred.push(Deferred { context_id, action });
    }
}
