//! A VM replica: one wasmtime instance of a module with its contexts. Runs start-up, the
//! plugin lifecycle (root contexts) and every callback under a deadline; after a trap it makes
//! no further calls into the module, as Envoy does.

use crate::error::StartError;
use crate::limits::Limits;
use crate::module::Module;
use crate::plugin::{PluginConfig, VmConfig};
use crate::services::Services;
use crate::state::{Context, Deferred, HostState, Phase, RootContext, StreamContext};
use pwx_abi::{AbiVersion, Callback};
use std::sync::Arc;
use wasmtime::{Instance, Store, StoreLimitsBuilder, Trap, TypedFunc, WasmParams, WasmResults};

/// The VM has failed (a trap, the deadline, memory exhaustion); no more calls go into it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the wasm VM failed: {reason}")]
pub struct VmFailed {
    /// What happened, with the callback and the module's backtrace where there is one.
    pub reason: String,
}

type F1 = TypedFunc<i32, ()>;
type F1R = TypedFunc<i32, i32>;
type F2 = TypedFunc<(i32, i32), ()>;
type F2R = TypedFunc<(i32, i32), i32>;
pub(crate) type F3 = TypedFunc<(i32, i32, i32), ()>;
type F3R = TypedFunc<(i32, i32, i32), i32>;
type F5 = TypedFunc<(i32, i32, i32, i32, i32), ()>;

/// The callbacks the module exports, looked up once per replica.
#[derive(Default)]
pub(crate) struct Callbacks {
    pub(crate) on_context_create: Option<F2>,
    pub(crate) on_vm_start: Option<F2R>,
    pub(crate) on_configure: Option<F2R>,
    pub(crate) on_tick: Option<F1>,
    pub(crate) on_queue_ready: Option<F2>,
    pub(crate) on_request_headers: Option<F3R>,
    pub(crate) on_request_headers_v1: Option<F2R>,
    pub(crate) on_request_body: Option<F3R>,
    pub(crate) on_request_trailers: Option<F2R>,
    pub(crate) on_response_headers: Option<F3R>,
    pub(crate) on_response_headers_v1: Option<F2R>,
    pub(crate) on_response_body: Option<F3R>,
    pub(crate) on_response_trailers: Option<F2R>,
    pub(crate) on_http_call_response: Option<F5>,
    pub(crate) on_grpc_receive_initial_metadata: Option<F3>,
    pub(crate) on_grpc_receive: Option<F3>,
    pub(crate) on_grpc_receive_trailing_metadata: Option<F3>,
    pub(crate) on_grpc_close: Option<F3>,
    pub(crate) on_new_connection: Option<F1R>,
    pub(crate) on_downstream_data: Option<F3R>,
    pub(crate) on_upstream_data: Option<F3R>,
    pub(crate) on_downstream_connection_close: Option<F2>,
    pub(crate) on_upstream_connection_close: Option<F2>,
    pub(crate) on_done: Option<F1R>,
    pub(crate) on_log: Option<F1>,
    pub(crate) on_delete: Option<F1>,
}

/// One VM replica.
pub struct Vm {
    pub(crate) store: Store<HostState>,
    pub(crate) callbacks: Callbacks,
    module: Module,
    deadline_ticks: u64,
    pub(crate) limits: Limits,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("module", &self.module)
            .field("failed", &self.store.data().failed)
            .finish()
    }
}

/// Describes a trap for humans.
fn describe(error: &wasmtime::Error, what: &str, limits: &Limits) -> String {
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => format!(
            "{what} ran longer than its deadline of {} ms and was stopped; the filter has an \
             endless loop or does too much work in one callback",
            limits.callback_deadline.as_millis()
        ),
        Some(Trap::StackOverflow) => format!("{what} exhausted the wasm stack (runaway recursion)"),
        _ => format!("{what} trapped: {error:#}"),
    }
}

