//! The wasmtime engine pwx runs every module on: configuration, the epoch ticker that enforces
//! callback deadlines, and module loading through the compile cache.

use crate::cache::CompileCache;
use crate::error::LoadError;
use crate::module::Module;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How the engine is set up.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Directory of the on-disk compile cache; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Granularity of callback deadlines: the epoch is bumped this often.
    pub epoch_tick: Duration,
    /// Pre-allocated instance slots (pooling allocator); `None` allocates on demand.
    pub pooling: Option<PoolingConfig>,
}

/// Sizes of the pooling allocator.
#[derive(Clone, Debug)]
pub struct PoolingConfig {
    /// Most VM replicas alive at once across the process.
    pub max_vms: u32,
    /// Largest linear memory one VM may have (the per-VM cap cannot exceed it).
    pub max_memory_bytes: usize,
}

impl Default for PoolingConfig {
    fn default() -> Self {
        PoolingConfig {
            max_vms: 256,
            max_memory_bytes: 1 << 30,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            cache_dir: default_cache_dir(),
            epoch_tick: Duration::from_millis(10),
            pooling: Some(PoolingConfig::default()),
        }
    }
}

/// `$XDG_CACHE_HOME/pwx/compiled` or `~/.cache/pwx/compiled`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("pwx").join("compiled"))
}

/// A configured wasmtime engine. Cheap to clone; every VM of the process shares one.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    wasmtime: wasmtime::Engine,
    cache: Option<CompileCache>,
    epoch_tick: Duration,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// Engine set-up errors.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// wasmtime refused the configuration.
    #[error("configuring the wasm engine failed: {0}")]
    Config(String),
    /// The epoch ticker thread could not be started.
    #[error("starting the deadline ticker thread failed: {0}")]
    Ticker(std::io::Error),
}

impl Engine {
    /// Builds an engine.
    pub fn new(config: &EngineConfig) -> Result<Engine, EngineError> {
        let mut wasm_config = wasmtime::Config::new();
        wasm_config
            .epoch_interruption(true)
            .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(20))
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        if let Some(pooling) = &config.pooling {
            let mut pool = wasmtime::PoolingAllocationConfig::new();
            pool.total_core_instances(pooling.max_vms)
                .total_memories(pooling.max_vms)
                .total_tables(pooling.max_vms)
                .max_memory_size(pooling.max_memory_bytes)
                // Go and C++ modules carry large function tables.
                .table_elements(100_000)
                .max_core_instance_size(1 << 20);
            wasm_config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        }
        let wasmtime = wasmtime::Engine::new(&wasm_config)
            .map_err(|e| EngineError::Config(format!("{e:#}")))?;
        let stop_ticker = Arc::new(AtomicBool::new(false));
        spawn_ticker(wasmtime.clone(), config.epoch_tick, stop_ticker.clone())?;
        let cache = config
            .cache_dir
            .clone()
            .map(|dir| CompileCache::new(dir, &wasmtime));
        Ok(Engine {
            inner: Arc::new(EngineInner {
                wasmtime,
                cache,
                epoch_tick: config.epoch_tick,
                stop_ticker,
            }),
        })
    }

    /// Compiles (or loads from the cache) and links a module.
    pub fn load(&self, bytes: &[u8]) -> Result<Module, LoadError> {
        Module::load(self, bytes)
    }

    pub(crate) fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.wasmtime
    }

    pub(crate) fn cache(&self) -> Option<&CompileCache> {
        self.inner.cache.as_ref()
    }

    /// Number of epoch ticks that make up `deadline` (at least one).
    pub(crate) fn deadline_ticks(&self, deadline: Duration) -> u64 {
        let tick = self.inner.epoch_tick.as_nanos().max(1);
        (deadline.as_nanos().div_ceil(tick)).clamp(1, u64::MAX as u128) as u64
    }
}

/// Bumps the engine epoch every `tick` until the engine is dropped: a callback past its
/// deadline traps at its next loop back-edge or function entry.
fn spawn_ticker(
    engine: wasmtime::Engine,
    tick: Duration,
    stop: Arc<AtomicBool>,
) -> Result<(), EngineError> {
    std::thread::Builder::new()
        .name("pwx-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                engine.increment_epoch();
            }
        })
        .map(|_| ())
        .map_err(EngineError::Ticker)
}
