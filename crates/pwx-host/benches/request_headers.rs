//! Cost of one `on_request_headers` call of the add-header example (Rust SDK 0.2.5), which adds
//! a request header, and of a whole header-only stream (create, request and response headers,
//! log, done, delete). Needs `scripts/build-fixtures.sh` first.
#![allow(clippy::unwrap_used, clippy::expect_used)] // bench code

use criterion::{Criterion, criterion_group, criterion_main};
use pwx_host::{
    Direction, Engine, EngineConfig, HeaderMap, Limits, PluginConfig, Services, StreamInfo, Vm,
    VmConfig,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn request() -> HeaderMap {
    HeaderMap::from_pairs([
        (":method", "GET"),
        (":path", "/productpage"),
        (":authority", "example.com"),
        (":scheme", "http"),
        ("user-agent", "bench/1.0"),
        ("accept", "*/*"),
    ])
}

fn setup() -> (Vm, u32) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/fixtures/add-header.wasm"
    );
    let bytes = std::fs::read(path).expect("run scripts/build-fixtures.sh first");
    let engine = Engine::new(&EngineConfig::default()).unwrap();
    let module = engine.load(&bytes).unwrap();
    let services = Arc::new(Services::new(Arc::new(pwx_host::TracingLog {
        level: pwx_abi::LogLevel::Info,
    })));
    let mut vm = Vm::new(&module, VmConfig::default(), services, &Limits::default()).unwrap();
    let root = vm
        .start_plugin(PluginConfig {
            name: "add-header".into(),
            ..Default::default()
        })
        .unwrap();
    (vm, root)
}

fn bench(c: &mut Criterion) {
    let (mut vm, root) = setup();
    let headers = request();
    c.bench_function("on_request_headers (add-header)", |b| {
        b.iter_custom(|iterations| {
            let mut spent = Duration::ZERO;
            for _ in 0..iterations {
                let stream = vm.create_stream(root, StreamInfo::default()).unwrap();
                // The context is created lazily by the first callback: create it outside the
                // measured part so only on_request_headers itself is timed.
                vm.on_log(stream).unwrap();
                let input = headers.clone();
                let started = Instant::now();
                let step = vm
                    .on_headers(stream, Direction::Request, input, true)
                    .unwrap();
                spent += started.elapsed();
                std::hint::black_box(step);
                vm.finish_stream(stream).unwrap();
            }
            spent
        })
    });
    let response = HeaderMap::from_pairs([(":status", "200"), ("content-length", "0")]);
    c.bench_function("header-only stream (add-header)", |b| {
        b.iter(|| {
            let stream = vm.create_stream(root, StreamInfo::default()).unwrap();
            vm.on_headers(stream, Direction::Request, headers.clone(), true)
                .unwrap();
            vm.on_headers(stream, Direction::Response, response.clone(), true)
                .unwrap();
            vm.on_log(stream).unwrap();
            vm.finish_stream(stream).unwrap();
        })
    });
    c.bench_function("instantiate a VM replica + start plugin", |b| {
        let module = vm.module().clone();
        b.iter(|| {
            let services = Arc::new(Services::default());
            let mut replica =
                Vm::new(&module, VmConfig::default(), services, &Limits::default()).unwrap();
            replica
                .start_plugin(PluginConfig {
                    name: "add-header".into(),
                    ..Default::default()
                })
                .unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