impl Vm {
    /// Instantiates `module` and runs its start-up functions (`_initialize` then `main`/
    /// `__main_void`, or `_start`) with only the imports Envoy allows there.
    pub fn new(
        module: &Module,
        config: VmConfig,
        services: Arc<Services>,
        limits: &Limits,
    ) -> Result<Vm, StartError> {
        let engine = module.engine();
        let store_limits = StoreLimitsBuilder::new()
            .memory_size(limits.max_memory_bytes)
            .instances(1)
            .trap_on_grow_failure(false)
            .build();
        let state = HostState::new(
            module.abi_version(),
            Arc::new(config),
            services,
            store_limits,
        );
        let mut store = Store::new(engine.wasmtime(), state);
        store.limiter(|state| &mut state.limits);
        let deadline_ticks = engine.deadline_ticks(limits.callback_deadline);
        store.set_epoch_deadline(deadline_ticks);
        store.data_mut().phase = Phase::Startup;
        let instance = module
            .pre()
            .instantiate(&mut store)
            .map_err(|e| StartError::Instantiate(describe(&e, "instantiation", limits)))?;

        let memory = instance.get_memory(&mut store, "memory");
        let malloc = if module.exports(Callback::Malloc) {
            Callback::Malloc
        } else {
            Callback::OnMemoryAllocate
        };
        let allocator = instance
            .get_typed_func::<i32, i32>(&mut store, malloc.name())
            .ok();
        store.data_mut().memory = memory;
        store.data_mut().allocator = allocator.map(Arc::new);
        let callbacks = lookup_callbacks(&instance, &mut store, module);

        let mut vm = Vm {
            store,
            callbacks,
            module: module.clone(),
            deadline_ticks,
            limits: limits.clone(),
        };
        vm.run_startup(&instance, limits)?;
        Ok(vm)
    }

