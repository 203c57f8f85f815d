//! Loading a module, starting its plugin and the filter's lifetime: timers, metrics, logs.

use crate::error::Error;
use crate::exchange::{CalloutAnswer, LogLine};
use pwx_abi::LogLevel;
use pwx_host::{
    Engine, EngineConfig, Limits, MemoryLog, Module, PluginConfig, Services, Vm, VmConfig,
};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A compiled module and the plugin settings to start it with. Cheap to clone: compile once,
/// start a fresh filter (a new VM) per test.
#[derive(Clone)]
pub struct FilterBuilder {
    module: Module,
    plugin: PluginConfig,
    vm: VmConfig,
    clusters: HashSet<String>,
    answers: Vec<CalloutAnswer>,
    log_level: LogLevel,
    limits: Limits,
}

/// A started filter: one VM with one plugin (root context), as one Envoy worker runs it.
pub struct Filter {
    pub(crate) vm: Vm,
    pub(crate) root: u32,
    pub(crate) services: Arc<Services>,
    pub(crate) log: Arc<MemoryLog>,
    pub(crate) answers: Vec<CalloutAnswer>,
    pub(crate) tick_period: Option<Duration>,
    /// Virtual time stepped by [`Filter::advance`], and when the next tick is due.
    clock: Duration,
    next_tick: Option<Duration>,
    /// Every log line so far (start-up included).
    all_logs: Vec<LogLine>,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("root", &self.root)
            .field("tick_period", &self.tick_period)
            .finish_non_exhaustive()
    }
}

fn engine() -> Result<Engine, Error> {
    // The on-disk compile cache makes repeated runs fast; no pooling (tests run few VMs).
    Engine::new(&EngineConfig {
        pooling: None,
        ..EngineConfig::default()
    })
    .map_err(|e| Error::Engine(e.to_string()))
}

impl Filter {
    /// Reads and compiles `path` (a `.wasm` file).
    pub fn load(path: impl AsRef<Path>) -> Result<FilterBuilder, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Read {
            path: path.display().to_string(),
            source,
        })?;
        Filter::from_bytes(&bytes)
    }

    /// Compiles a module from its bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<FilterBuilder, Error> {
        let module = engine()?.load(bytes)?;
        Ok(FilterBuilder {
            module,
            plugin: PluginConfig {
                name: "test".into(),
                ..PluginConfig::default()
            },
            vm: VmConfig::default(),
            clusters: HashSet::new(),
            answers: Vec::new(),
            log_level: LogLevel::Info,
            limits: Limits::default(),
        })
    }
}

impl FilterBuilder {
    /// The plugin configuration (what `proxy_on_configure` reads).
    pub fn configuration(mut self, configuration: impl Into<Vec<u8>>) -> Self {
        self.plugin.configuration = configuration.into();
        self
    }

    /// The VM configuration (what `proxy_on_vm_start` reads).
    pub fn vm_configuration(mut self, configuration: impl Into<Vec<u8>>) -> Self {
        self.vm.configuration = configuration.into();
        self
    }

    /// The plugin name (log prefix, `plugin_name` property); `test` by default.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.plugin.name = name.into();
        self
    }

    /// The root id that selects the root context in the module; empty by default.
    pub fn root_id(mut self, root_id: impl Into<String>) -> Self {
        self.plugin.root_id = root_id.into();
        self
    }

    /// An environment variable the module sees through WASI.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vm.environment.push((name.into(), value.into()));
        self
    }

    /// Makes `cluster` known to callouts without answering them (a callout to it is an error).
    pub fn cluster(mut self, cluster: impl Into<String>) -> Self {
        self.clusters.insert(cluster.into());
        self
    }

    /// Answers callouts to a cluster (which becomes known). The first matching answer wins.
    pub fn answer_callouts(mut self, answer: CalloutAnswer) -> Self {
        self.clusters.insert(answer.cluster.clone());
        self.answers.push(answer);
        self
    }

    /// The log level the host reports to the module and keeps lines at (info by default, as
    /// Envoy's default).
    pub fn log_level(mut self, level: LogLevel) -> Self {
        self.log_level = level;
        self
    }

    /// Resource limits (callback deadline, memory, body buffers).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Creates the VM, runs the module's start-up and starts the plugin (`on_vm_start`,
    /// `on_configure`); a refused configuration is an [`Error::Start`].
    pub fn start(&self) -> Result<Filter, Error> {
        let log = Arc::new(MemoryLog::with_level(self.log_level));
        let mut services = Services::new(log.clone());
        services.clusters = Arc::new(self.clusters.clone());
        let services = Arc::new(services);
        let mut vm = Vm::new(
            &self.module,
            self.vm.clone(),
            services.clone(),
            &self.limits,
        )?;
        let root = vm.start_plugin(self.plugin.clone());
        let mut filter = Filter {
            vm,
            root: 0,
            services,
            log,
            answers: self.answers.clone(),
            tick_period: None,
            clock: Duration::ZERO,
            next_tick: None,
            all_logs: Vec::new(),
        };
        let root = match root {
            Ok(root) => root,
            Err(e) => {
                // Keep what the module logged about its refusal in the error.
                let logs = filter.take_logs();
                let detail: Vec<String> = logs.iter().map(|l| l.message.clone()).collect();
                return Err(if detail.is_empty() {
                    Error::Start(e)
                } else {
                    Error::VmFailed(format!("{e}; the module logged: {}", detail.join(" | ")))
                });
            }
        };
        filter.root = root;
        let deferred = filter.vm.take_deferred();
        filter.apply_root(deferred)?;
        Ok(filter)
    }
}

