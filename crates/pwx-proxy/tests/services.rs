//! The host services end to end through the data plane, on real sockets: HTTP callouts that
//! pause and then resume or answer a stream, callout failures as Envoy reports them, timers,
//! shared-data compare-and-swap under concurrent load on several workers, a shared queue
//! crossing workers, filter metrics on the admin endpoint, and h2c downstream.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

#[path = "support/modules.rs"]
mod modules;
use modules::{engine, fixture};

use pwx_abi::LogLevel;
use pwx_host::{MemoryLog, PluginConfig, Services, VmConfig};
use pwx_proxy::{ClusterConfig, FilterConfig, Proxy, ProxyConfig, UpstreamConfig};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn filter(name: &str, configuration: &str) -> FilterConfig {
    FilterConfig {
        wasm: fixture(name),
        source: name.into(),
        plugin: PluginConfig {
            name: name.into(),
            configuration: configuration.into(),
            ..Default::default()
        },
        vm: VmConfig {
            vm_id: name.into(),
            ..Default::default()
        },
    }
}

/// A one-response-per-connection HTTP/1.1 server answering every request with `response`
/// (raw bytes after reading the request head); returns its address.
fn fixed_server(response: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if line == "\r\n" {
                        break;
                    }
                    line.clear();
                }
                let _ = stream.write_all(response.as_bytes());
            });
        }
    });
    addr
}

/// A port nothing listens on.
fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

struct Setup {
    proxy: Proxy,
    log: Arc<MemoryLog>,
    services: Arc<Services>,
}

fn start(filters: Vec<FilterConfig>, workers: usize, clusters: Vec<ClusterConfig>) -> Setup {
    let log = Arc::new(MemoryLog::with_level(LogLevel::Trace));
    let mut config = ProxyConfig {
        workers,
        admin: Some("127.0.0.1:0".parse().unwrap()),
        ..ProxyConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            filters,
            UpstreamConfig::Echo,
        )
    };
    config.clusters.extend(clusters);
    let mut services = Services::new(log.clone());
    services.clusters = Arc::new(
        config
            .clusters
            .iter()
            .map(|c| c.name.clone())
            .collect::<HashSet<_>>(),
    );
    let services = Arc::new(services);
    let proxy = Proxy::start(config, engine(), services.clone()).unwrap();
    Setup {
        proxy,
        log,
        services,
    }
}

/// Sends one HTTP/1.1 GET and returns (status, raw head, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn logged(log: &MemoryLog, needle: &str) -> bool {
    log.messages().iter().any(|m| m.contains(needle))
}

const AUTH_CALL: &str = r#"{"op": "http_call", "cluster": "auth",
    "headers": [[":method", "GET"], [":path", "/check"], [":authority", "auth"]]}"#;

fn auth_probe(on_response: &str) -> String {
    format!(
        r#"{{"trace": true,
            "on_request_headers": {{"ops": [{AUTH_CALL}], "ret": "pause"}},
            "on_http_call_response": [
                {{"op": "get_header_map_value", "map": "http_call_response_headers", "key": ":status"}},
                {{"op": "get_buffer_bytes", "buffer": "http_call_response_body"}},
                {on_response}
            ]}}"#
    )
}