    fn run_startup(&mut self, instance: &Instance, limits: &Limits) -> Result<(), StartError> {
        let module = self.module.clone();
        let run = |vm: &mut Vm, name: &'static str| -> Result<(), StartError> {
            vm.store.set_epoch_deadline(vm.deadline_ticks);
            let result = match name {
                "main" => instance
                    .get_typed_func::<(i32, i32), i32>(&mut vm.store, name)
                    .and_then(|f| f.call(&mut vm.store, (0, 0)).map(drop)),
                "__main_void" => instance
                    .get_typed_func::<(), i32>(&mut vm.store, name)
                    .and_then(|f| f.call(&mut vm.store, ()).map(drop)),
                _ => instance
                    .get_typed_func::<(), ()>(&mut vm.store, name)
                    .and_then(|f| f.call(&mut vm.store, ())),
            };
            result.map_err(|e| StartError::Startup {
                function: name,
                message: describe(&e, name, limits),
            })
        };
        if module.exports(Callback::Initialize) {
            run(self, "_initialize")?;
            if module.exports(Callback::Main) {
                run(self, "main")?;
            } else if module.exports(Callback::MainVoid) {
                run(self, "__main_void")?;
            }
        } else if module.exports(Callback::Start) {
            run(self, "_start")?;
        }
        self.store.data_mut().phase = Phase::Idle;
        Ok(())
    }

    /// The module this replica runs.
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// Process-unique id of this replica (what queue notifications name).
    pub fn instance_id(&self) -> u64 {
        self.store.data().instance_id
    }

    /// Why the VM failed, if it has.
    pub fn failure(&self) -> Option<&str> {
        self.store.data().failed.as_deref()
    }

    /// Takes the actions hostcalls deferred (continue, local reply, tick period, …).
    pub fn take_deferred(&mut self) -> Vec<Deferred> {
        std::mem::take(&mut self.store.data_mut().deferred)
    }

    /// Calls a callback for `context_id` under the deadline. A trap fails the VM for good.
    /// `pick` names the callback in `Callbacks` (borrowed, not cloned: a `TypedFunc` clone
    /// copies its registered type, which showed in profiles at every call).
    pub(crate) fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        name: &'static str,
        pick: impl FnOnce(&Callbacks) -> Option<&TypedFunc<P, R>>,
        context_id: u32,
        params: P,
    ) -> Result<Option<R>, VmFailed> {
        if let Some(reason) = &self.store.data().failed {
            return Err(VmFailed {
                reason: reason.clone(),
            });
        }
        let Some(func) = pick(&self.callbacks) else {
            return Ok(None);
        };
        let state = self.store.data_mut();
        state.current = context_id;
        state.effective = context_id;
        state.phase = Phase::Callback;
        state.local_reply_sent = false;
        self.store.set_epoch_deadline(self.deadline_ticks);
        let result = func.call(&mut self.store, params);
        let state = self.store.data_mut();
        state.phase = Phase::Idle;
        state.effective = 0;
        state.current = 0;
        match result {
            Ok(value) => Ok(Some(value)),
            Err(error) => {
                let reason = describe(&error, name, &self.limits);
                let state = self.store.data_mut();
                // The host's own message, not a module log line (Envoy logs it on its own
                // logger, outside the `wasm log` lines filters write).
                tracing::error!(
                    target: "pwx::vm",
                    vm_id = %state.vm.vm_id,
                    "{reason}; the VM is marked failed and receives no more calls"
                );
                state.failed = Some(reason.clone());
                Err(VmFailed { reason })
            }
        }
    }

    /// Starts a plugin on this VM: creates its root context, then `on_context_create(root, 0)`
    /// → `on_vm_start(root, vm_config_size)` → `on_configure(root, plugin_config_size)`.
    /// `false` from either is an error that names the plugin.
    pub fn start_plugin(&mut self, plugin: PluginConfig) -> Result<u32, StartError> {
        if let Some(reason) = self.failure() {
            return Err(StartError::VmFailed(reason.to_string()));
        }
        let name = plugin.name.clone();
        let state = self.store.data_mut();
        let root_id = state.next_context_id;
        state.next_context_id += 1;
        state.contexts.insert(
            root_id,
            Context::Root(RootContext {
                plugin: Arc::new(plugin),
                created: false,
                pending_done: false,
                status: (0, Vec::new()),
            }),
        );
        let failed = |callback: &'static str| {
            let name = name.clone();
            move |e: VmFailed| StartError::Failed {
                plugin: name,
                callback,
                message: e.reason,
            }
        };
        // The C++ host lets the root read its plugin configuration during creation too.
        self.store.data_mut().configuring = Some(root_id);
        let created = self.call(
            "proxy_on_context_create",
            |c| c.on_context_create.as_ref(),
            root_id,
            (root_id as i32, 0),
        );
        self.store.data_mut().configuring = None;
        created.map_err(failed("proxy_on_context_create"))?;
        if let Some(Context::Root(root)) = self.store.data_mut().contexts.get_mut(&root_id) {
            root.created = true;
        }
        let vm_config_size = self.store.data().vm.configuration.len() as i32;
        let started = self.call(
            "proxy_on_vm_start",
            |c| c.on_vm_start.as_ref(),
            root_id,
            (root_id as i32, vm_config_size),
        );
        if started.map_err(failed("proxy_on_vm_start"))? == Some(0) {
            return Err(StartError::VmStartRejected { plugin: name });
        }
        let plugin_config_size = self
            .root_plugin(root_id)
            .map_or(0, |p| p.configuration.len() as i32);
        self.store.data_mut().configuring = Some(root_id);
        let configured = self.call(
            "proxy_on_configure",
            |c| c.on_configure.as_ref(),
            root_id,
            (root_id as i32, plugin_config_size),
        );
        self.store.data_mut().configuring = None;
        if configured.map_err(failed("proxy_on_configure"))? == Some(0) {
            return Err(StartError::ConfigureRejected { plugin: name });
        }
        Ok(root_id)
    }

    /// The plugin of a root context.
    pub fn root_plugin(&self, root_id: u32) -> Option<Arc<PluginConfig>> {
        self.store.data().root(root_id).map(|r| r.plugin.clone())
    }

    /// Calls `proxy_on_tick(root)`.
    pub fn on_tick(&mut self, root_id: u32) -> Result<(), VmFailed> {
        self.call(
            "proxy_on_tick",
            |c| c.on_tick.as_ref(),
            root_id,
            root_id as i32,
        )
        .map(drop)
    }

    /// Shuts a plugin's root context down: `on_done(root)`; true → `on_delete(root)` and the
    /// context is gone (returns true); false → it waits for `proxy_done` (returns false).
    pub fn shutdown_plugin(&mut self, root_id: u32) -> Result<bool, VmFailed> {
        let done = self.call(
            "proxy_on_done",
            |c| c.on_done.as_ref(),
            root_id,
            root_id as i32,
        )?;
        if done == Some(0) {
            if let Some(root) = self.store.data_mut().root_mut(root_id) {
                root.pending_done = true;
            }
            return Ok(false);
        }
        self.delete_root(root_id)?;
        Ok(true)
    }

    /// Calls `on_delete(root)` and forgets the root (after `proxy_done`, or a true `on_done`).
    pub fn delete_root(&mut self, root_id: u32) -> Result<(), VmFailed> {
        let created =
            matches!(self.store.data().contexts.get(&root_id), Some(Context::Root(r)) if r.created);
        let result = if created {
            self.call(
                "proxy_on_delete",
                |c| c.on_delete.as_ref(),
                root_id,
                root_id as i32,
            )
            .map(drop)
        } else {
            Ok(())
        };
        let state = self.store.data_mut();
        state.contexts.remove(&root_id);
        // Envoy cancels a context's callouts with it.
        state
            .grpc_callouts
            .retain(|_, callout| callout.root != root_id);
        result
    }

    /// Creates a host-side stream context under `root_id`; the module hears of it lazily, at the
    /// first callback (Envoy's order). Returns its id.
    pub fn create_stream(
        &mut self,
        root_id: u32,
        info: crate::stream_info::StreamInfo,
    ) -> Option<u32> {
        let state = self.store.data_mut();
        state.root(root_id)?;
        let id = state.next_context_id;
        state.next_context_id += 1;
        let mut stream = StreamContext {
            root_id,
            created: false,
            http: Default::default(),
            net: None,
        };
        stream.http.info = info;
        state.contexts.insert(id, Context::Stream(Box::new(stream)));
        Some(id)
    }

    /// Delivers `proxy_on_context_create(stream, root)` once.
    pub(crate) fn ensure_created(&mut self, context_id: u32) -> Result<bool, VmFailed> {
        let Some(Context::Stream(stream)) = self.store.data().contexts.get(&context_id) else {
            return Ok(false);
        };
        if stream.created {
            return Ok(true);
        }
        let root_id = stream.root_id;
        self.call(
            "proxy_on_context_create",
            |c| c.on_context_create.as_ref(),
            context_id,
            (context_id as i32, root_id as i32),
        )?;
        if let Some(Context::Stream(stream)) = self.store.data_mut().contexts.get_mut(&context_id) {
            stream.created = true;
        }
        Ok(true)
    }

    /// Ends a stream: `on_done` (its result is ignored for streams) then `on_delete`, if the
    /// module ever heard of the stream, and forgets it.
    pub fn finish_stream(&mut self, context_id: u32) -> Result<(), VmFailed> {
        let created = matches!(self.store.data().contexts.get(&context_id), Some(Context::Stream(s)) if s.created);
        let result = if created {
            self.call(
                "proxy_on_done",
                |c| c.on_done.as_ref(),
                context_id,
                context_id as i32,
            )
            .and_then(|_| {
                self.call(
                    "proxy_on_delete",
                    |c| c.on_delete.as_ref(),
                    context_id,
                    context_id as i32,
                )
            })
            .map(drop)
        } else {
            Ok(())
        };
        self.store.data_mut().contexts.remove(&context_id);
        result
    }

    /// Number of live contexts (roots and streams): what a leak test watches.
    pub fn context_count(&self) -> usize {
        self.store.data().contexts.len()
    }

    /// Linear memory size in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.store
            .data()
            .memory
            .map_or(0, |m| m.data_size(&self.store))
    }

    pub(crate) fn abi(&self) -> AbiVersion {
        self.store.data().abi
    }
}

