//! A worker: one thread with its own single-threaded runtime, listener socket (SO_REUSEPORT),
//! VM replicas, clusters, timers and callouts. Requests never leave their worker and take no
//! lock: the chain sits in a `RefCell` that is borrowed only for one callback, never across an
//! await.
//!
//! What a thread serves with is a *generation* (`Worker`): one configuration's VMs, clusters
//! and routes. A reload builds the next generation on every thread first (`Event::Prepare`),
//! then switches them all (`Event::Commit`): new streams use the new generation while streams
//! already running finish on theirs, which shuts its plugins down when its last stream ends.

use crate::chain::{Chain, Filter, Rebuild};
use crate::clusters::ClusterSet;
use crate::config::ClusterConfig;
use crate::dispatch::{Event, QueueRoutes, Waiter};
use crate::stream;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use pwx_host::{Module, PluginConfig, Services, Vm, VmConfig};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// A listener as workers serve it: which of the worker's filters form its chain, and its
/// route table.
pub(crate) struct ListenerPlan {
    pub(crate) name: String,
    pub(crate) filters: Vec<usize>,
    pub(crate) virtual_hosts: Vec<crate::routes::VirtualHost>,
    pub(crate) stream_idle_timeout: Duration,
    pub(crate) suppress_envoy_headers: bool,
    /// TLS termination; its requests see `https` as `:scheme`.
    pub(crate) tls: Option<crate::tls::ServerTls>,
    /// A TCP listener's tcp_proxy (its connections are served by `tcp.rs`).
    pub(crate) tcp: Option<crate::tcp::TcpProxyConfig>,
}

/// What every worker builds itself from.
pub(crate) struct WorkerPlan {
    /// Every filter of every listener (a listener's chain names them by index).
    pub(crate) filters: Vec<(Module, PluginConfig, VmConfig)>,
    pub(crate) listeners: Vec<ListenerPlan>,
    pub(crate) services: Arc<Services>,
    pub(crate) limits: pwx_host::Limits,
    pub(crate) clusters: Vec<ClusterConfig>,
    pub(crate) queue_routes: Arc<QueueRoutes>,
    pub(crate) vm_states: Arc<crate::admin::VmStates>,
    /// Requests handed over by the embedded tower layer (`None` for `pwx run`'s workers).
    pub(crate) embedded: Option<crate::layer::Feed>,
}

/// One generation of a worker's state (one configuration), shared by the tasks of its
/// `LocalSet` that use it.
pub(crate) struct Worker {
    /// Which configuration this is: 0 at start, one more per reload.
    pub(crate) generation: u64,
    pub(crate) plan: Arc<WorkerPlan>,
    pub(crate) chain: RefCell<Chain>,
    pub(crate) clusters: ClusterSet,
    /// Streams paused in a filter, by (filter index, context id).
    /// Two inserts/removes per stream and filter: hashed with Fx (keys are our own ids).
    pub(crate) waiters: RefCell<rustc_hash::FxHashMap<(usize, u32), Waiter>>,
    /// Callouts in flight, by (filter index, token): the owning root and the task.
    pub(crate) callouts: RefCell<HashMap<(usize, u32), (u32, AbortHandle)>>,
    /// Request bodies of open gRPC streams, by (filter index, token).
    pub(crate) grpc_senders:
        RefCell<HashMap<(usize, u32), tokio::sync::mpsc::UnboundedSender<bytes::Bytes>>>,
    /// Tick timers, by (filter index, root context id).
    pub(crate) timers: RefCell<HashMap<(usize, u32), AbortHandle>>,
    /// Where other threads post events for this worker (queue notifications).
    pub(crate) events: tokio::sync::mpsc::UnboundedSender<Event>,
    /// Streams and TCP connections running on this generation.
    active: Cell<usize>,
    /// A newer generation serves new streams: shut down when the last active one ends.
    retired: Cell<bool>,
    /// The plugins were shut down (once).
    shut_down: Cell<bool>,
}

