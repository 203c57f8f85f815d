//! gRPC callouts end to end on real sockets: the probe filter pauses a request, calls an h2c
//! gRPC server started by the test on 127.0.0.1, and logs what comes back. Unary echo, a
//! failure status with its message, a bidirectional stream (metadata, two messages each way,
//! trailers, close), a timeout, a dead endpoint, and a cancel after which nothing arrives.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

#[path = "support/grpc_server.rs"]
mod grpc_server;

#[path = "support/modules.rs"]
mod modules;
use modules::engine;

use pwx_abi::LogLevel;
use pwx_host::{MemoryLog, PluginConfig, Services, VmConfig};
use pwx_proxy::{ClusterConfig, FilterConfig, Proxy, ProxyConfig, UpstreamConfig};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn probe(script: &str) -> FilterConfig {
    let path = format!(
        "{}/../../target/fixtures/probe.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    let wasm = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}; run scripts/build-fixtures.sh first"));
    FilterConfig {
        wasm,
        source: "probe".into(),
        plugin: PluginConfig {
            name: "probe".into(),
            configuration: script.into(),
            ..Default::default()
        },
        vm: VmConfig {
            vm_id: "probe".into(),
            ..Default::default()
        },
    }
}

struct Setup {
    proxy: Proxy,
    log: Arc<MemoryLog>,
}

/// A proxy with the probe and one cluster, `grpc`, at `endpoint`.
fn start(script: &str, endpoint: SocketAddr) -> Setup {
    let log = Arc::new(MemoryLog::with_level(LogLevel::Trace));
    let mut services = Services::new(log.clone());
    services.clusters = Arc::new(HashSet::from(["grpc".to_string()]));
    let mut config = ProxyConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![probe(script)],
        UpstreamConfig::Echo,
    );
    config
        .clusters
        .push(ClusterConfig::single("grpc", endpoint.to_string()));
    let proxy = Proxy::start(config, engine(), Arc::new(services)).unwrap();
    Setup { proxy, log }
}

/// Sends one HTTP/1.1 GET; returns (status, body).
fn get(addr: SocketAddr) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /resource HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// The probe's lines that contain `needle`.
fn lines(log: &MemoryLog, needle: &str) -> Vec<String> {
    log.messages()
        .into_iter()
        .filter(|m| m.contains(needle))
        .collect()
}

/// Pause the request, start `op`; a message resumes it, a close answers 503.
fn unary_script(op: &str) -> String {
    format!(
        r#"{{"on_request_headers": {{"ops": [{op}], "ret": "pause"}},
            "on_grpc_receive": [{{"op": "get_buffer_bytes", "buffer": "grpc_receive_buffer"}},
                                {{"op": "continue_stream", "stream": "request"}}],
            "on_grpc_close": [{{"op": "get_status"}},
                              {{"op": "send_local_response", "status": 503, "body": "grpc failed\n"}}]}}"#
    )
}

#[test]
fn a_unary_call_round_trips_over_h2c() {
    let server = grpc_server::start();
    let setup = start(
        &unary_script(
            r#"{"op": "grpc_call", "cluster": "grpc", "method": "Unary", "message": "hello",
                "metadata": [["x-md", "1"], ["x-key-bin", "\u0001\u0002"]], "timeout_ms": 5000}"#,
        ),
        server.addr,
    );
    let (status, body) = get(setup.proxy.local_addr().unwrap());
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        lines(&setup.log, "on_grpc_receive ctx="),
        ["probe on_grpc_receive ctx=2 token=5 size=10"]
    );
    assert_eq!(
        lines(&setup.log, "get_buffer_bytes").len(),
        1,
        "{:?}",
        setup.log.messages()
    );
    assert!(
        lines(&setup.log, "get_buffer_bytes")[0].ends_with(r#"-> status=0 value="echo:hello""#)
    );
    assert!(lines(&setup.log, "on_grpc_close").is_empty());
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.path, "/probe.Echo/Unary");
    assert_eq!(request.header(":authority"), Some("grpc"));
    assert_eq!(request.header("content-type"), Some("application/grpc"));
    assert_eq!(request.header("te"), Some("trailers"));
    assert_eq!(request.header("grpc-timeout"), Some("5000m"));
    assert_eq!(request.header("x-md"), Some("1"));
    assert_eq!(request.header("x-key-bin"), Some("AQI="));
    assert_eq!(request.header("x-envoy-internal"), Some("true"));
    assert_eq!(
        request.header("x-envoy-expected-rq-timeout-ms"),
        Some("5000")
    );
    setup.proxy.shutdown();
}

