//! Real modules built from source by `scripts/build-fixtures.sh`: the Rust SDK 0.2.5, the
//! AssemblyScript proxy-runtime (ABI 0.2.0) and a C module shaped like the C++ SDK's all run;
//! a misbehaving filter gets its failure policy while other VMs keep serving.
#![allow(clippy::unwrap_used)] // test code

mod support;

use pwx_abi::{AbiVersion, FailurePolicy};
use pwx_host::failure::{FailureAction, stream_action};
use pwx_host::{Direction, Flow, HeaderMap, StartError, StreamInfo};
use std::time::{Duration, Instant};

fn request(extra: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::from_pairs([
        (":method", "GET"),
        (":path", "/"),
        (":authority", "example"),
        (":scheme", "http"),
    ]);
    for (k, v) in extra {
        headers.add(k.as_bytes(), v.as_bytes());
    }
    headers
}

fn response() -> HeaderMap {
    HeaderMap::from_pairs([(":status", "200"), ("content-type", "text/plain")])
}

/// Runs one header-only request and response through a fresh VM of `fixture`.
fn roundtrip(fixture: &'static str, configuration: &str) -> (HeaderMap, HeaderMap, Vec<String>) {
    let module = support::fixture_module(fixture);
    let mut t = support::vm(&module);
    let root =
        t.vm.start_plugin(support::plugin(fixture, configuration))
            .unwrap();
    let stream = t.vm.create_stream(root, StreamInfo::default()).unwrap();
    let Flow::Continue(upstream) =
        t.vm.on_headers(stream, Direction::Request, request(&[]), true)
            .unwrap()
            .flow
    else {
        panic!("{fixture}: request headers stopped")
    };
    let Flow::Continue(downstream) =
        t.vm.on_headers(stream, Direction::Response, response(), true)
            .unwrap()
            .flow
    else {
        panic!("{fixture}: response headers stopped")
    };
    t.vm.on_log(stream).unwrap();
    t.vm.finish_stream(stream).unwrap();
    assert_eq!(
        t.vm.context_count(),
        1,
        "{fixture}: only the root context is left"
    );
    (upstream, downstream, t.log.messages())
}

#[test]
fn rust_sdk_filter_adds_its_headers() {
    let module = support::fixture_module("add-header");
    assert_eq!(module.abi_version(), AbiVersion::V0_2_1);
    let (upstream, downstream, _) = roundtrip("add-header", "");
    assert_eq!(upstream.get_str("x-my-custom-header"), Some("hello world"));
    assert_eq!(downstream.get_str("x-wasm-custom"), Some("foo"));
}

#[test]
fn rust_sdk_filter_reads_its_configuration() {
    let config = r#"{"request_headers":{"x-a":"1"},"response_headers":{"x-b":"2"}}"#;
    let (upstream, downstream, _) = roundtrip("add-header", config);
    assert_eq!(upstream.get_str("x-a"), Some("1"));
    assert_eq!(downstream.get_str("x-b"), Some("2"));
    assert_eq!(downstream.get_str("x-wasm-custom"), None);
}