/// A stream or connection running on a generation; the last one of a retired generation
/// shuts it down.
pub(crate) struct Active(Rc<Worker>);

impl Drop for Active {
    fn drop(&mut self) {
        let worker = &self.0;
        worker.active.set(worker.active.get() - 1);
        if worker.retired.get() && worker.active.get() == 0 {
            // Not from inside a drop: the stream's own contexts may still be closing.
            let worker = worker.clone();
            tokio::task::spawn_local(async move { worker.finish() });
        }
    }
}

impl Worker {
    fn new(
        generation: u64,
        plan: Arc<WorkerPlan>,
        chain: Chain,
        events: tokio::sync::mpsc::UnboundedSender<Event>,
    ) -> Rc<Worker> {
        let worker = Rc::new(Worker {
            generation,
            clusters: ClusterSet::new(&plan.clusters),
            plan,
            chain: RefCell::new(chain),
            waiters: RefCell::default(),
            callouts: RefCell::default(),
            grpc_senders: RefCell::default(),
            timers: RefCell::default(),
            events,
            active: Cell::new(0),
            retired: Cell::new(false),
            shut_down: Cell::new(false),
        });
        let filters = worker.chain.borrow().filters.len();
        for filter in 0..filters {
            worker.plugin_started(filter);
        }
        worker
    }

    /// Counts a stream or connection as running on this generation until the guard drops.
    pub(crate) fn enter(self: &Rc<Self>) -> Active {
        self.active.set(self.active.get() + 1);
        Active(self.clone())
    }

    /// The plugins of this generation were shut down: its VMs take no more events.
    pub(crate) fn shut_down(&self) -> bool {
        self.shut_down.get()
    }

    /// A newer generation took over: shut down now if nothing runs here, else when the last
    /// stream ends.
    fn retire(self: &Rc<Self>) {
        self.retired.set(true);
        if self.active.get() == 0 {
            self.finish();
        }
    }

    /// Shuts the plugins down once (`on_done`, `on_delete`; timers and callouts cancelled).
    fn finish(self: &Rc<Self>) {
        if !self.shut_down.replace(true) {
            tracing::debug!(generation = self.generation, "generation shut down");
            self.shutdown();
        }
    }
}

/// Builds this worker's VM replicas and starts their plugins. Plugins with the same `vm_id`,
/// module and VM configuration share one VM, as Envoy shares them per thread.
fn build_chain(plan: &WorkerPlan) -> Result<Chain, String> {
    let mut filters: Vec<Filter> = Vec::new();
    let mut vms: Vec<Vm> = Vec::new();
    for (module, plugin, vm_config) in &plan.filters {
        let same_vm = |f: &Filter| {
            f.rebuild.module.sha256() == module.sha256()
                && f.rebuild.vm_config.vm_id == vm_config.vm_id
                && f.rebuild.vm_config.configuration == vm_config.configuration
                && f.rebuild.vm_config.environment == vm_config.environment
        };
        let vm_index = match filters.iter().find(|f| same_vm(f)) {
            Some(shared) => shared.vm,
            None => {
                let vm = Vm::new(
                    module,
                    vm_config.clone(),
                    plan.services.clone(),
                    &plan.limits,
                )
                .map_err(|e| e.to_string())?;
                vms.push(vm);
                vms.len() - 1
            }
        };
        let root = vms[vm_index]
            .start_plugin(plugin.clone())
            .map_err(|e| e.to_string())?;
        let rebuild = Rebuild {
            module: module.clone(),
            vm_config: vm_config.clone(),
            services: plan.services.clone(),
            limits: plan.limits.clone(),
            backoff: pwx_host::failure::ReloadBackoff::new(plugin.reload_backoff),
        };
        filters.push(Filter {
            vm: vm_index,
            root,
            plugin: Arc::new(plugin.clone()),
            rebuild,
        });
    }
    Ok(Chain { vms, filters })
}