fn lookup_callbacks(
    instance: &Instance,
    store: &mut Store<HostState>,
    module: &Module,
) -> Callbacks {
    let abi = module.abi_version();
    macro_rules! get {
        ($cb:expr, $p:ty, $r:ty) => {
            if module.exports($cb) {
                instance
                    .get_typed_func::<$p, $r>(&mut *store, $cb.name())
                    .ok()
            } else {
                None
            }
        };
    }
    let v1 = abi == AbiVersion::V0_1_0;
    Callbacks {
        on_context_create: get!(Callback::OnContextCreate, (i32, i32), ()),
        on_vm_start: get!(Callback::OnVmStart, (i32, i32), i32),
        on_configure: get!(Callback::OnConfigure, (i32, i32), i32),
        on_tick: get!(Callback::OnTick, i32, ()),
        on_queue_ready: get!(Callback::OnQueueReady, (i32, i32), ()),
        on_request_headers: if v1 {
            None
        } else {
            get!(Callback::OnRequestHeaders, (i32, i32, i32), i32)
        },
        on_request_headers_v1: if v1 {
            get!(Callback::OnRequestHeaders, (i32, i32), i32)
        } else {
            None
        },
        on_request_body: get!(Callback::OnRequestBody, (i32, i32, i32), i32),
        on_request_trailers: get!(Callback::OnRequestTrailers, (i32, i32), i32),
        on_response_headers: if v1 {
            None
        } else {
            get!(Callback::OnResponseHeaders, (i32, i32, i32), i32)
        },
        on_response_headers_v1: if v1 {
            get!(Callback::OnResponseHeaders, (i32, i32), i32)
        } else {
            None
        },
        on_response_body: get!(Callback::OnResponseBody, (i32, i32, i32), i32),
        on_response_trailers: get!(Callback::OnResponseTrailers, (i32, i32), i32),
        on_http_call_response: get!(Callback::OnHttpCallResponse, (i32, i32, i32, i32, i32), ()),
        on_grpc_receive_initial_metadata: get!(
            Callback::OnGrpcReceiveInitialMetadata,
            (i32, i32, i32),
            ()
        ),
        on_grpc_receive: get!(Callback::OnGrpcReceive, (i32, i32, i32), ()),
        on_grpc_receive_trailing_metadata: get!(
            Callback::OnGrpcReceiveTrailingMetadata,
            (i32, i32, i32),
            ()
        ),
        on_grpc_close: get!(Callback::OnGrpcClose, (i32, i32, i32), ()),
        on_new_connection: get!(Callback::OnNewConnection, i32, i32),
        on_downstream_data: get!(Callback::OnDownstreamData, (i32, i32, i32), i32),
        on_upstream_data: get!(Callback::OnUpstreamData, (i32, i32, i32), i32),
        on_downstream_connection_close: get!(Callback::OnDownstreamConnectionClose, (i32, i32), ()),
        on_upstream_connection_close: get!(Callback::OnUpstreamConnectionClose, (i32, i32), ()),
        on_done: get!(Callback::OnDone, i32, i32),
        on_log: get!(Callback::OnLog, i32, ()),
        on_delete: get!(Callback::OnDelete, i32, ()),
    }
}