#[test]
fn a_failure_status_arrives_at_on_grpc_close_with_its_message() {
    let server = grpc_server::start();
    let setup = start(
        &unary_script(r#"{"op": "grpc_call", "cluster": "grpc", "method": "Fail"}"#),
        server.addr,
    );
    let (status, body) = get(setup.proxy.local_addr().unwrap());
    assert_eq!((status, body.as_str()), (503, "grpc failed\n"));
    assert_eq!(
        lines(&setup.log, "on_grpc_close ctx="),
        ["probe on_grpc_close ctx=2 token=5 status=5"]
    );
    let get_status = lines(&setup.log, "get_status");
    assert!(
        get_status[0]
            .ends_with(r#"-> status=0 value=code=5,message="no such thing{via_upstream}""#),
        "{get_status:?}"
    );
    setup.proxy.shutdown();
}

#[test]
fn a_bidi_stream_carries_metadata_and_messages_both_ways() {
    let server = grpc_server::start();
    let script = r#"{
        "on_request_headers": {"ops": [
            {"op": "grpc_stream", "cluster": "grpc", "method": "Bidi", "metadata": [["x-md", "s"]], "save": "s"},
            {"op": "grpc_send", "token": "s", "message": "one"},
            {"op": "grpc_send", "token": "s", "message": "two"}], "ret": "pause"},
        "on_grpc_receive_initial_metadata": [
            {"op": "get_header_map_value", "map": "grpc_receive_initial_metadata", "key": "x-server"}],
        "on_grpc_receive": [{"op": "get_buffer_bytes", "buffer": "grpc_receive_buffer"}],
        "on_grpc_receive#2": [{"op": "get_buffer_bytes", "buffer": "grpc_receive_buffer"},
                              {"op": "grpc_close", "token": "s"}],
        "on_grpc_receive_trailing_metadata": [
            {"op": "get_header_map_value", "map": "grpc_receive_trailing_metadata", "key": "x-trailer"}],
        "on_grpc_close": [{"op": "get_status"}, {"op": "continue_stream", "stream": "request"}]}"#;
    let setup = start(script, server.addr);
    let (status, body) = get(setup.proxy.local_addr().unwrap());
    assert_eq!(status, 200, "{body}");
    let grpc_lines: Vec<String> = setup
        .log
        .messages()
        .into_iter()
        .filter(|m| m.contains("grpc") && !m.contains("on_request_headers"))
        .collect();
    let entries: Vec<&str> = grpc_lines
        .iter()
        .map(|l| l.split_once(" -> ").map_or(l.as_str(), |(_, r)| r))
        .collect();
    assert_eq!(
        entries,
        [
            "probe on_grpc_receive_initial_metadata ctx=2 token=6 headers=4",
            "status=0 value=\"bidi\"",
            "probe on_grpc_receive ctx=2 token=6 size=8",
            "status=0 value=\"echo:one\"",
            "probe on_grpc_receive ctx=2 token=6 size=8",
            "status=0 value=\"echo:two\"",
            "status=0",
            "probe on_grpc_receive_trailing_metadata ctx=2 token=6 trailers=2",
            "status=0 value=\"done\"",
            "probe on_grpc_close ctx=2 token=6 status=0",
            "status=0 value=code=0,message=\"via_upstream\"",
            "status=0",
        ],
        "{grpc_lines:#?}"
    );
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen[0].path, "/probe.Echo/Bidi");
    assert_eq!(seen[0].header("x-md"), Some("s"));
    assert_eq!(seen[0].header("grpc-timeout"), None);
    setup.proxy.shutdown();
}

#[test]
fn a_call_past_its_timeout_closes_with_envoys_status() {
    let server = grpc_server::start();
    let setup = start(
        &unary_script(
            r#"{"op": "grpc_call", "cluster": "grpc", "method": "Slow", "timeout_ms": 200}"#,
        ),
        server.addr,
    );
    let started = Instant::now();
    let (status, _) = get(setup.proxy.local_addr().unwrap());
    assert_eq!(status, 503);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the timeout fired"
    );
    assert_eq!(
        lines(&setup.log, "on_grpc_close ctx="),
        ["probe on_grpc_close ctx=2 token=5 status=14"]
    );
    let get_status = lines(&setup.log, "get_status");
    assert!(
        get_status[0]
            .ends_with(r#"value=code=14,message="upstream request timeout{response_timeout}""#),
        "{get_status:?}"
    );
    setup.proxy.shutdown();
}

#[test]
fn a_dead_endpoint_is_unavailable() {
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let setup = start(
        &unary_script(r#"{"op": "grpc_call", "cluster": "grpc", "method": "Unary"}"#),
        dead,
    );
    let (status, _) = get(setup.proxy.local_addr().unwrap());
    assert_eq!(status, 503);
    assert_eq!(
        lines(&setup.log, "on_grpc_close ctx="),
        ["probe on_grpc_close ctx=2 token=5 status=14"]
    );
    let get_status = lines(&setup.log, "get_status");
    assert!(
        get_status[0].ends_with(
            "code=14,message=\"upstream connect error or disconnect/reset before headers. \
             reset reason: remote connection failure{upstream_reset_before_response_started\
             {remote_connection_failure|delayed_connect_error:_Connection_refused}}\""
        ),
        "{get_status:?}"
    );
    setup.proxy.shutdown();
}

#[test]
fn nothing_arrives_after_cancel() {
    let server = grpc_server::start();
    let script = r#"{
        "on_request_headers": {"ops": [
            {"op": "grpc_stream", "cluster": "grpc", "method": "Ticker", "save": "s"}], "ret": "pause"},
        "on_grpc_receive": [{"op": "grpc_cancel", "token": "s"},
                            {"op": "grpc_cancel", "token": "s"},
                            {"op": "set_effective_context", "context": "root"},
                            {"op": "set_tick_period", "ms": 300}],
        "on_tick": [{"op": "set_tick_period", "ms": 0},
                    {"op": "set_effective_context", "context": "stream"},
                    {"op": "continue_stream", "stream": "request"}]}"#;
    let setup = start(script, server.addr);
    let (status, body) = get(setup.proxy.local_addr().unwrap());
    assert_eq!(status, 200, "{body}");
    // Six ticks were sent in the 300 ms; only the first reached the filter.
    assert_eq!(lines(&setup.log, "on_grpc_receive ctx=").len(), 1);
    assert!(lines(&setup.log, "on_grpc_close").is_empty());
    assert!(lines(&setup.log, "on_grpc_receive_trailing").is_empty());
    let cancels = lines(&setup.log, "grpc_cancel");
    assert!(cancels[0].ends_with("-> status=0"), "{cancels:?}");
    assert!(cancels[1].ends_with("-> status=1"), "{cancels:?}");
    setup.proxy.shutdown();
}
