//! Hot reload: a new configuration (new modules, plugin configuration, routes, clusters)
//! replaces the running one without dropping a request. Every module is loaded and every
//! plugin canary-started first; then each worker builds its next generation of VMs (start-up,
//! `on_vm_start`, `on_configure`) while still serving the current one; only when every worker
//! succeeded do they all switch. Streams already running finish on the VMs they started on. A
//! failure anywhere leaves the running generation serving and says why.

use crate::config::ProxyConfig;
use crate::dispatch::Event;
use crate::server::{Proxy, ProxyError, check_routes, plans};
use crate::worker::WorkerPlan;
use pwx_host::Engine;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a worker may take to build its next generation before the reload is abandoned.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(60);

/// A reload asked for on the admin endpoint (`POST /reload`); answer it with `respond`.
pub struct ReloadRequest {
    pub(crate) reply: tokio::sync::oneshot::Sender<Result<String, String>>,
}

impl ReloadRequest {
    /// Answers the admin request: `Ok` with a summary, or `Err` with why nothing changed.
    pub fn respond(self, result: Result<String, String>) {
        let _ = self.reply.send(result);
    }
}

/// The outcome of the last reload attempt, for `/plugins`.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct Outcome {
    /// The generation serving after the attempt.
    pub(crate) generation: u64,
    pub(crate) ok: bool,
    pub(crate) message: String,
    /// Seconds since the Unix epoch.
    pub(crate) at: u64,
}

/// What the admin endpoint shows of the running configuration.
pub(crate) struct ReloadState {
    plan: Mutex<Arc<WorkerPlan>>,
    generation: AtomicU64,
    last: Mutex<Option<Outcome>>,
}

impl ReloadState {
    pub(crate) fn new(plan: Arc<WorkerPlan>) -> Self {
        ReloadState {
            plan: Mutex::new(plan),
            generation: AtomicU64::new(0),
            last: Mutex::new(None),
        }
    }

    /// The listener workers' plan of the serving generation.
    pub(crate) fn plan(&self) -> Arc<WorkerPlan> {
        self.plan.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn last(&self) -> Option<Outcome> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn record(&self, ok: bool, message: String) {
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(Outcome {
            generation: self.generation(),
            ok,
            message,
            at,
        });
    }
}

/// What a successful reload did.
#[derive(Clone, Debug)]
pub struct Reloaded {
    /// The generation now serving (0 is the configuration the proxy started with).
    pub generation: u64,
    /// How many filters each listener worker runs now.
    pub filters: usize,
}

impl Proxy {
    /// Replaces the running configuration with `config`. Listener addresses, the admin
    /// address and the worker count must stay as they are (changing them needs a restart).
    /// On error the running configuration keeps serving, untouched.
    pub fn reload(&self, config: ProxyConfig, engine: &Engine) -> Result<Reloaded, ProxyError> {
        let result = self.try_reload(config, engine);
        match &result {
            Ok(done) => self.state.record(
                true,
                format!(
                    "generation {} serving ({} filters)",
                    done.generation, done.filters
                ),
            ),
            Err(error) => self.state.record(false, error.to_string()),
        }
        result
    }

    /// Records a reload that failed before it reached the proxy (e.g. the configuration file
    /// did not parse), so `/plugins` shows it.
    pub fn reload_failed(&self, message: &str) {
        self.state.record(false, message.to_string());
    }

    /// The generation serving: 0 at start, one more per successful reload.
    pub fn generation(&self) -> u64 {
        self.state.generation()
    }

    fn try_reload(&self, config: ProxyConfig, engine: &Engine) -> Result<Reloaded, ProxyError> {
        let running = &self.running;
        let listen: Vec<_> = config.listeners.iter().map(|l| l.address).collect();
        if listen != running.listen {
            return Err(restart("the listener addresses", &running.listen, &listen));
        }
        if config.admin != running.admin {
            return Err(restart("the admin address", &running.admin, &config.admin));
        }
        if config.workers.max(1) != running.workers {
            return Err(restart(
                "the worker count",
                &running.workers,
                &config.workers.max(1),
            ));
        }
        check_routes(&config)?;
        let (worker_plan, services_plan) = plans(
            &config,
            engine,
            &running.services,
            &running.queue_routes,
            &running.vm_states,
        )?;
        if services_plan.filters.is_empty() == running.services_thread {
            return Err(ProxyError::Reload(
                "bootstrap services (or main-thread plugin replicas) were added or removed; restart pwx to apply that".into(),
            ));
        }
        let generation = self.state.generation() + 1;
        let mut replies = Vec::new();
        for (i, inbox) in running.inboxes.iter().enumerate() {
            let plan = if i < running.workers {
                worker_plan.clone()
            } else {
                services_plan.clone()
            };
            let (reply, answer) = std::sync::mpsc::channel();
            let sent = inbox.send(Event::Prepare {
                generation,
                plan,
                reply,
            });
            replies.push(sent.ok().map(|()| answer));
        }
        let mut failure = None;
        for answer in replies {
            let result = match answer {
                None => Err("a worker has stopped".to_string()),
                Some(answer) => answer
                    .recv_timeout(PREPARE_TIMEOUT)
                    .unwrap_or_else(|_| Err("a worker did not answer in time".to_string())),
            };
            if let Err(message) = result {
                failure.get_or_insert(message);
            }
        }
        if let Some(message) = failure {
            for inbox in &running.inboxes {
                let _ = inbox.send(Event::Abort { generation });
            }
            return Err(ProxyError::Reload(message));
        }
        for inbox in &running.inboxes {
            let _ = inbox.send(Event::Commit { generation });
        }
        let filters = worker_plan.filters.len();
        *self.state.plan.lock().unwrap_or_else(|p| p.into_inner()) = worker_plan;
        self.state.generation.store(generation, Ordering::Release);
        tracing::info!(generation, filters, "configuration reloaded");
        Ok(Reloaded {
            generation,
            filters,
        })
    }
}

fn restart(what: &str, from: &impl std::fmt::Debug, to: &impl std::fmt::Debug) -> ProxyError {
    ProxyError::Reload(format!(
        "{what} changed ({from:?} -> {to:?}); restart pwx to apply that"
    ))
}
