//! Starting and stopping a proxy: load and check every module, validate each plugin on a
//! throwaway VM (Envoy's canary), bind each listener once per worker, start the workers and,
//! for bootstrap services, one more thread without listeners.

use crate::config::{FilterConfig, ProxyConfig};
use crate::dispatch::QueueRoutes;
use crate::routes::RouteAction;
use crate::worker::{self, ListenerPlan, WorkerPlan};
use pwx_host::{Engine, Services, Vm};
use std::net::SocketAddr;
use std::sync::Arc;

/// A running proxy.
pub struct Proxy {
    addrs: Vec<SocketAddr>,
    admin: Option<crate::admin::Admin>,
    shutdown: tokio::sync::watch::Sender<bool>,
    workers: Vec<std::thread::JoinHandle<()>>,
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
    #[error("cannot listen on {addr}: {error}; pick another address with --listen")]
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
    /// A worker failed to start.
    #[error("worker {index} failed to start: {message}")]
    Worker {
        /// Which worker.
        index: usize,
        /// Why.
        message: String,
    },
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
fn check_routes(config: &ProxyConfig) -> Result<(), ProxyError> {
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
    watch: tokio::sync::watch::Receiver<bool>,
) -> Result<std::thread::JoinHandle<()>, ProxyError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name(name)
        .spawn(move || worker::run(index, sockets, plan, ready_tx, watch))
        .map_err(|e| ProxyError::Worker {
            index,
            message: e.to_string(),
        })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(handle),
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
                filters.push(load_and_check(filter, engine, &services, &config.limits)?);
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
            service_filters.push(load_and_check(service, engine, &services, &config.limits)?);
        }
        if config.main_thread_plugins {
            service_filters.extend(filters.iter().cloned());
        }

        // Bind each listener once to learn its port, then once more per further worker.
        let mut first_sockets = Vec::new();
        let mut addrs = Vec::new();
        for listener in &config.listeners {
            let listen_error = |error| ProxyError::Listen {
                addr: listener.address,
                error,
            };
            let socket = bind(listener.address).map_err(listen_error)?;
            addrs.push(socket.local_addr().map_err(listen_error)?);
            first_sockets.push(socket);
        }
        let worker_plan = plan(filters, listener_plans);
        let (shutdown, watch) = tokio::sync::watch::channel(false);
        let mut workers = Vec::new();
        if !service_filters.is_empty() {
            // Envoy runs singleton services on its main thread: one VM each, for the process.
            workers.push(spawn_worker(
                usize::MAX,
                "pwx-services".into(),
                Vec::new(),
                plan(service_filters, Vec::new()),
                watch.clone(),
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
            )?);
        }
        let admin = match config.admin {
            Some(admin_addr) => Some(
                crate::admin::Admin::start(admin_addr, addrs.clone(), services, worker_plan)
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
            shutdown,
            workers,
        })
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

    /// Stops accepting, lets the workers finish and joins them.
    pub fn shutdown(self) {
        if let Some(admin) = self.admin {
            admin.stop();
        }
        let _ = self.shutdown.send(true);
        for worker in self.workers {
            let _ = worker.join();
        }
    }
}
