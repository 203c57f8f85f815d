//! Loading and linking: ABI detection, exactly Envoy's import set per version, signature
//! checks, allocator and start-up rules, and the compile cache.
#![allow(clippy::unwrap_used)] // test code

mod support;

use pwx_abi::AbiVersion;
use pwx_host::{LoadError, StartError};

fn module(marker: &str, imports: &str, exports: &str) -> String {
    format!(
        r#"(module {imports}
  (memory (export "memory") 1)
  (func (export "{marker}"))
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  {exports})"#
    )
}

fn load(wat: &str) -> Result<pwx_host::Module, LoadError> {
    support::load_wat(wat)
}

#[test]
fn detects_each_abi_version() {
    for version in AbiVersion::ALL {
        let loaded = load(&module(version.marker(), "", "")).unwrap();
        assert_eq!(loaded.abi_version(), version);
    }
}

#[test]
fn a_module_without_marker_is_refused() {
    let error = load(&module("proxy_abi_version_0_x_x", "", "")).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("proxy_abi_version_0_x_x"), "{message}");
    assert!(message.contains("0.1.0, 0.2.0 or 0.2.1"), "{message}");
}

#[test]
fn an_unknown_import_is_named_with_what_to_do() {
    let imports = r#"(import "env" "proxy_frobnicate" (func (param i32) (result i32)))"#;
    let message = load(&module("proxy_abi_version_0_2_1", imports, ""))
        .unwrap_err()
        .to_string();
    assert!(message.contains("env.proxy_frobnicate"), "{message}");
    assert!(
        message.contains("neither Envoy nor pwx provides"),
        "{message}"
    );
}

#[test]
fn imports_of_another_abi_version_are_refused_as_envoy_does() {
    // 0.2.0 lacks proxy_get_log_level; 0.2.x lacks the 0.1.0-only calls.
    let log_level = r#"(import "env" "proxy_get_log_level" (func (param i32) (result i32)))"#;
    let message = load(&module("proxy_abi_version_0_2_0", log_level, ""))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("env.proxy_get_log_level") && message.contains("ABI 0.2.1"),
        "{message}"
    );
    assert!(load(&module("proxy_abi_version_0_2_1", log_level, "")).is_ok());

    let get_configuration =
        r#"(import "env" "proxy_get_configuration" (func (param i32 i32) (result i32)))"#;
    let message = load(&module("proxy_abi_version_0_2_1", get_configuration, ""))
        .unwrap_err()
        .to_string();
    assert!(message.contains("exists only in ABI 0.1.0"), "{message}");
    assert!(load(&module("proxy_abi_version_0_1_0", get_configuration, "")).is_ok());
}