/// The next downstream connection id (`connection.id`), unique in the process.
pub(crate) fn next_connection_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A downstream connection's id, carried to its requests as an extension.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnectionId(pub(crate) u64);

/// How a running proxy asks its workers to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Control {
    Run,
    /// Stop accepting, let open connections finish (HTTP/1 after their current response,
    /// HTTP/2 after GOAWAY) until the deadline, then stop.
    Drain(std::time::Instant),
    /// Stop now.
    Stop,
}

/// What one worker thread shares between its accept loops, connections and event loop.
pub(crate) struct Thread {
    index: usize,
    /// The generation new streams use.
    current: RefCell<Rc<Worker>>,
    /// A generation built by `Event::Prepare`, waiting for `Commit` or `Abort`.
    pending: RefCell<Option<Rc<Worker>>>,
    /// Older generations that may still run streams (queue events may still be theirs).
    retired: RefCell<Vec<Weak<Worker>>>,
    /// Downstream connections open on this thread.
    connections: Cell<usize>,
    /// Signalled when `connections` drops to zero.
    idle: tokio::sync::Notify,
    /// `true` once the proxy drains: connections finish their current exchange and close.
    draining: tokio::sync::watch::Sender<bool>,
}

impl Thread {
    /// The generation new streams use.
    pub(crate) fn current(&self) -> Rc<Worker> {
        self.current.borrow().clone()
    }

    /// Counts a downstream connection until the guard drops.
    pub(crate) fn connection(self: &Rc<Self>) -> OpenConnection {
        self.connections.set(self.connections.get() + 1);
        OpenConnection(self.clone())
    }

    /// Every generation that may own a VM: the current one first.
    fn live(&self) -> Vec<Rc<Worker>> {
        let mut live = vec![self.current()];
        self.retired.borrow_mut().retain(|w| w.strong_count() > 0);
        live.extend(self.retired.borrow().iter().filter_map(Weak::upgrade));
        live
    }

    fn on_event(&self, event: Event) {
        match event {
            Event::QueueReady {
                vm_instance,
                root,
                token,
            } => {
                // VM instance ids are unique in the process: only the owner acts.
                for worker in self.live() {
                    worker.on_queue_ready(vm_instance, root, token);
                }
            }
            Event::Prepare {
                generation,
                plan,
                reply,
            } => {
                let events = self.current().events.clone();
                let result = build_chain(&plan).map(|chain| {
                    // A pending generation that never committed is replaced.
                    if let Some(stale) = self.pending.borrow_mut().take() {
                        stale.finish();
                    }
                    *self.pending.borrow_mut() = Some(Worker::new(generation, plan, chain, events));
                });
                let _ = reply.send(result.map_err(|e| format!("worker {}: {e}", self.label())));
            }
            Event::Commit { generation } => {
                let pending = self.pending.borrow_mut().take();
                match pending {
                    Some(next) if next.generation == generation => {
                        let old = std::mem::replace(&mut *self.current.borrow_mut(), next);
                        self.retired.borrow_mut().push(Rc::downgrade(&old));
                        old.retire();
                    }
                    other => *self.pending.borrow_mut() = other,
                }
            }
            Event::Abort { generation } => {
                let pending = self.pending.borrow_mut().take();
                match pending {
                    Some(stale) if stale.generation == generation => stale.finish(),
                    other => *self.pending.borrow_mut() = other,
                }
            }
        }
    }

    fn label(&self) -> String {
        if self.index == usize::MAX {
            "services".into()
        } else {
            self.index.to_string()
        }
    }

    /// Shuts down every generation still alive on this thread.
    fn finish(&self) {
        if let Some(pending) = self.pending.borrow_mut().take() {
            pending.finish();
        }
        for worker in self.live() {
            worker.finish();
        }
    }
}