#[test]
fn bad_configuration_is_rejected_with_the_filters_reason() {
    let module = support::fixture_module("add-header");
    let mut t = support::vm(&module);
    let error =
        t.vm.start_plugin(support::plugin("add-header", r#"{"bogus":1}"#))
            .unwrap_err();
    assert!(
        matches!(error, StartError::ConfigureRejected { .. }),
        "{error}"
    );
    assert!(
        t.log.messages().iter().any(|m| m.contains("bogus")),
        "{:?}",
        t.log.messages()
    );
}

#[test]
fn assemblyscript_filter_runs() {
    let module = support::fixture_module("as-add-header");
    assert_eq!(module.abi_version(), AbiVersion::V0_2_0);
    let (_, downstream, _) = roundtrip("as-add-header", "");
    assert!(
        downstream.len() > response().len(),
        "the AssemblyScript filter added a response header: {downstream:?}"
    );
}

#[test]
fn c_filter_shaped_like_the_cpp_sdk_runs() {
    let module = support::fixture_module("c-add-header");
    assert_eq!(module.abi_version(), AbiVersion::V0_2_1);
    let (_, downstream, _) = roundtrip("c-add-header", "");
    assert_eq!(downstream.get_str("x-wasm-custom"), Some("foo"));
}

/// A request that makes the misbehave fixture do `mode`.
fn misbehave(
    mode: &str,
) -> (
    support::TestVm,
    u32,
    Result<pwx_host::Step<HeaderMap>, pwx_host::VmFailed>,
) {
    let module = support::fixture_module("misbehave");
    let mut t = support::vm(&module);
    let root = t.vm.start_plugin(support::plugin("misbehave", "")).unwrap();
    let stream = t.vm.create_stream(root, StreamInfo::default()).unwrap();
    let result = t.vm.on_headers(
        stream,
        Direction::Request,
        request(&[("x-misbehave", mode)]),
        true,
    );
    (t, root, result)
}

#[test]
fn a_trap_fails_the_vm_and_only_that_vm() {
    let (mut t, root, result) = misbehave("trap-request_headers");
    let failure = result.unwrap_err();
    assert!(
        failure.reason.contains("proxy_on_request_headers"),
        "{}",
        failure.reason
    );
    // No further calls go into the failed VM.
    let stream = t.vm.create_stream(root, StreamInfo::default()).unwrap();
    assert!(
        t.vm.on_headers(stream, Direction::Request, request(&[]), true)
            .is_err()
    );
    assert_eq!(
        stream_action(FailurePolicy::Unspecified),
        FailureAction::Reply(pwx_host::failure::fail_closed_reply())
    );
    // Another replica of the same module keeps serving.
    let (_, downstream, _) = roundtrip("misbehave", "");
    assert_eq!(downstream.get_str("x-misbehave"), Some("none"));
}

#[test]
fn a_panic_is_logged_then_fails_the_vm() {
    let (t, _, result) = misbehave("panic-request_headers");
    assert!(result.is_err());
    let logs = t.log.take();
    assert!(
        logs.iter().any(|l| l.level == pwx_abi::LogLevel::Critical && l.message.contains("asked to panic")),
        "{logs:?}"
    );
}

#[test]
fn an_endless_loop_hits_the_deadline() {
    let started = Instant::now();
    let (_, _, result) = misbehave("loop-request_headers");
    let failure = result.unwrap_err();
    assert!(failure.reason.contains("deadline"), "{}", failure.reason);
    // Deadline 200 ms in the tests; generous bound for a loaded machine.
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn memory_growth_stops_at_the_cap() {
    let (t, _, result) = misbehave("grow");
    assert!(matches!(result.unwrap().flow, Flow::Continue(_)));
    let cap = support::test_limits().max_memory_bytes;
    assert!(
        t.vm.memory_bytes() <= cap,
        "memory {} > cap {cap}",
        t.vm.memory_bytes()
    );
    assert!(
        t.log
            .messages()
            .iter()
            .any(|m| m.contains("allocation failed after")),
        "{:?}",
        t.log.messages()
    );
}

#[test]
fn a_bad_pointer_gets_invalid_memory_access() {
    let (t, _, result) = misbehave("bad-pointer");
    assert!(result.is_ok());
    assert!(
        t.log
            .messages()
            .iter()
            .any(|m| m.contains("returned status 6")),
        "{:?}",
        t.log.messages()
    );
}

#[test]
fn start_up_failures_name_the_callback() {
    let module = support::fixture_module("misbehave");
    let mut t = support::vm(&module);
    let error =
        t.vm.start_plugin(support::plugin("misbehave", "reject"))
            .unwrap_err();
    assert!(
        matches!(error, StartError::ConfigureRejected { .. }),
        "{error}"
    );
    let mut t = support::vm(&module);
    let error =
        t.vm.start_plugin(support::plugin("misbehave", "trap"))
            .unwrap_err();
    assert!(
        matches!(
            error,
            StartError::Failed {
                callback: "proxy_on_configure",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn many_streams_leave_no_contexts_behind() {
    let module = support::fixture_module("add-header");
    let mut t = support::vm(&module);
    let root =
        t.vm.start_plugin(support::plugin("add-header", ""))
            .unwrap();
    let before = t.vm.memory_bytes();
    for _ in 0..2000 {
        let stream = t.vm.create_stream(root, StreamInfo::default()).unwrap();
        t.vm.on_headers(stream, Direction::Request, request(&[]), true)
            .unwrap();
        t.vm.on_headers(stream, Direction::Response, response(), true)
            .unwrap();
        t.vm.on_log(stream).unwrap();
        t.vm.finish_stream(stream).unwrap();
    }
    assert_eq!(t.vm.context_count(), 1);
    assert!(
        t.vm.memory_bytes() <= before + (1 << 20),
        "memory grew from {before} to {}",
        t.vm.memory_bytes()
    );
}

/// The probe's log lines for one header-only request with `on_request_headers` ops.
fn probe_lines(ops: &str) -> Vec<String> {
    let script = format!(r#"{{"trace": false, "on_request_headers": {ops}}}"#);
    let module = support::fixture_module("probe");
    let mut t = support::vm(&module);
    let root =
        t.vm.start_plugin(support::plugin("probe", &script))
            .unwrap();
    let stream = t.vm.create_stream(root, StreamInfo::default()).unwrap();
    t.vm.on_headers(stream, Direction::Request, request(&[]), true)
        .unwrap();
    t.log.messages()
}

#[test]
fn foreign_functions_answer_as_envoy_does() {
    // Expected lines are Envoy 1.40's, from conformance/cases/foreign/*.golden.json.
    let lines = probe_lines(
        r#"[{"op": "call_foreign_function", "name": "compress", "args": "hello hello hello hello", "as": "hex"},
            {"op": "call_foreign_function", "name": "uncompress", "args": "not zlib"},
            {"op": "call_foreign_function", "name": "clear_route_cache", "args": ""},
            {"op": "call_foreign_function", "name": "set_envoy_filter_state", "args_hex": "0a036e6f70120178"},
            {"op": "call_foreign_function", "name": "set_envoy_filter_state", "args_hex": "ff"},
            {"op": "call_foreign_function", "name": "declare_property", "args_hex": "ffffffff"},
            {"op": "call_foreign_function", "name": "no_such_function", "args": ""}]"#,
    );
    let results: Vec<&str> = lines
        .iter()
        .map(|l| l.rsplit_once(" -> ").unwrap().1)
        .collect();
    assert_eq!(
        results,
        [
            "status=0 value=hex:789ccb48cdc9c957c8402701680308b1",
            "status=3",
            "status=0 value=\"\"",
            "status=1",
            "status=2",
            "status=2",
            "status=1",
        ]
    );
    // What compress produced, uncompress gives back.
    let lines = probe_lines(
        r#"[{"op": "call_foreign_function", "name": "uncompress", "args_hex": "789ccb48cdc9c957c8402701680308b1"}]"#,
    );
    assert!(
        lines[0].ends_with("-> status=0 value=\"hello hello hello hello\""),
        "{lines:?}"
    );
}
