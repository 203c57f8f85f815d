//! Hot reload and graceful drain on real sockets: a request in flight during a reload finishes
//! on the VMs it started on while the next request (even on the same connection) runs on the
//! new ones; a reload that fails leaves the running configuration serving; a drain lets an
//! open request finish, closes idle connections and refuses new ones.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

#[path = "support/modules.rs"]
mod modules;
use modules::{engine, fixture};

use pwx_host::{PluginConfig, Services, VmConfig};
use pwx_proxy::{FilterConfig, Proxy, ProxyConfig, ProxyError, UpstreamConfig};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// add-header answering with `x-gen: <generation>` on every response.
fn config(listen: SocketAddr, generation: &str) -> ProxyConfig {
    let filter = FilterConfig {
        wasm: fixture("add-header"),
        source: "add-header".into(),
        plugin: PluginConfig {
            name: "add-header".into(),
            configuration: format!(r#"{{"response_headers":{{"x-gen":"{generation}"}}}}"#)
                .into_bytes(),
            ..Default::default()
        },
        vm: VmConfig {
            vm_id: "add-header".into(),
            ..Default::default()
        },
    };
    ProxyConfig {
        workers: 2,
        ..ProxyConfig::new(listen, vec![filter], UpstreamConfig::Echo)
    }
}

fn start(generation: &str) -> Proxy {
    Proxy::start(
        config("127.0.0.1:0".parse().unwrap(), generation),
        engine(),
        Arc::new(Services::default()),
    )
    .unwrap()
}

/// One HTTP/1.1 response read from a kept-alive connection: status line and headers
/// (lower-cased names), body.
fn read_response(reader: &mut BufReader<TcpStream>) -> (String, Vec<(String, String)>, String) {
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (
        status.trim_end().to_string(),
        headers,
        String::from_utf8(body).unwrap(),
    )
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn connect(proxy: &Proxy) -> (TcpStream, BufReader<TcpStream>) {
    let stream = TcpStream::connect(proxy.local_addr().unwrap()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let reader = BufReader::new(stream.try_clone().unwrap());
    (stream, reader)
}

fn get(proxy: &Proxy) -> Vec<(String, String)> {
    let (mut stream, mut reader) = connect(proxy);
    stream
        .write_all(b"GET /new HTTP/1.1\r\nhost: t\r\n\r\n")
        .unwrap();
    let (status, headers, _) = read_response(&mut reader);
    assert_eq!(status, "HTTP/1.1 200 OK");
    headers
}

#[test]
fn a_request_in_flight_finishes_on_the_old_vms_and_the_next_one_uses_the_new() {
    let proxy = start("a");
    // A request whose body is half sent when the reload happens.
    let (mut stream, mut reader) = connect(&proxy);
    stream
        .write_all(b"POST /slow HTTP/1.1\r\nhost: t\r\ncontent-length: 10\r\n\r\n12345")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));

    let listen = proxy.local_addr().unwrap();
    let done = proxy
        .reload(config("127.0.0.1:0".parse().unwrap(), "b"), engine())
        .unwrap();
    assert_eq!(done.generation, 1);
    assert_eq!(proxy.generation(), 1);
    assert_eq!(proxy.local_addr().unwrap(), listen);
    assert_eq!(header(&get(&proxy), "x-gen"), Some("b"));

    stream.write_all(b"67890").unwrap();
    let (status, headers, body) = read_response(&mut reader);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(header(&headers, "x-gen"), Some("a"), "{headers:?}");
    assert!(body.contains("1234567890"), "{body}");

    // The same connection's next request runs on the new generation.
    stream
        .write_all(b"GET /again HTTP/1.1\r\nhost: t\r\n\r\n")
        .unwrap();
    let (_, headers, _) = read_response(&mut reader);
    assert_eq!(header(&headers, "x-gen"), Some("b"), "{headers:?}");
    proxy.shutdown();
}

#[test]
fn a_failing_reload_leaves_the_running_configuration_serving() {
    let proxy = start("a");
    // add-header refuses a configuration that is not JSON in on_configure.
    let mut bad = config("127.0.0.1:0".parse().unwrap(), "b");
    bad.listeners[0].filters[0].plugin.configuration = b"{not json".to_vec();
    let error = proxy.reload(bad, engine()).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("proxy_on_configure returned false"),
        "{error}"
    );
    assert_eq!(proxy.generation(), 0);
    assert_eq!(header(&get(&proxy), "x-gen"), Some("a"));

    let mut not_wasm = config("127.0.0.1:0".parse().unwrap(), "b");
    not_wasm.listeners[0].filters[0].wasm = b"garbage".to_vec();
    assert!(matches!(
        proxy.reload(not_wasm, engine()),
        Err(ProxyError::Load { .. })
    ));

    let moved = config("127.0.0.1:1".parse().unwrap(), "b");
    let error = proxy.reload(moved, engine()).unwrap_err().to_string();
    assert!(
        error.contains("listener addresses changed") && error.contains("restart pwx"),
        "{error}"
    );
    assert_eq!(header(&get(&proxy), "x-gen"), Some("a"));

    // A good reload after the failed ones still works.
    proxy
        .reload(config("127.0.0.1:0".parse().unwrap(), "c"), engine())
        .unwrap();
    assert_eq!(header(&get(&proxy), "x-gen"), Some("c"));
    proxy.shutdown();
}