/// A downstream connection open on a thread.
pub(crate) struct OpenConnection(Rc<Thread>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        let thread = &self.0;
        thread.connections.set(thread.connections.get() - 1);
        if thread.connections.get() == 0 {
            thread.idle.notify_waiters();
        }
    }
}

/// Runs a worker until `control` says stop (or drain, then stop); reports start-up success
/// or failure on `ready`.
pub(crate) fn run(
    index: usize,
    sockets: Vec<std::net::TcpListener>,
    plan: Arc<WorkerPlan>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
    (events, mut inbox): (
        tokio::sync::mpsc::UnboundedSender<Event>,
        tokio::sync::mpsc::UnboundedReceiver<Event>,
    ),
    (mut control, turn): (
        tokio::sync::watch::Receiver<Control>,
        tokio::sync::oneshot::Receiver<()>,
    ),
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = ready.send(Err(format!("starting the worker runtime: {e}")));
            return;
        }
    };
    let chain = match build_chain(&plan) {
        Ok(chain) => chain,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let thread = Rc::new(Thread {
            index,
            current: RefCell::new(Worker::new(0, plan, chain, events)),
            pending: RefCell::default(),
            retired: RefCell::default(),
            connections: Cell::new(0),
            idle: tokio::sync::Notify::new(),
            draining: tokio::sync::watch::channel(false).0,
        });
        tokio::task::spawn_local(publish_states(thread.clone(), index));
        let mut accepting = Vec::new();
        for (listener, socket) in sockets.into_iter().enumerate() {
            let socket = match socket
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpListener::from_std(socket))
            {
                Ok(socket) => socket,
                Err(e) => {
                    let _ = ready.send(Err(format!("listening: {e}")));
                    return;
                }
            };
            accepting.push(tokio::task::spawn_local(accept(
                thread.clone(),
                listener,
                socket,
            )));
        }
        let embedded = thread.current().plan.embedded.clone();
        if let Some(feed) = embedded {
            // The layer's requests: its chain is never reloaded, so its first generation serves.
            accepting.push(tokio::task::spawn_local(feed.serve(index, thread.current())));
        }
        let _ = ready.send(Ok(()));
        let mut drain_until: Option<Instant> = None;
        loop {
            let drained = async {
                match drain_until {
                    Some(deadline) if thread.connections.get() > 0 => {
                        let idle = thread.idle.notified();
                        tokio::select! {
                            () = idle => {}
                            () = tokio::time::sleep_until(deadline) => {}
                        }
                    }
                    Some(_) => {}
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                changed = control.changed() => {
                    let now = *control.borrow_and_update();
                    match (changed, now) {
                        (Ok(()), Control::Run) => {}
                        (Ok(()), Control::Drain(deadline)) => {
                            for task in accepting.drain(..) {
                                task.abort();
                            }
                            let _ = thread.draining.send(true);
                            drain_until = Some(Instant::from_std(deadline));
                        }
                        (Ok(()), Control::Stop) | (Err(_), _) => break,
                    }
                }
                Some(event) = inbox.recv() => thread.on_event(event),
                () = drained => {
                    let open = thread.connections.get();
                    if open > 0 {
                        tracing::warn!(worker = %thread.label(), connections = open, "drain timeout: closing the connections still open");
                    }
                    break;
                }
            }
        }
        for task in accepting {
            task.abort();
        }
        // Threads shut their plugins down one after the other, in the order the proxy says.
        let _ = turn.await;
        thread.finish();
    });
}

