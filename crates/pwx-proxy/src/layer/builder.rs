//! Building a filter chain for the layer: the same loading and canary start as `pwx run`, then
//! N worker threads with the chain's VM replicas and no listener, fed by the layer's queue.
//! Dropping the last handle stops them (plugins get `on_done`/`on_delete` as at `pwx run`'s
//! exit).

use super::INNER_SERVICE;
use super::error::BuildError;
use super::feed::{Feed, Job, Queues};
use super::service::FilterLayer;
use crate::config::{ClusterConfig, FilterConfig};
use crate::dispatch::QueueRoutes;
use crate::routes::{RouteAction, VirtualHost};
use crate::server::{ProxyError, load_and_check, spawn_worker};
use crate::worker::{Control, ListenerPlan, WorkerPlan};
use pwx_host::{Engine, EngineConfig, Limits, Services};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// What a [`FilterChain`] is built from; see [`FilterChain::builder`].
pub struct FilterChainBuilder {
    engine: Option<Engine>,
    services: Option<Services>,
    filters: Vec<FilterConfig>,
    clusters: Vec<ClusterConfig>,
    workers: usize,
    limits: Limits,
    route_timeout: Option<Duration>,
    stream_idle_timeout: Duration,
    suppress_envoy_headers: bool,
}

impl FilterChainBuilder {
    /// Adds a filter (request order: the first added sees requests first and responses last).
    pub fn filter(mut self, filter: FilterConfig) -> Self {
        self.filters.push(filter);
        self
    }

    /// Adds a cluster the filters' callouts (`proxy_http_call`, gRPC) may name.
    pub fn cluster(mut self, cluster: ClusterConfig) -> Self {
        self.clusters.push(cluster);
        self
    }

    /// How many worker threads (each with its own VM replica of every filter); default 1.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// The engine modules are compiled with (default: a new engine with default settings).
    pub fn engine(mut self, engine: Engine) -> Self {
        self.engine = Some(engine);
        self
    }

    /// The process-wide services (logs, shared data, queues, metrics, node identity); default
    /// `Services::default()`. Its `clusters` are replaced by the names of the clusters given to
    /// this builder, which are the ones callouts can reach.
    pub fn services(mut self, services: Services) -> Self {
        self.services = Some(services);
        self
    }

