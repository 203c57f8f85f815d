//! Shared helpers for the host's integration tests: an engine, a captured log, WAT probe
//! modules, and the guest fixtures built by `scripts/build-fixtures.sh`.
#![allow(dead_code, clippy::unwrap_used)]

use pwx_host::{
    Engine, EngineConfig, Limits, MemoryLog, Module, PluginConfig, Services, Vm, VmConfig,
};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// One engine per test binary, compiling into a cache shared by every test run.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let config = EngineConfig {
            cache_dir: Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compile-cache")),
            epoch_tick: Duration::from_millis(5),
            pooling: Some(pwx_host::PoolingConfig {
                max_vms: 64,
                max_memory_bytes: 256 << 20,
            }),
        };
        Engine::new(&config).expect("engine")
    })
}

/// A built guest fixture (`target/fixtures/<name>.wasm`).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/fixtures")
        .join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("fixture {} is missing ({e}): run scripts/build-fixtures.sh first (the README's test command does)", path.display())
    })
}

/// Loads a fixture once per test binary.
pub fn fixture_module(name: &'static str) -> Module {
    static MODULES: OnceLock<std::sync::Mutex<std::collections::HashMap<&'static str, Module>>> =
        OnceLock::new();
    let modules = MODULES.get_or_init(Default::default);
    let mut modules = modules.lock().unwrap();
    modules
        .entry(name)
        .or_insert_with(|| engine().load(&fixture(name)).expect("fixture loads"))
        .clone()
}

/// A VM with a captured log.
pub struct TestVm {
    pub vm: Vm,
    pub log: Arc<MemoryLog>,
    pub services: Arc<Services>,
}

pub fn vm_with(module: &Module, vm_config: VmConfig, limits: &Limits) -> TestVm {
    let log = Arc::new(MemoryLog::default());
    let services = Arc::new(Services::new(log.clone()));
    let vm = Vm::new(module, vm_config, services.clone(), limits).expect("vm starts");
    TestVm { vm, log, services }
}

pub fn vm(module: &Module) -> TestVm {
    vm_with(module, VmConfig::default(), &test_limits())
}

pub fn test_limits() -> Limits {
    Limits {
        callback_deadline: Duration::from_millis(200),
        max_memory_bytes: 64 << 20,
        ..Limits::default()
    }
}

pub fn plugin(name: &str, configuration: &str) -> PluginConfig {
    PluginConfig {
        name: name.into(),
        root_id: String::new(),
        configuration: configuration.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// The module-level preamble of a WAT probe: imports, memory, a bump allocator that counts
/// its calls, and `$report`, which logs a status as one character ('0' + status).
const PRELUDE: &str = r#"
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get_value (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_pairs" (func $get_pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add_value (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value" (func $replace_value (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $set_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_property" (func $get_property (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $local_response (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 8192))
  (global $allocs (export "allocs") (mut i32) (i32.const 0))
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    (global.set $allocs (i32.add (global.get $allocs) (i32.const 1)))
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func $report (param $s i32)
    (i32.store8 (i32.const 0) (i32.add (i32.const 48) (local.get $s)))
    (drop (call $log (i32.const 2) (i32.const 0) (i32.const 1))))
  (func $say (param $ptr i32) (param $len i32)
    (drop (call $log (i32.const 2) (local.get $ptr) (local.get $len))))
  (func $say_allocs
    (call $report (global.get $allocs)))
  (func (export "proxy_on_context_create") (param i32 i32))
"#;

/// A probe module declaring ABI 0.2.1 whose `proxy_on_request_headers` runs `body` and whose
/// other functions are given as `extra` (WAT module fields).
pub fn probe(on_request_headers: &str, extra: &str) -> String {
    format!(
        r#"(module {PRELUDE}
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    {on_request_headers})
  {extra}
  (data (i32.const 16) "x-present\00value\00x-missing\00request\00path\00plugin_name\00bodytext\00")
)"#
    )
}

/// Offsets of the strings in the probe's data segment.
pub mod data {
    pub const PRESENT: (i32, i32) = (16, 9);
    pub const VALUE: (i32, i32) = (26, 5);
    pub const MISSING: (i32, i32) = (32, 9);
    /// "request\0path" (one property path, Rust SDK style).
    pub const REQUEST_PATH: (i32, i32) = (42, 12);
    pub const PLUGIN_NAME: (i32, i32) = (55, 11);
    pub const BODYTEXT: (i32, i32) = (67, 8);
}

pub fn load_wat(wat: &str) -> Result<Module, pwx_host::LoadError> {
    engine().load(&wat::parse_str(wat).expect("valid WAT"))
}