/// Accepts connections on one listener and serves them (HTTP/1.1, or h2c with prior
/// knowledge; over TLS, what ALPN chose) with that listener's chain in the current generation.
async fn accept(thread: Rc<Thread>, listener: usize, socket: tokio::net::TcpListener) {
    loop {
        let (stream, peer) = match socket.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let open = thread.connection();
        let worker = thread.current();
        if worker.plan.listeners[listener].tcp.is_some() {
            tokio::task::spawn_local(async move {
                crate::tcp::serve(worker, listener, stream, peer).await;
                drop(open);
            });
            continue;
        }
        let _ = stream.set_nodelay(true);
        let local_addr = stream.local_addr().ok();
        let tls = worker.plan.listeners[listener].tls.clone();
        let thread = thread.clone();
        tokio::task::spawn_local(async move {
            let connection = Connection {
                thread,
                listener,
                peer,
                local_addr,
                _open: open,
            };
            match tls {
                None => connection.serve(TokioIo::new(stream), None).await,
                Some(tls) => {
                    if let Some((stream, facts)) = crate::tls::handshake(&tls, stream, peer).await {
                        connection.serve(TokioIo::new(stream), Some(facts)).await;
                    }
                }
            }
        });
    }
}

/// One accepted downstream connection.
struct Connection {
    thread: Rc<Thread>,
    listener: usize,
    peer: std::net::SocketAddr,
    local_addr: Option<std::net::SocketAddr>,
    _open: OpenConnection,
}

impl Connection {
    /// Serves HTTP on `io`. Over TLS, ALPN decides the protocol (`h2`, `http/1.1`; none:
    /// detected from the first bytes, as without TLS) and every request carries the
    /// handshake's facts.
    async fn serve<I>(self, io: I, tls: Option<crate::tls::DownstreamTls>)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    {
        let Connection {
            thread,
            listener,
            peer,
            local_addr,
            _open,
        } = self;
        let mut draining = thread.draining.subscribe();
        let id = ConnectionId(next_connection_id());
        let mut builder = hyper_util::server::conn::auto::Builder::new(LocalExec);
        match tls.as_ref().and_then(|t| t.alpn.as_deref()) {
            Some(b"h2") => builder = builder.http2_only(),
            Some(b"http/1.1") => builder = builder.http1_only(),
            _ => {}
        }
        let service = service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
            if let Some(tls) = &tls {
                request.extensions_mut().insert(tls.clone());
            }
            request.extensions_mut().insert(id);
            // Each request takes the generation current when it arrives: after a reload, the
            // next request on a kept-alive connection already runs on the new VMs.
            stream::handle(thread.current(), listener, request, peer, local_addr)
        });
        let connection = builder.serve_connection(io, service);
        tokio::pin!(connection);
        let result = tokio::select! {
            result = connection.as_mut() => result,
            Ok(_) = draining.wait_for(|d| *d) => {
                // HTTP/1: close after the response in progress (or now, if idle);
                // HTTP/2: GOAWAY, then finish the open streams.
                connection.as_mut().graceful_shutdown();
                connection.as_mut().await
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, %peer, "connection ended with an error");
        }
    }
}

/// Publishes this worker's VM states (of the current generation) for the admin endpoint, once
/// a second.
async fn publish_states(thread: Rc<Thread>, index: usize) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        let worker = thread.current();
        let chain = worker.chain.borrow();
        let states = chain
            .filters
            .iter()
            .map(|f| crate::admin::VmState {
                plugin: f.plugin.name.clone(),
                vm_id: f.rebuild.vm_config.vm_id.clone(),
                instance: chain.vms[f.vm].instance_id(),
                failed: chain.vms[f.vm].failure().map(str::to_string),
                contexts: chain.vms[f.vm].context_count(),
                memory_bytes: chain.vms[f.vm].memory_bytes(),
                generation: worker.generation,
            })
            .collect();
        drop(chain);
        worker.plan.vm_states.publish(index, states);
    }
}

/// Runs hyper's background tasks (HTTP/2 streams) on this worker's `LocalSet`: they hold the
/// worker's `Rc`s and must not leave its thread.
#[derive(Clone, Copy)]
struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: std::future::Future + 'static,
{
    fn execute(&self, future: F) {
        tokio::task::spawn_local(future);
    }
}
