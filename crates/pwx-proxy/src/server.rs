//! Starting and stopping a proxy: load and check every module, validate each plugin on a
//! throwaway VM (Envoy's canary), bind each listener once per worker, start the workers and,
//! for bootstrap services, one more thread without listeners.

use crate::config::{FilterConfig, ProxyConfig};
use crate::dispatch::Event;
use crate::dispatch::QueueRoutes;
use crate::reload::ReloadState;
use crate::routes::RouteAction;
use crate::worker::{self, Control, ListenerPlan, WorkerPlan};
use pwx_host::{Engine, Services, Vm};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A running proxy.
pub struct Proxy {
    addrs: Vec<SocketAddr>,
    admin: Option<crate::admin::Admin>,
    control: tokio::sync::watch::Sender<Control>,
    /// Each thread, and where it is told that its turn to shut its plugins down has come
    /// (listener workers first, the services thread last, one at a time, as Envoy's workers
    /// finish before its main thread).
    workers: Vec<(
        std::thread::JoinHandle<()>,
        tokio::sync::oneshot::Sender<()>,
    )>,
    /// What a reload must keep and where it posts the next generation.
    pub(crate) running: Running,
    pub(crate) state: Arc<ReloadState>,
    reload_requests: Option<tokio::sync::mpsc::UnboundedReceiver<crate::reload::ReloadRequest>>,
}

/// The parts of a running proxy a reload works with.
pub(crate) struct Running {
    /// The configured listener addresses (as configured: port 0 stays 0) and admin address.
    pub(crate) listen: Vec<SocketAddr>,
    pub(crate) admin: Option<SocketAddr>,
    pub(crate) workers: usize,
    /// Whether a services thread runs (bootstrap services or main-thread plugin replicas).
    pub(crate) services_thread: bool,
    /// Each listener worker's inbox, then the services thread's (if any).
    pub(crate) inboxes: Vec<tokio::sync::mpsc::UnboundedSender<Event>>,
    pub(crate) services: Arc<Services>,
    pub(crate) queue_routes: Arc<QueueRoutes>,
    pub(crate) vm_states: Arc<crate::admin::VmStates>,
}

/// Why a proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A module failed to load.
    #[error("filter {source_name}: {error}")]
    Load {
        /// Where the module came from.
        source_name: String,
        /// Why.
        error: Box<pwx_host::LoadError>,
    },
    /// A plugin was rejected when started on a canary VM.
    #[error("filter {source_name}: {error}")]
    Start {
        /// Where the module came from.
        source_name: String,
        /// Why.
        error: Box<pwx_host::StartError>,
    },
    /// The listener could not be bound.
    #[error(
        "cannot listen on {addr}: {error}; pick another address (--listen, or the listener's address in the configuration file)"
    )]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// The configuration names something that does not exist.
    #[error("{0}")]
    Config(String),
    /// The admin endpoint could not be started.
    #[error("cannot serve the admin endpoint on {addr}: {error}")]
    Admin {
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// A reload was refused or failed; the previous configuration keeps serving.
    #[error("reload failed: {0}")]
    Reload(String),
    /// A worker failed to start.
    #[error("worker {index} failed to start: {message}")]
    Worker {
        /// Which worker.
        index: usize,
        /// Why.
        message: String,
    },
}

/// Fails with `AddrInUse` when another socket holds `addr`. SO_REUSEPORT would otherwise let
/// a second process (another pwx, an Envoy) share the port silently and split its traffic.
fn check_free(addr: SocketAddr) -> std::io::Result<()> {
    if addr.port() == 0 {
        return Ok(());
    }
    let probe = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    // SO_REUSEADDR alone still refuses a listening socket, but not a closed one in TIME_WAIT.
    probe.set_reuse_address(true)?;
    probe.bind(&addr.into())
}

fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    // Every worker binds its own socket to the same port; the kernel spreads connections.
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Loads a filter's module and starts its plugin on a throwaway VM (Envoy's canary), so a bad
/// module or configuration is refused before any traffic.
pub(crate) fn load_and_check(
    filter: &FilterConfig,
    engine: &Engine,
    services: &Arc<Services>,
    limits: &pwx_host::Limits,
) -> Result<(pwx_host::Module, pwx_host::PluginConfig, pwx_host::VmConfig), ProxyError> {
    let module = engine
        .load(&filter.wasm)
        .map_err(|error| ProxyError::Load {
            source_name: filter.source.clone(),
            error: Box::new(error),
        })?;
    let start_error = |error| ProxyError::Start {
        source_name: filter.source.clone(),
        error: Box::new(error),
    };
    let mut canary =
        Vm::new(&module, filter.vm.clone(), services.clone(), limits).map_err(start_error)?;
    canary
        .start_plugin(filter.plugin.clone())
        .map_err(start_error)?;
    Ok((module, filter.plugin.clone(), filter.vm.clone()))
}