/// The response to an HTTP callout, as delivered to the module.
#[derive(Clone, Debug, Default)]
pub struct CalloutResponse {
    /// Response headers (`:status` included).
    pub headers: crate::headers::HeaderMap,
    /// Response body.
    pub body: Vec<u8>,
    /// Response trailers.
    pub trailers: crate::headers::HeaderMap,
}

impl Vm {
    /// Delivers `proxy_on_queue_ready(root, token)`.
    pub fn on_queue_ready(&mut self, root_id: u32, token: u32) -> Result<Vec<Deferred>, VmFailed> {
        if self.store.data().root(root_id).is_none() {
            return Ok(Vec::new());
        }
        self.call(
            "proxy_on_queue_ready",
            |c| c.on_queue_ready.as_ref(),
            root_id,
            (root_id as i32, token as i32),
        )?;
        Ok(self.take_deferred())
    }

    /// Delivers `proxy_on_http_call_response(root, token, headers, body, trailers)`. `None` is
    /// a transport failure: Envoy delivers zero headers and sets the root's status to
    /// (BrokenConnection, "reset"). Maps 6/7 and buffer 4 are readable only during the call.
    pub fn on_http_call_response(
        &mut self,
        root_id: u32,
        token: u32,
        response: Option<CalloutResponse>,
    ) -> Result<Vec<Deferred>, VmFailed> {
        let state = self.store.data_mut();
        let Some(root) = state.root_mut(root_id) else {
            // The root is gone: its callouts were cancelled.
            return Ok(Vec::new());
        };
        let response = match response {
            Some(response) => response,
            None => {
                root.status = (pwx_abi::Status::BrokenConnection as u32, b"reset".to_vec());
                CalloutResponse::default()
            }
        };
        let args = (
            root_id as i32,
            token as i32,
            response.headers.len() as i32,
            response.body.len() as i32,
            response.trailers.len() as i32,
        );
        state.callout_maps = Some((response.headers, response.trailers));
        state.call_data = Some(response.body);
        state.call_data_kind = Some(pwx_abi::BufferType::HttpCallResponseBody);
        let result = self.call(
            "proxy_on_http_call_response",
            |c| c.on_http_call_response.as_ref(),
            root_id,
            args,
        );
        let state = self.store.data_mut();
        state.callout_maps = None;
        state.call_data = None;
        state.call_data_kind = None;
        result?;
        Ok(self.take_deferred())
    }
}
