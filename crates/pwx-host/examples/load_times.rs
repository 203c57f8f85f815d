//! Measures, for one module: cold compile time, compile-cache load time, and the time to
//! instantiate a VM replica and start a plugin on it.
//!
//! `cargo run --release -p pwx-host --example load_times -- target/fixtures/add-header.wasm`
#![allow(clippy::unwrap_used, clippy::expect_used)] // measurement tool

use pwx_host::{Engine, EngineConfig, Limits, PluginConfig, Services, Vm, VmConfig};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: load_times FILE.wasm");
    let bytes = std::fs::read(&path).expect("readable module");
    let cache = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..Default::default()
    };
    let engine = Engine::new(&config).unwrap();

    let started = Instant::now();
    let module = engine.load(&bytes).unwrap();
    let cold = started.elapsed();
    assert!(!module.from_cache());

    let engine = Engine::new(&config).unwrap();
    let started = Instant::now();
    let module = engine.load(&bytes).unwrap();
    let cached = started.elapsed();
    assert!(module.from_cache());

    let rounds = 200;
    let started = Instant::now();
    for _ in 0..rounds {
        let mut vm = Vm::new(
            &module,
            VmConfig::default(),
            Arc::new(Services::default()),
            &Limits::default(),
        )
        .unwrap();
        vm.start_plugin(PluginConfig {
            name: "bench".into(),
            ..Default::default()
        })
        .unwrap();
    }
    let per_vm = started.elapsed() / rounds;
    println!(
        "module: {path} ({} bytes, ABI {})",
        bytes.len(),
        module.abi_version()
    );
    println!("cold compile: {cold:?}");
    println!("cached load:  {cached:?}");
    println!("instantiate + start plugin: {per_vm:?} per VM (mean of {rounds})");
}
