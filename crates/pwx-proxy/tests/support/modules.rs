//! What the data-plane tests share: one wasm engine per test binary (with a compile cache, so
//! each module compiles once), and the guest modules `scripts/build-fixtures.sh` builds.
#![allow(dead_code, clippy::unwrap_used)]

use pwx_abi::FailurePolicy;
use pwx_host::{Engine, EngineConfig, PluginConfig, VmConfig};
use pwx_proxy::FilterConfig;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The test binary's engine.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compile-cache");
        Engine::new(&EngineConfig {
            cache_dir: Some(cache),
            ..Default::default()
        })
        .unwrap()
    })
}

/// A fixture or example module by name, from where scripts/build-fixtures.sh writes:
/// PWX_FIXTURES_DIR, else `<CARGO_TARGET_DIR>/fixtures`, else the repository's target/fixtures.
pub fn fixture(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("PWX_FIXTURES_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(|d| PathBuf::from(d).join("fixtures")))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fixtures"));
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run scripts/build-fixtures.sh first",
            path.display()
        )
    })
}

/// The module `name` as a filter of the same name (plugin name and vm_id), configured with
/// `configuration`, under `policy`.
pub fn filter(name: &str, configuration: &str, policy: FailurePolicy) -> FilterConfig {
    FilterConfig {
        wasm: fixture(name),
        source: name.into(),
        plugin: PluginConfig {
            name: name.into(),
            configuration: configuration.into(),
            failure_policy: policy,
            ..Default::default()
        },
        vm: VmConfig {
            vm_id: name.into(),
            ..Default::default()
        },
    }
}