    /// Limits for every VM replica (callback deadline, memory, body buffers).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// How long the inner service may take to answer (Envoy's route timeout, default 15 s;
    /// `None`: no limit). When it fires, the client gets Envoy's 504.
    pub fn route_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.route_timeout = timeout;
        self
    }

    /// How long a stream may sit paused with nothing happening before it gets a 408 (Envoy's
    /// `stream_idle_timeout`, default 5 min).
    pub fn stream_idle_timeout(mut self, timeout: Duration) -> Self {
        self.stream_idle_timeout = timeout;
        self
    }

    /// No `x-envoy-upstream-service-time` on responses (the router's `suppress_envoy_headers`).
    pub fn suppress_envoy_headers(mut self, suppress: bool) -> Self {
        self.suppress_envoy_headers = suppress;
        self
    }

    /// Loads every module, starts each plugin on a canary VM (a bad module or configuration is
    /// refused here, with `pwx run`'s wording), then starts the workers.
    pub fn build(self) -> Result<FilterChain, BuildError> {
        let engine = match self.engine {
            Some(engine) => engine,
            None => Engine::new(&EngineConfig::default())?,
        };
        let mut names = HashSet::new();
        for cluster in &self.clusters {
            if cluster.name == INNER_SERVICE || !names.insert(cluster.name.clone()) {
                return Err(ProxyError::Config(format!(
                    "cluster {:?} is defined twice (or uses the name of the inner service); give each cluster its own name",
                    cluster.name
                ))
                .into());
            }
        }
        let mut services = self.services.unwrap_or_default();
        services.clusters = Arc::new(names);
        let services = Arc::new(services);

        let mut filters = Vec::new();
        for filter in &self.filters {
            filters.push(load_and_check(filter, &engine, &services, &self.limits)?);
        }
        // Queue notifications go to the worker that owns the consuming VM (as in `Proxy`).
        let queue_routes = Arc::new(QueueRoutes::default());
        let routes = queue_routes.clone();
        services
            .queues
            .set_notifier(Arc::new(move |consumer, token| {
                routes.notify(consumer.vm_instance, consumer.root_context_id, token)
            }));
        let workers = self.workers.max(1);
        let (jobs, feed) = Feed::new(workers);
        let listener = ListenerPlan {
            name: "layer".into(),
            filters: (0..filters.len()).collect(),
            virtual_hosts: vec![VirtualHost::catch_all(RouteAction::Cluster {
                cluster: INNER_SERVICE.into(),
                timeout: self.route_timeout,
                prefix_rewrite: None,
                host_rewrite: None,
            })],
            stream_idle_timeout: self.stream_idle_timeout,
            suppress_envoy_headers: self.suppress_envoy_headers,
            tls: None,
            tcp: None,
        };
        let plan = Arc::new(WorkerPlan {
            filters,
            listeners: vec![listener],
            services: services.clone(),
            limits: self.limits,
            clusters: self.clusters,
            queue_routes,
            vm_states: Arc::default(),
            embedded: Some(feed),
        });
        let (shutdown, watch) = tokio::sync::watch::channel(Control::Run);
        let mut shared = Shared {
            jobs,
            services,
            shutdown,
            workers: Vec::new(),
        };
        for index in 0..workers {
            // On failure `shared` is dropped, which stops the workers started so far.
            let worker = spawn_worker(
                index,
                format!("pwx-layer-{index}"),
                Vec::new(),
                plan.clone(),
                watch.clone(),
                &mut Vec::new(),
            )?;
            shared.workers.push(worker);
        }
        Ok(FilterChain {
            shared: Arc::new(shared),
        })
    }
}

/// A running filter chain: N worker threads with the filters' VM replicas. Cheap to clone;
/// the workers stop when the last clone (including those inside layers and services) is
/// dropped.
#[derive(Clone)]
pub struct FilterChain {
    shared: Arc<Shared>,
}

struct Shared {
    jobs: Queues,
    services: Arc<Services>,
    shutdown: tokio::sync::watch::Sender<Control>,
    /// Each worker and where it is told its turn to shut its plugins down has come.
    workers: Vec<(
        std::thread::JoinHandle<()>,
        tokio::sync::oneshot::Sender<()>,
    )>,
}

impl FilterChain {
    /// A builder with `pwx run`'s defaults: one worker, Envoy's timeouts, default limits.
    pub fn builder() -> FilterChainBuilder {
        FilterChainBuilder {
            engine: None,
            services: None,
            filters: Vec::new(),
            clusters: Vec::new(),
            workers: 1,
            limits: Limits::default(),
            route_timeout: Some(Duration::from_secs(15)),
            stream_idle_timeout: Duration::from_secs(300),
            suppress_envoy_headers: false,
        }
    }

    /// The tower layer that puts this chain in front of a service.
    pub fn layer(&self) -> FilterLayer {
        FilterLayer {
            chain: self.clone(),
        }
    }

    /// The services the chain's VMs share: metrics (`services().metrics`), shared data, queues.
    pub fn services(&self) -> &Arc<Services> {
        &self.shared.services
    }

    /// Queues a request for the next worker; `false` once it stopped.
    pub(crate) fn submit(&self, job: Job) -> bool {
        self.shared.jobs.submit(job)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _ = self.shutdown.send(Control::Stop);
        let me = std::thread::current().id();
        for (worker, turn) in self.workers.drain(..) {
            let _ = turn.send(());
            // A worker cannot wait for itself (the last handle dropped by a filter task).
            if worker.thread().id() != me {
                let _ = worker.join();
            }
        }
    }
}
