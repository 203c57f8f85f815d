//! A worker: one thread with its own single-threaded runtime, listener socket (SO_REUSEPORT),
//! VM replicas, clusters, timers and callouts. Requests never leave their worker and take no
//! lock: the chain sits in a `RefCell` that is borrowed only for one callback, never across an
//! await.

use crate::chain::{Chain, Filter, Rebuild};
use crate::clusters::ClusterSet;
use crate::config::ClusterConfig;
use crate::dispatch::{Event, QueueRoutes, Waiter};
use crate::stream;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use pwx_host::{Module, PluginConfig, Services, Vm, VmConfig};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::AbortHandle;

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
}

/// One worker's state, shared by the tasks of its `LocalSet`.
pub(crate) struct Worker {
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
}

/// Builds this worker's VM replicas and starts their plugins.
fn build_chain(plan: &WorkerPlan) -> Result<Chain, String> {
    let mut filters = Vec::new();
    for (module, plugin, vm_config) in &plan.filters {
        let mut vm = Vm::new(
            module,
            vm_config.clone(),
            plan.services.clone(),
            &plan.limits,
        )
        .map_err(|e| e.to_string())?;
        let root = vm.start_plugin(plugin.clone()).map_err(|e| e.to_string())?;
        let rebuild = Rebuild {
            module: module.clone(),
            vm_config: vm_config.clone(),
            services: plan.services.clone(),
            limits: plan.limits.clone(),
            backoff: pwx_host::failure::ReloadBackoff::new(plugin.reload_backoff),
        };
        filters.push(Filter {
            vm,
            root,
            plugin: Arc::new(plugin.clone()),
            rebuild,
        });
    }
    Ok(Chain { filters })
}

/// Runs a worker until `shutdown` flips; reports start-up success or failure on `ready`.
pub(crate) fn run(
    index: usize,
    sockets: Vec<std::net::TcpListener>,
    plan: Arc<WorkerPlan>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
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
    let (events, mut inbox) = tokio::sync::mpsc::unbounded_channel();
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let worker = Rc::new(Worker {
            clusters: ClusterSet::new(&plan.clusters),
            plan,
            chain: RefCell::new(chain),
            waiters: RefCell::default(),
            callouts: RefCell::default(),
            grpc_senders: RefCell::default(),
            timers: RefCell::default(),
            events,
        });
        let filters = worker.chain.borrow().filters.len();
        for filter in 0..filters {
            worker.plugin_started(filter);
        }
        tokio::task::spawn_local(publish_states(worker.clone(), index));
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
                worker.clone(),
                listener,
                socket,
            )));
        }
        let _ = ready.send(Ok(()));
        loop {
            tokio::select! {
                Some(event) = inbox.recv() => worker.on_event(event),
                _ = shutdown.changed() => break,
            }
        }
        for task in accepting {
            task.abort();
        }
        worker.shutdown();
    });
}

/// Accepts connections on one listener and serves them (HTTP/1.1, or h2c with prior
/// knowledge; over TLS, what ALPN chose) with that listener's chain.
async fn accept(worker: Rc<Worker>, listener: usize, socket: tokio::net::TcpListener) {
    loop {
        let (stream, peer) = match socket.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        if worker.plan.listeners[listener].tcp.is_some() {
            tokio::task::spawn_local(crate::tcp::serve(worker.clone(), listener, stream, peer));
            continue;
        }
        let _ = stream.set_nodelay(true);
        let local_addr = stream.local_addr().ok();
        let worker = worker.clone();
        let tls = worker.plan.listeners[listener].tls.clone();
        tokio::task::spawn_local(async move {
            let connection = Connection {
                worker,
                listener,
                peer,
                local_addr,
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
    worker: Rc<Worker>,
    listener: usize,
    peer: std::net::SocketAddr,
    local_addr: Option<std::net::SocketAddr>,
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
            worker,
            listener,
            peer,
            local_addr,
        } = self;
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
            stream::handle(worker.clone(), listener, request, peer, local_addr)
        });
        if let Err(e) = builder.serve_connection(io, service).await {
            tracing::debug!(error = %e, %peer, "connection ended with an error");
        }
    }
}

/// Publishes this worker's VM states for the admin endpoint, once a second.
async fn publish_states(worker: Rc<Worker>, index: usize) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        let states = worker
            .chain
            .borrow()
            .filters
            .iter()
            .map(|f| crate::admin::VmState {
                plugin: f.plugin.name.clone(),
                vm_id: f.rebuild.vm_config.vm_id.clone(),
                instance: f.vm.instance_id(),
                failed: f.vm.failure().map(str::to_string),
                contexts: f.vm.context_count(),
                memory_bytes: f.vm.memory_bytes(),
            })
            .collect();
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