impl Filter {
    /// Log lines written since the last call (also kept for [`Filter::logs`]).
    pub(crate) fn take_logs(&mut self) -> Vec<LogLine> {
        let lines: Vec<LogLine> = self
            .log
            .take()
            .into_iter()
            .map(|l| LogLine {
                level: l.level.name(),
                message: l.message,
            })
            .collect();
        self.all_logs.extend(lines.iter().cloned());
        lines
    }

    /// Every log line the filter wrote so far, start-up included.
    pub fn logs(&mut self) -> &[LogLine] {
        self.take_logs();
        &self.all_logs
    }

    /// A metric's value by the name the module defined it with (or its full
    /// `wasmcustom.` name); `None` if the module never defined it.
    pub fn metric(&self, name: &str) -> Option<i64> {
        let metrics = &self.services.metrics;
        metrics
            .get(name)
            .or_else(|| metrics.get(&format!("wasmcustom.{name}")))
            .map(|m| m.value())
    }

    /// Every metric the module defined, by name without the `wasmcustom.` prefix.
    pub fn metrics(&self) -> Vec<(String, i64)> {
        self.services
            .metrics
            .snapshot()
            .into_iter()
            .map(|(name, m)| {
                let short = name
                    .strip_prefix("wasmcustom.")
                    .map(str::to_string)
                    .unwrap_or(name);
                (short, m.value())
            })
            .collect()
    }

    /// The tick period the filter set, if any.
    pub fn tick_period(&self) -> Option<Duration> {
        self.tick_period
    }

    /// Delivers one `proxy_on_tick` now, whatever the period.
    pub fn tick(&mut self) -> Result<(), Error> {
        if self.tick_period.is_none() {
            return Err(Error::NoTimer);
        }
        self.vm
            .on_tick(self.root)
            .map_err(|e| Error::VmFailed(e.reason))?;
        let deferred = self.vm.take_deferred();
        self.apply_root(deferred)
    }

    /// Steps virtual time by `by`, delivering every tick that falls due on the way.
    pub fn advance(&mut self, by: Duration) -> Result<usize, Error> {
        let Some(period) = self.tick_period else {
            return Err(Error::NoTimer);
        };
        let target = self.clock + by;
        let mut ticks = 0;
        loop {
            let due = *self.next_tick.get_or_insert(self.clock + period);
            if due > target {
                break;
            }
            self.clock = due;
            self.tick()?;
            ticks += 1;
            let period = self.tick_period.unwrap_or(period);
            self.next_tick = Some(due + period);
        }
        self.clock = target;
        Ok(ticks)
    }

    /// Applies what a root callback deferred (tick period, callouts); stream actions aimed at
    /// streams that no longer exist have nothing to act on.
    fn apply_root(&mut self, deferred: Vec<pwx_host::Deferred>) -> Result<(), Error> {
        let mut scratch = crate::stream::StreamState::detached();
        self.apply(deferred, &mut scratch)
            .map_err(|failure| Error::VmFailed(failure.reason))?;
        if let Some(call) = scratch.unanswered.take() {
            return Err(call);
        }
        Ok(())
    }

    pub(crate) fn set_tick_period(&mut self, period: Option<Duration>) {
        self.tick_period = period.filter(|p| !p.is_zero());
        self.next_tick = self.tick_period.map(|p| self.clock + p);
    }
}
