//! Starting and stopping a proxy: load and check every module, validate each plugin on a
//! throwaway VM (Envoy's canary), bind the listener once per worker, start the workers.

use crate::config::{ProxyConfig, UpstreamConfig};
use crate::dispatch::QueueRoutes;
use crate::worker::{self, WorkerPlan};
use pwx_host::{Engine, Services, Vm};
use std::net::SocketAddr;
use std::sync::Arc;

/// A running proxy.
pub struct Proxy {
    addr: SocketAddr,
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

impl Proxy {
    /// Starts a proxy; returns once every worker is serving.
    pub fn start(
        config: ProxyConfig,
        engine: &Engine,
        services: Arc<Services>,
    ) -> Result<Proxy, ProxyError> {
        if let UpstreamConfig::Cluster(name) = &config.upstream
            && !config.clusters.iter().any(|c| &c.name == name)
        {
            return Err(ProxyError::Config(format!(
                "the upstream names cluster {name:?}, which is not defined"
            )));
        }
        // Queue notifications go to the worker that owns the consuming VM.
        let queue_routes = Arc::new(QueueRoutes::default());
        let routes = queue_routes.clone();
        services
            .queues
            .set_notifier(Arc::new(move |consumer, token| {
                routes.notify(consumer.vm_instance, consumer.root_context_id, token)
            }));
        let mut filters = Vec::new();
        for filter in &config.filters {
            let module = engine
                .load(&filter.wasm)
                .map_err(|error| ProxyError::Load {
                    source_name: filter.source.clone(),
                    error: Box::new(error),
                })?;
            // Envoy's canary: start the plugin once on a VM that is thrown away, so a bad
            // configuration is refused before any traffic.
            let mut canary = Vm::new(&module, filter.vm.clone(), services.clone(), &config.limits)
                .map_err(|error| ProxyError::Start {
                    source_name: filter.source.clone(),
                    error: Box::new(error),
                })?;
            canary
                .start_plugin(filter.plugin.clone())
                .map_err(|error| ProxyError::Start {
                    source_name: filter.source.clone(),
                    error: Box::new(error),
                })?;
            filters.push((module, filter.plugin.clone(), filter.vm.clone()));
        }
        let plan = Arc::new(WorkerPlan {
            filters,
            services: services.clone(),
            limits: config.limits.clone(),
            upstream: config.upstream.clone(),
            clusters: config.clusters.clone(),
            route_timeout: config.route_timeout,
            stream_idle_timeout: config.stream_idle_timeout,
            queue_routes,
            vm_states: Arc::default(),
        });

        let first = bind(config.listen).map_err(|error| ProxyError::Listen {
            addr: config.listen,
            error,
        })?;
        let addr = first.local_addr().map_err(|error| ProxyError::Listen {
            addr: config.listen,
            error,
        })?;
        let (shutdown, watch) = tokio::sync::watch::channel(false);
        let mut workers = Vec::new();
        let mut listener = Some(first);
        for index in 0..config.workers.max(1) {
            let socket = match listener.take() {
                Some(socket) => socket,
                None => bind(addr).map_err(|error| ProxyError::Listen { addr, error })?,
            };
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let (plan, watch) = (plan.clone(), watch.clone());
            let handle = std::thread::Builder::new()
                .name(format!("pwx-worker-{index}"))
                .spawn(move || worker::run(index, socket, plan, ready_tx, watch))
                .map_err(|e| ProxyError::Worker {
                    index,
                    message: e.to_string(),
                })?;
            match ready_rx.recv() {
                Ok(Ok(())) => workers.push(handle),
                Ok(Err(message)) => return Err(ProxyError::Worker { index, message }),
                Err(_) => {
                    return Err(ProxyError::Worker {
                        index,
                        message: "the worker thread exited".into(),
                    });
                }
            }
        }
        let admin = match config.admin {
            Some(admin_addr) => Some(
                crate::admin::Admin::start(admin_addr, addr, services, plan.clone()).map_err(
                    |error| ProxyError::Admin {
                        addr: admin_addr,
                        error,
                    },
                )?,
            ),
            None => None,
        };
        Ok(Proxy {
            addr,
            admin,
            shutdown,
            workers,
        })
    }

    /// The address the proxy listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
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