#[test]
fn an_import_with_the_wrong_signature_is_refused() {
    let imports = r#"(import "env" "proxy_log" (func (param i32 i32) (result i32)))"#;
    let error = load(&module("proxy_abi_version_0_2_1", imports, "")).unwrap_err();
    assert!(
        matches!(error, LoadError::ImportSignature { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("(i32, i32, i32) -> (i32)"),
        "{error}"
    );
}

#[test]
fn a_callback_with_the_wrong_signature_is_refused() {
    let wrong =
        r#"(func (export "proxy_on_request_headers") (param i32 i32) (result i32) (i32.const 0))"#;
    let error = load(&module("proxy_abi_version_0_2_1", "", wrong)).unwrap_err();
    assert!(
        matches!(error, LoadError::ExportSignature { .. }),
        "{error}"
    );
    // The same two-argument form is right for 0.1.0.
    assert!(load(&module("proxy_abi_version_0_1_0", "", wrong)).is_ok());
}

#[test]
fn a_module_without_allocator_is_refused() {
    let wat = r#"(module (memory (export "memory") 1) (func (export "proxy_abi_version_0_2_1")))"#;
    assert!(matches!(
        load(wat).unwrap_err(),
        LoadError::MissingAllocator
    ));
}

#[test]
fn wasi_is_linked_under_both_module_names() {
    let imports = r#"
      (import "wasi_unstable" "proc_exit" (func (param i32)))
      (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "path_link" (func (param i32 i32 i32 i32 i32 i32 i32) (result i32)))"#;
    assert!(load(&module("proxy_abi_version_0_2_1", imports, "")).is_ok());
}

#[test]
fn start_up_runs_initialize_then_main_and_restricts_imports() {
    let imports = r#"(import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
        (import "env" "proxy_set_tick_period_milliseconds" (func $tick (param i32) (result i32)))"#;
    let ok = module(
        "proxy_abi_version_0_2_1",
        imports,
        r#"(func (export "_initialize") (drop (call $log (i32.const 2) (i32.const 0) (i32.const 4))))
           (func (export "main") (param i32 i32) (result i32) (drop (call $log (i32.const 2) (i32.const 4) (i32.const 4))) (i32.const 0))
           (data (i32.const 0) "initmain")"#,
    );
    let loaded = load(&ok).unwrap();
    let t = support::vm(&loaded);
    assert_eq!(t.log.messages(), ["init", "main"]);

    let restricted = module(
        "proxy_abi_version_0_2_1",
        imports,
        r#"(func (export "_initialize") (drop (call $tick (i32.const 10))))"#,
    );
    let loaded = load(&restricted).unwrap();
    let services = std::sync::Arc::new(pwx_host::Services::default());
    let error = pwx_host::Vm::new(
        &loaded,
        Default::default(),
        services,
        &support::test_limits(),
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            StartError::Startup {
                function: "_initialize",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("restricted_callback"), "{error}");
}

#[test]
fn start_runs_only_without_initialize() {
    let imports = r#"(import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))"#;
    let command = module(
        "proxy_abi_version_0_2_0",
        imports,
        r#"(func (export "_start") (drop (call $log (i32.const 2) (i32.const 0) (i32.const 5))))
           (data (i32.const 0) "start")"#,
    );
    let t = support::vm(&load(&command).unwrap());
    assert_eq!(t.log.messages(), ["start"]);
}

#[test]
fn the_compile_cache_serves_a_second_load() {
    let dir = tempfile::tempdir().unwrap();
    let config = pwx_host::EngineConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        pooling: None,
        ..Default::default()
    };
    let engine = pwx_host::Engine::new(&config).unwrap();
    let bytes = wat::parse_str(module("proxy_abi_version_0_2_1", "", "")).unwrap();
    let first = engine.load(&bytes).unwrap();
    assert!(!first.from_cache());
    let second = engine.load(&bytes).unwrap();
    assert!(second.from_cache());
    assert_eq!(first.sha256(), second.sha256());
    // A damaged entry is dropped and the module recompiled.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    assert!(!engine.load(&bytes).unwrap().from_cache());
}

#[test]
fn a_module_shaped_like_the_go_sdk_starts() {
    // The Go 1.24 SDK (marker 0.2.0, `_initialize`, `proxy_on_memory_allocate`) needs these WASI
    // calls to succeed or fail as Envoy answers them while its runtime starts.
    let imports = r#"
      (import "wasi_snapshot_preview1" "sched_yield" (func $yield (result i32)))
      (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $fdstat (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
      (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env_sizes (param i32 i32) (result i32)))
      (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))"#;
    let exports = r#"
      (func $expect (param $got i32) (param $want i32)
        (if (i32.ne (local.get $got) (local.get $want)) (then unreachable)))
      (func (export "_initialize")
        (call $expect (call $yield) (i32.const 0))
        (call $expect (call $poll (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 100)) (i32.const 0))
        (call $expect (call $prestat (i32.const 3) (i32.const 100)) (i32.const 8))
        (call $expect (call $fdstat (i32.const 1) (i32.const 100)) (i32.const 0))
        (call $expect (call $clock (i32.const 1) (i64.const 1) (i32.const 200)) (i32.const 0))
        (call $expect (call $random (i32.const 300) (i32.const 16)) (i32.const 0))
        (call $expect (call $random (i32.const 300) (i32.const 65537)) (i32.const 28))
        (call $expect (call $env_sizes (i32.const 400) (i32.const 404)) (i32.const 0))
        (call $expect (i32.load (i32.const 400)) (i32.const 1))
        (drop (call $log (i32.const 2) (i32.const 500) (i32.const 7))))
      (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 2048))
      (data (i32.const 500) "started")"#;
    let wat = format!(
        r#"(module {imports}
  (memory (export "memory") 2)
  (func (export "proxy_abi_version_0_2_0"))
  {exports})"#
    );
    let module = load(&wat).unwrap();
    assert_eq!(module.abi_version(), AbiVersion::V0_2_0);
    let config = pwx_host::VmConfig {
        environment: vec![("GOGC".into(), "off".into())],
        ..Default::default()
    };
    let t = support::vm_with(&module, config, &support::test_limits());
    assert_eq!(t.log.messages(), ["started"]);
}

#[test]
fn several_plugins_share_one_vm_each_with_its_own_root() {
    let imports = r#"(import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
        (import "env" "proxy_get_property" (func $prop (param i32 i32 i32 i32) (result i32)))"#;
    // Each root logs its plugin_root_id during creation and "configure" in on_configure.
    let exports = r#"
      (func (export "proxy_on_context_create") (param $id i32) (param $parent i32)
        (if (i32.eqz (local.get $parent)) (then
          (if (call $prop (i32.const 0) (i32.const 14) (i32.const 100) (i32.const 104)) (then unreachable))
          (drop (call $log (i32.const 2) (i32.load (i32.const 100)) (i32.load (i32.const 104)))))))
      (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
      (func (export "proxy_on_configure") (param i32 i32) (result i32)
        (drop (call $log (i32.const 2) (i32.const 16) (i32.const 9))) (i32.const 1))
      (data (i32.const 0) "plugin_root_id")
      (data (i32.const 16) "configure")"#;
    let wat = format!(
        r#"(module {imports}
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap)) (global.set $heap (i32.add (global.get $heap) (local.get $n))) (local.get $p))
  (func (export "proxy_abi_version_0_2_1"))
  {exports})"#
    );
    let module = load(&wat).unwrap();
    let mut t = support::vm(&module);
    let mut first = support::plugin("first", "");
    first.root_id = "alpha".into();
    let mut second = support::plugin("second", "");
    second.root_id = "beta".into();
    let a = t.vm.start_plugin(first).unwrap();
    let b = t.vm.start_plugin(second).unwrap();
    assert_ne!(a, b);
    assert_eq!(
        t.log.messages(),
        ["alpha", "configure", "beta", "configure"]
    );
    assert!(t.vm.shutdown_plugin(a).unwrap());
    assert_eq!(t.vm.context_count(), 1);
}
