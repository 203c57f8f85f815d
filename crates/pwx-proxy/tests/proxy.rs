//! The data plane end to end on real sockets (127.0.0.1, ephemeral ports) with filters built
//! by `scripts/build-fixtures.sh`: headers added both ways, the echo upstream, failure
//! policies, and one looping filter not taking other requests down.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

#[path = "support/modules.rs"]
mod modules;
use modules::{engine, filter};

use pwx_abi::FailurePolicy;
use pwx_host::{Limits, Services};
use pwx_proxy::{FilterConfig, Proxy, ProxyConfig, UpstreamConfig};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

fn start(filters: Vec<FilterConfig>, workers: usize) -> Proxy {
    let config = ProxyConfig {
        workers,
        limits: Limits {
            callback_deadline: Duration::from_millis(200),
            ..Limits::default()
        },
        ..ProxyConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            filters,
            UpstreamConfig::Echo,
        )
    };
    Proxy::start(config, engine(), Arc::new(Services::default())).unwrap()
}

/// Sends one HTTP/1.1 request and returns (status, raw head, body).
fn get(proxy: &Proxy, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut stream = TcpStream::connect(proxy.local_addr().unwrap()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn add_header_works_both_ways_through_the_echo_upstream() {
    let proxy = start(vec![filter("add-header", "", FailurePolicy::FailClosed)], 2);
    let (status, head, body) = get(&proxy, "/productpage", &[]);
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("x-wasm-custom: foo"), "{head}");
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["headers"]["x-my-custom-header"], "hello world");
    assert_eq!(echo["path"], "/productpage");
    proxy.shutdown();
}

#[test]
fn a_chain_runs_requests_in_order_and_responses_in_reverse() {
    let first = filter(
        "add-header",
        r#"{"request_headers":{"x-order":"first"},"response_headers":{"x-order":"first"}}"#,
        FailurePolicy::FailClosed,
    );
    let mut second = filter(
        "add-header",
        r#"{"request_headers":{"x-order":"second"},"response_headers":{"x-order":"second"}}"#,
        FailurePolicy::FailClosed,
    );
    second.plugin.name = "second".into();
    let proxy = start(vec![first, second], 1);
    let (_, head, body) = get(&proxy, "/", &[]);
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["headers"]["x-order"], "first,second");
    let order: Vec<&str> = head
        .lines()
        .filter_map(|l| l.strip_prefix("x-order: "))
        .collect();
    assert_eq!(order, ["second", "first"]);
    proxy.shutdown();
}

#[test]
fn a_trapping_filter_fails_closed_with_503() {
    let proxy = start(vec![filter("misbehave", "", FailurePolicy::FailClosed)], 1);
    let (status, _, _) = get(&proxy, "/", &[("x-misbehave", "trap-request_headers")]);
    assert_eq!(status, 503);
    // The VM stays failed: later streams get 503 too under FAIL_CLOSED.
    assert_eq!(get(&proxy, "/", &[]).0, 503);
    proxy.shutdown();
}

#[test]
fn fail_open_bypasses_a_failed_filter_for_later_streams() {
    let proxy = start(vec![filter("misbehave", "", FailurePolicy::FailOpen)], 1);
    // The stream in flight when the VM fails still gets 503, as in Envoy.
    assert_eq!(
        get(&proxy, "/", &[("x-misbehave", "trap-request_headers")]).0,
        503
    );
    let (status, head, _) = get(&proxy, "/", &[]);
    assert_eq!(status, 200);
    assert!(
        !head.contains("x-misbehave: none"),
        "the failed filter is bypassed: {head}"
    );
    proxy.shutdown();
}

#[test]
fn a_looping_filter_is_stopped_and_other_workers_keep_serving() {
    let proxy = start(vec![filter("misbehave", "", FailurePolicy::FailClosed)], 2);
    let looping = std::thread::spawn({
        let addr = proxy.local_addr().unwrap();
        move || {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.write_all(b"GET / HTTP/1.1\r\nhost: t\r\nx-misbehave: loop-request_headers\r\nconnection: close\r\n\r\n").unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            response
        }
    });
    let response = looping.join().unwrap();
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    // At least one worker still has a healthy VM: a healthy request succeeds within a few tries
    // (the kernel picks the worker).
    let ok = (0..20).any(|_| get(&proxy, "/", &[]).0 == 200);
    assert!(
        ok,
        "no worker served a healthy request after another one's VM looped"
    );
    proxy.shutdown();
}