#[test]
fn a_callout_pauses_the_request_and_its_response_resumes_it() {
    let auth =
        fixed_server("HTTP/1.1 200 OK\r\ncontent-length: 7\r\nconnection: close\r\n\r\nallowed");
    let setup = start(
        vec![filter(
            "probe",
            &auth_probe(r#"{"op": "continue_stream", "stream": "request"}"#),
        )],
        1,
        vec![ClusterConfig::single("auth", auth.to_string())],
    );
    let (status, _, body) = get(setup.proxy.local_addr().unwrap(), "/resource");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"path\": \"/resource\""), "{body}");
    assert!(logged(&setup.log, r#"-> status=0 value="200""#));
    assert!(logged(&setup.log, r#"-> status=0 value="allowed""#));
    setup.proxy.shutdown();
}

#[test]
fn a_callout_response_can_deny_the_request_with_a_local_reply() {
    let auth =
        fixed_server("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let setup = start(
        vec![filter(
            "probe",
            &auth_probe(
                r#"{"op": "send_local_response", "status": 403, "body": "denied by auth\n"}"#,
            ),
        )],
        1,
        vec![ClusterConfig::single("auth", auth.to_string())],
    );
    let (status, _, body) = get(setup.proxy.local_addr().unwrap(), "/resource");
    assert_eq!(status, 403);
    assert_eq!(body, "denied by auth\n");
    assert!(logged(&setup.log, r#"-> status=0 value="403""#));
    setup.proxy.shutdown();
}

#[test]
fn a_callout_to_a_dead_endpoint_arrives_as_envoys_503() {
    let setup = start(
        vec![filter(
            "probe",
            &auth_probe(r#"{"op": "continue_stream", "stream": "request"}"#),
        )],
        1,
        vec![ClusterConfig::single("auth", closed_port().to_string())],
    );
    let (status, _, _) = get(setup.proxy.local_addr().unwrap(), "/resource");
    assert_eq!(status, 200);
    assert!(logged(&setup.log, r#"-> status=0 value="503""#));
    assert!(logged(
        &setup.log,
        "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
    ));
    setup.proxy.shutdown();
}

#[test]
fn a_callout_past_its_timeout_arrives_as_envoys_504() {
    // Accepts and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let script = r#"{"on_request_headers": {"ops": [{"op": "http_call", "cluster": "auth", "timeout_ms": 200,
            "headers": [[":method", "GET"], [":path", "/slow"], [":authority", "auth"]]}], "ret": "pause"},
        "on_http_call_response": [
            {"op": "get_header_map_value", "map": "http_call_response_headers", "key": ":status"},
            {"op": "continue_stream", "stream": "request"}]}"#;
    let setup = start(
        vec![filter("probe", script)],
        1,
        vec![ClusterConfig::single("auth", addr.to_string())],
    );
    let (status, _, _) = get(setup.proxy.local_addr().unwrap(), "/x");
    assert_eq!(status, 200);
    assert!(logged(&setup.log, r#"-> status=0 value="504""#));
    drop(silent);
    setup.proxy.shutdown();
}

#[test]
fn an_unknown_cluster_is_refused_synchronously_with_bad_argument() {
    let script = r#"{"on_request_headers": [{"op": "http_call", "cluster": "nowhere",
            "headers": [[":method", "GET"], [":path", "/"], [":authority", "x"]]}],
        "on_http_call_response": []}"#;
    let setup = start(vec![filter("probe", script)], 1, Vec::new());
    let (status, _, _) = get(setup.proxy.local_addr().unwrap(), "/x");
    assert_eq!(status, 200);
    assert!(
        logged(&setup.log, "-> status=2"),
        "{:?}",
        setup.log.messages()
    );
    setup.proxy.shutdown();
}

#[test]
fn a_tick_resumes_a_paused_stream_and_period_zero_stops_the_timer() {
    let script = r#"{
        "on_request_headers": {"ops": [{"op": "set_tick_period", "ms": 30}], "ret": "pause"},
        "on_tick": [{"op": "set_tick_period", "ms": 0},
                    {"op": "set_effective_context", "context": "stream"},
                    {"op": "continue_stream", "stream": "request"}]}"#;
    let setup = start(vec![filter("probe", script)], 1, Vec::new());
    let (status, _, _) = get(setup.proxy.local_addr().unwrap(), "/tick");
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(200));
    let ticks = setup
        .log
        .messages()
        .iter()
        .filter(|m| m.starts_with("probe on_tick ctx="))
        .count();
    assert_eq!(ticks, 1, "the timer stopped after the first tick");
    setup.proxy.shutdown();
}

#[test]
fn shared_data_cas_never_loses_an_update_and_queues_cross_workers() {
    let setup = start(vec![filter("counter", "")], 2, Vec::new());
    // A missing key is written whatever CAS the writer passes (as in Envoy), so two first
    // requests racing on two workers could both write 1: start from an existing key.
    setup
        .services
        .shared_data
        .set("counter", b"hits", b"0", 0)
        .unwrap();
    let addr = setup.proxy.local_addr().unwrap();
    const THREADS: usize = 8;
    const PER_THREAD: usize = 25;
    let hits: Vec<u64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                scope.spawn(move || {
                    (0..PER_THREAD)
                        .map(|_| {
                            let (status, head, _) = get(addr, "/count");
                            assert_eq!(status, 200);
                            head.lines()
                                .find_map(|l| l.strip_prefix("x-hits: "))
                                .unwrap()
                                .parse::<u64>()
                                .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let total = (THREADS * PER_THREAD) as u64;
    let distinct: HashSet<u64> = hits.iter().copied().collect();
    assert_eq!(
        distinct.len() as u64,
        total,
        "every increment wrote a new value"
    );
    assert_eq!(*distinct.iter().max().unwrap(), total);
    let (value, _) = setup.services.shared_data.get("counter", b"hits").unwrap();
    assert_eq!(value, total.to_string().into_bytes());
    // Every enqueued item reaches the single consumer, whichever worker enqueued it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let dequeued = || {
        setup
            .services
            .metrics
            .get("wasmcustom.dequeued")
            .map_or(0, |m| m.value())
    };
    while dequeued() < total as i64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(dequeued(), total as i64);
    // The admin endpoint shows the filter's metrics in Envoy's text and Prometheus forms.
    let admin = setup.proxy.admin_addr().unwrap();
    let (status, _, stats) = get(admin, "/stats");
    assert_eq!(status, 200);
    assert!(
        stats.contains(&format!("wasmcustom.requests: {total}\n")),
        "{stats}"
    );
    let (_, _, prometheus) = get(admin, "/stats/prometheus");
    assert!(
        prometheus.contains("# TYPE requests counter"),
        "{prometheus}"
    );
    assert!(
        prometheus.contains(&format!("requests{{}} {total}")),
        "{prometheus}"
    );
    let (_, _, plugins) = get(admin, "/plugins");
    assert!(plugins.contains("\"vm_id\": \"counter\""), "{plugins}");
    setup.proxy.shutdown();
}

#[test]
fn http2_cleartext_requests_are_served() {
    let setup = start(vec![filter("add-header", "")], 1, Vec::new());
    let addr = setup.proxy.local_addr().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body) = runtime.block_on(async move {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        let request = http::Request::builder()
            .uri(format!("http://{addr}/h2"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    });
    assert_eq!(status, 200);
    assert!(body.contains("\"path\": \"/h2\""), "{body}");
    setup.proxy.shutdown();
}
