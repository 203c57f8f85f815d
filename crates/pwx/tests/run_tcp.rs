//! `pwx run -c` with a TCP listener end to end: the tcp-guard example in front of a real TCP
//! echo server on 127.0.0.1 passes bytes both ways, reports its counters on the admin
//! endpoint, and closes a connection whose client sends the blocked pattern.
#![allow(clippy::unwrap_used)] // test code

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// A TCP echo server: every connection gets back what it sends, until it half-closes.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

fn read_exact(stream: &mut TcpStream, n: usize) -> String {
    let mut buf = vec![0u8; n];
    stream.read_exact(&mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

fn stat(admin: SocketAddr, name: &str) -> Option<i64> {
    let mut stream = connect(admin);
    write!(
        stream,
        "GET /stats HTTP/1.1\r\nhost: admin\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn tcp_guard_proxies_counts_and_blocks_through_pwx_run() {
    let fixtures = std::env::var("PWX_FIXTURES_DIR").unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| format!("{}/../../target", env!("CARGO_MANIFEST_DIR")));
        format!("{target}/fixtures")
    });
    let wasm = format!("{fixtures}/tcp-guard.wasm");
    assert!(
        std::path::Path::new(&wasm).exists(),
        "{wasm} is missing: run scripts/build-fixtures.sh rust"
    );
    let upstream = echo_server();
    let dir = std::env::temp_dir().join(format!("pwx-run-tcp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("pwx.yaml");
    std::fs::write(
        &config,
        format!(
            "admin: {{address: 127.0.0.1:0}}\n\
             listeners:\n\
             - name: guarded\n  address: 127.0.0.1:0\n  tcp_proxy: {{cluster: echo}}\n\
             \x20 filters:\n  - name: tcp-guard\n    module: {wasm}\n    configuration: {{pattern: DROP TABLE}}\n\
             clusters:\n- name: echo\n  endpoints: [{upstream}]\n"
        ),
    )
    .unwrap();
    let pwx = support::pwx_run(&[std::ffi::OsStr::new("-c"), config.as_os_str()]);
    let (listen, admin) = (pwx.listener("tcp"), pwx.admin());

    // Bytes go through both ways; the client half-closes and the connection ends cleanly.
    let mut client = connect(listen);
    client.write_all(b"select 1;").unwrap();
    assert_eq!(read_exact(&mut client, 9), "select 1;");
    client.write_all(b"select 22;").unwrap();
    assert_eq!(read_exact(&mut client, 10), "select 22;");
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "nothing after the echo: {rest:?}");

    // The pattern (split across two writes) closes the connection; its bytes never come back.
    let mut blocked = connect(listen);
    blocked.write_all(b"x; DROP").unwrap();
    assert_eq!(read_exact(&mut blocked, 7), "x; DROP");
    blocked.write_all(b" TABLE users").unwrap();
    let mut after = Vec::new();
    let _ = blocked.read_to_end(&mut after);
    assert!(after.is_empty(), "the blocked bytes were echoed: {after:?}");

    // Counters (they are published with the connection callbacks; poll briefly).
    let mut seen = None;
    for _ in 0..50 {
        seen = stat(admin, "wasmcustom.tcp_guard.blocked_connections");
        if seen == Some(1) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(seen, Some(1));
    assert_eq!(
        stat(admin, "wasmcustom.tcp_guard.downstream_bytes"),
        Some(19 + 19)
    );
    assert_eq!(
        stat(admin, "wasmcustom.tcp_guard.upstream_bytes"),
        Some(19 + 7)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