#[test]
fn a_rejected_configuration_stops_start_up_with_the_reason() {
    let config = ProxyConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![filter("add-header", "{not json", FailurePolicy::FailClosed)],
        UpstreamConfig::Echo,
    );
    let error = Proxy::start(config, engine(), Arc::new(Services::default()))
        .err()
        .expect("refused");
    assert!(
        error
            .to_string()
            .contains("proxy_on_configure returned false"),
        "{error}"
    );
}

#[test]
fn fail_reload_rebuilds_the_vm_after_the_backoff() {
    let mut reloading = filter("misbehave", "", FailurePolicy::FailReload);
    reloading.plugin.reload_backoff = Duration::from_millis(300);
    let proxy = start(vec![reloading], 1);
    assert_eq!(
        get(&proxy, "/", &[("x-misbehave", "trap-request_headers")]).0,
        503
    );
    // Once the backoff since the VM was loaded has passed, a fresh VM is built on the next
    // stream and serves again.
    std::thread::sleep(Duration::from_millis(350));
    let (status, head, _) = get(&proxy, "/", &[]);
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("x-misbehave: none"), "{head}");
    // After another failure the backoff holds: within 300 ms the filter fails closed.
    assert_eq!(
        get(&proxy, "/", &[("x-misbehave", "trap-request_headers")]).0,
        503
    );
    assert_eq!(get(&proxy, "/", &[]).0, 503);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(get(&proxy, "/", &[]).0, 200);
    proxy.shutdown();
}

#[test]
fn a_port_another_process_listens_on_is_refused() {
    // Not SO_REUSEPORT-shared: the other socket belongs to someone else.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let config = ProxyConfig::new(
        addr,
        vec![filter("add-header", "", FailurePolicy::FailClosed)],
        UpstreamConfig::Echo,
    );
    let error = Proxy::start(config, engine(), Arc::new(Services::default()))
        .err()
        .expect("the port is taken");
    assert!(
        error
            .to_string()
            .contains(&format!("cannot listen on {addr}")),
        "{error}"
    );
    // A running pwx holds its port the same way.
    let first = start(vec![filter("add-header", "", FailurePolicy::FailClosed)], 2);
    let again = ProxyConfig::new(
        first.local_addr().unwrap(),
        vec![filter("add-header", "", FailurePolicy::FailClosed)],
        UpstreamConfig::Echo,
    );
    assert!(matches!(
        Proxy::start(again, engine(), Arc::new(Services::default())),
        Err(pwx_proxy::ProxyError::Listen { .. })
    ));
    first.shutdown();
}

/// `misbehave` as plugin `name` on the VM `shared`.
fn on_shared_vm(name: &str, policy: FailurePolicy) -> FilterConfig {
    let mut f = filter("misbehave", "", policy);
    f.plugin.name = name.into();
    f.plugin.reload_backoff = Duration::from_millis(300);
    f.vm.vm_id = "shared".into();
    f
}

#[test]
fn plugins_on_one_vm_fail_together_and_are_rebuilt_together() {
    // Same vm_id, module and VM configuration: one VM, as in Envoy. A trap in the first
    // plugin fails the second too; under FAIL_OPEN both are bypassed from then on.
    let proxy = start(
        vec![
            on_shared_vm("first", FailurePolicy::FailOpen),
            on_shared_vm("second", FailurePolicy::FailOpen),
        ],
        1,
    );
    let (_, head, _) = get(&proxy, "/", &[]);
    assert_eq!(head.matches("x-misbehave: none").count(), 2, "{head}");
    assert_eq!(
        get(&proxy, "/", &[("x-misbehave", "trap-request_headers")]).0,
        503
    );
    let (status, head, _) = get(&proxy, "/", &[]);
    assert_eq!(status, 200);
    assert!(!head.contains("x-misbehave"), "both bypassed: {head}");
    proxy.shutdown();

    // Under FAIL_RELOAD the rebuilt VM runs both plugins again.
    let proxy = start(
        vec![
            on_shared_vm("first", FailurePolicy::FailReload),
            on_shared_vm("second", FailurePolicy::FailReload),
        ],
        1,
    );
    assert_eq!(
        get(&proxy, "/", &[("x-misbehave", "trap-request_headers")]).0,
        503
    );
    std::thread::sleep(Duration::from_millis(350));
    let (status, head, _) = get(&proxy, "/", &[]);
    assert_eq!(status, 200, "{head}");
    assert_eq!(head.matches("x-misbehave: none").count(), 2, "{head}");
    proxy.shutdown();
}