/// Checks that every cluster a route names exists.
pub(crate) fn check_routes(config: &ProxyConfig) -> Result<(), ProxyError> {
    for listener in &config.listeners {
        if let Some(tcp) = &listener.tcp
            && !config.clusters.iter().any(|c| c.name == tcp.cluster)
        {
            return Err(ProxyError::Config(format!(
                "listener {:?}: tcp_proxy names cluster {:?}, which is not defined",
                listener.name, tcp.cluster
            )));
        }
        for host in &listener.virtual_hosts {
            for route in &host.routes {
                if let RouteAction::Cluster { cluster, .. } = &route.action
                    && !config.clusters.iter().any(|c| &c.name == cluster)
                {
                    return Err(ProxyError::Config(format!(
                        "listener {:?}: a route names cluster {cluster:?}, which is not defined",
                        listener.name
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Starts one worker thread and waits until it serves.
pub(crate) fn spawn_worker(
    index: usize,
    name: String,
    sockets: Vec<std::net::TcpListener>,
    plan: Arc<WorkerPlan>,
    watch: tokio::sync::watch::Receiver<Control>,
    inboxes: &mut Vec<tokio::sync::mpsc::UnboundedSender<Event>>,
) -> Result<
    (
        std::thread::JoinHandle<()>,
        tokio::sync::oneshot::Sender<()>,
    ),
    ProxyError,
> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (events, inbox) = tokio::sync::mpsc::unbounded_channel();
    let (turn, my_turn) = tokio::sync::oneshot::channel();
    inboxes.push(events.clone());
    let handle = std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            worker::run(
                index,
                sockets,
                plan,
                ready_tx,
                (events, inbox),
                (watch, my_turn),
            )
        })
        .map_err(|e| ProxyError::Worker {
            index,
            message: e.to_string(),
        })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok((handle, turn)),
        Ok(Err(message)) => Err(ProxyError::Worker { index, message }),
        Err(_) => Err(ProxyError::Worker {
            index,
            message: "the worker thread exited".into(),
        }),
    }
}

impl Proxy {
    /// Starts a proxy; returns once every worker is serving.
    pub fn start(
        config: ProxyConfig,
        engine: &Engine,
        services: Arc<Services>,
    ) -> Result<Proxy, ProxyError> {
        check_routes(&config)?;
        // Queue notifications go to the worker that owns the consuming VM.
        let queue_routes = Arc::new(QueueRoutes::default());
        let routes = queue_routes.clone();
        services
            .queues
            .set_notifier(Arc::new(move |consumer, token| {
                routes.notify(consumer.vm_instance, consumer.root_context_id, token)
            }));
        let vm_states: Arc<crate::admin::VmStates> = Arc::default();
        let (worker_plan, services_plan) =
            plans(&config, engine, &services, &queue_routes, &vm_states)?;

        // Bind each listener once to learn its port, then once more per further worker.
        let mut first_sockets = Vec::new();
        let mut addrs = Vec::new();
        for listener in &config.listeners {
            let listen_error = |error| ProxyError::Listen {
                addr: listener.address,
                error,
            };
            check_free(listener.address).map_err(listen_error)?;
            let socket = bind(listener.address).map_err(listen_error)?;
            addrs.push(socket.local_addr().map_err(listen_error)?);
            first_sockets.push(socket);
        }
        let (control, watch) = tokio::sync::watch::channel(Control::Run);
        let mut workers = Vec::new();
        let mut inboxes = Vec::new();
        let mut services_inbox = Vec::new();
        let services_thread = !services_plan.filters.is_empty();
        if services_thread {
            // Envoy runs singleton services on its main thread: one VM each, for the process.
            workers.push(spawn_worker(
                usize::MAX,
                "pwx-services".into(),
                Vec::new(),
                services_plan,
                watch.clone(),
                &mut services_inbox,
            )?);
        }
        let mut first = Some(first_sockets);
        for index in 0..config.workers.max(1) {
            let sockets = match first.take() {
                Some(sockets) => sockets,
                None => addrs
                    .iter()
                    .map(|&addr| bind(addr).map_err(|error| ProxyError::Listen { addr, error }))
                    .collect::<Result<_, _>>()?,
            };
            workers.push(spawn_worker(
                index,
                format!("pwx-worker-{index}"),
                sockets,
                worker_plan.clone(),
                watch.clone(),
                &mut inboxes,
            )?);
        }
        inboxes.extend(services_inbox);
        if services_thread {
            // The services thread plays Envoy's main thread: it shuts down last.
            workers.rotate_left(1);
        }
        let state = Arc::new(ReloadState::new(worker_plan));
        let (reload_tx, reload_rx) = tokio::sync::mpsc::unbounded_channel();
        let admin = match config.admin {
            Some(admin_addr) => Some(
                crate::admin::Admin::start(
                    admin_addr,
                    addrs.clone(),
                    services.clone(),
                    state.clone(),
                    reload_tx,
                )
                .map_err(|error| ProxyError::Admin {
                    addr: admin_addr,
                    error,
                })?,
            ),
            None => None,
        };
        Ok(Proxy {
            addrs,
            admin,
            control,
            workers,
            running: Running {
                listen: config.listeners.iter().map(|l| l.address).collect(),
                admin: config.admin,
                workers: config.workers.max(1),
                services_thread,
                inboxes,
                services,
                queue_routes,
                vm_states,
            },
            state,
            reload_requests: Some(reload_rx),
        })
    }

    /// Requests for a reload posted to the admin endpoint (`POST /reload`), for whoever can
    /// build the new configuration (the CLI); `None` after the first call. Without a taker,
    /// the admin endpoint answers that reloading is not available.
    pub fn reload_requests(
        &mut self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<crate::reload::ReloadRequest>> {
        self.reload_requests.take()
    }

    /// The address of the first listener (`None` for a proxy that only runs services).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addrs.first().copied()
    }

    /// The address of every listener, in configuration order.
    pub fn listener_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The admin endpoint's address, if it serves one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.local_addr())
    }

    /// Stops now: open connections are closed, plugins shut down, workers joined.
    pub fn shutdown(self) {
        self.stop(Control::Stop);
    }

    /// Graceful drain: stops accepting, lets open connections finish their current request
    /// (HTTP/1 closes after its response, HTTP/2 gets GOAWAY) for up to `timeout`, then stops
    /// as `shutdown` does.
    pub fn drain(self, timeout: Duration) {
        self.stop(Control::Drain(std::time::Instant::now() + timeout));
    }

    fn stop(self, how: Control) {
        if let Some(admin) = self.admin {
            admin.stop();
        }
        let _ = self.control.send(how);
        for (worker, turn) in self.workers {
            let _ = turn.send(());
            let _ = worker.join();
        }
    }
}

/// The plans of a configuration: what every listener worker builds itself from, and what the
/// services thread runs (bootstrap services, and the listeners' plugins once more when they
/// have main-thread replicas). Every module is loaded and every plugin canary-started here.
pub(crate) fn plans(
    config: &ProxyConfig,
    engine: &Engine,
    services: &Arc<Services>,
    queue_routes: &Arc<QueueRoutes>,
    vm_states: &Arc<crate::admin::VmStates>,
) -> Result<(Arc<WorkerPlan>, Arc<WorkerPlan>), ProxyError> {
    let plan = |filters, listeners| {
        Arc::new(WorkerPlan {
            filters,
            listeners,
            services: services.clone(),
            limits: config.limits.clone(),
            clusters: config.clusters.clone(),
            queue_routes: queue_routes.clone(),
            vm_states: vm_states.clone(),
            embedded: None,
        })
    };
    // Every listener's filters go into one list; a listener names its filters by index.
    let mut filters = Vec::new();
    let mut listener_plans = Vec::new();
    for listener in &config.listeners {
        let mut indices = Vec::new();
        for filter in &listener.filters {
            indices.push(filters.len());
            filters.push(load_and_check(filter, engine, services, &config.limits)?);
        }
        listener_plans.push(ListenerPlan {
            name: listener.name.clone(),
            filters: indices,
            virtual_hosts: listener.virtual_hosts.clone(),
            stream_idle_timeout: listener.stream_idle_timeout,
            suppress_envoy_headers: listener.suppress_envoy_headers,
            tls: listener.tls.clone(),
            tcp: listener.tcp.clone(),
        });
    }
    let mut service_filters = Vec::new();
    for service in &config.services {
        service_filters.push(load_and_check(service, engine, services, &config.limits)?);
    }
    if config.main_thread_plugins {
        service_filters.extend(filters.iter().cloned());
    }
    Ok((
        plan(filters, listener_plans),
        plan(service_filters, Vec::new()),
    ))
}