#[test]
fn drain_finishes_open_requests_and_refuses_new_connections() {
    let proxy = start("a");
    let addr = proxy.local_addr().unwrap();
    // An idle kept-alive connection and one with a request in flight.
    let (mut idle, mut idle_reader) = connect(&proxy);
    idle.write_all(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
        .unwrap();
    read_response(&mut idle_reader);
    let (mut busy, mut busy_reader) = connect(&proxy);
    busy.write_all(b"POST /slow HTTP/1.1\r\nhost: t\r\ncontent-length: 4\r\n\r\nab")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));

    let draining = std::thread::spawn(move || proxy.drain(Duration::from_secs(60)));
    // The idle connection is closed by the proxy.
    let mut rest = Vec::new();
    assert_eq!(idle_reader.read_to_end(&mut rest).unwrap(), 0);
    // New connections are refused once the listeners are closed.
    let mut refused = false;
    for _ in 0..50 {
        if TcpStream::connect(addr).is_err() {
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(refused, "the listener still accepts while draining");
    // The request in flight completes, told that the connection closes.
    busy.write_all(b"cd").unwrap();
    let (status, headers, body) = read_response(&mut busy_reader);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(header(&headers, "x-gen"), Some("a"));
    assert_eq!(header(&headers, "connection"), Some("close"), "{headers:?}");
    assert!(body.contains("abcd"), "{body}");
    // With nothing left open, the drain ends (long before its 60 s).
    draining.join().unwrap();
}

#[test]
fn the_old_generation_shuts_its_plugins_down_once_its_streams_ended() {
    use pwx_abi::LogLevel;
    use pwx_host::MemoryLog;
    let log = Arc::new(MemoryLog::with_level(LogLevel::Trace));
    let probe = |script: &str| FilterConfig {
        wasm: fixture("probe"),
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
    };
    let probe_config = |script: &str| ProxyConfig {
        workers: 2,
        ..ProxyConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            vec![probe(script)],
            UpstreamConfig::Echo,
        )
    };
    let proxy = Proxy::start(
        probe_config("{}"),
        engine(),
        Arc::new(Services::new(log.clone())),
    )
    .unwrap();
    let (mut stream, mut reader) = connect(&proxy);
    stream
        .write_all(b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\n1")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let done_lines = || {
        log.messages()
            .into_iter()
            .filter(|m| m.contains("root_on_done"))
            .count()
    };
    let before = done_lines();
    proxy
        .reload(probe_config(r#"{"on_vm_start": []}"#), engine())
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // The worker without a stream shut its old root down at once; the other waits.
    assert_eq!(done_lines(), before + 1, "{:#?}", log.messages());
    stream.write_all(b"2").unwrap();
    let (status, _, _) = read_response(&mut reader);
    assert_eq!(status, "HTTP/1.1 200 OK");
    let mut shut = false;
    for _ in 0..100 {
        if done_lines() == before + 2 {
            shut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(shut, "{:#?}", log.messages());
    proxy.shutdown();
}
