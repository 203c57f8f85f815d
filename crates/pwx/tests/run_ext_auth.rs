//! `pwx run` end to end as a user runs it: the ext-auth example asks a real auth service on
//! 127.0.0.1 (a `--cluster`) about each request, pauses it, then resumes it towards a real
//! upstream or answers with the auth service's denial.
#![allow(clippy::unwrap_used)] // test code

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Reads an HTTP/1.1 request head; returns its lines.
fn read_head(stream: &TcpStream) -> Vec<String> {
    let mut reader = BufReader::new(stream);
    let mut lines = Vec::new();
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
        if line == "\r\n" {
            break;
        }
        lines.push(line.trim_end().to_ascii_lowercase());
        line.clear();
    }
    lines
}

/// A server answering each connection with `answer(request head lines)`.
fn serve(answer: fn(&[String]) -> String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let head = read_head(&stream);
                let _ = stream.write_all(answer(&head).as_bytes());
            });
        }
    });
    addr
}

fn auth_service(head: &[String]) -> String {
    if head
        .iter()
        .any(|l| l == "authorization: bearer alice-token")
    {
        "HTTP/1.1 200 OK\r\nx-user: alice\r\nx-auth-reason: token ok\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into()
    } else {
        "HTTP/1.1 403 Forbidden\r\nx-auth-reason: unknown token\r\ncontent-length: 7\r\nconnection: close\r\n\r\ndenied\n".into()
    }
}

fn upstream(head: &[String]) -> String {
    let user = head
        .iter()
        .find_map(|l| l.strip_prefix("x-user: "))
        .unwrap_or("nobody");
    let body = format!("hello {user}\n");
    format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn get(addr: SocketAddr, headers: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /page HTTP/1.1\r\nhost: test\r\nconnection: close\r\n{headers}\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

#[test]
fn ext_auth_allows_or_denies_through_a_callout_to_a_real_auth_service() {
    // Where scripts/build-fixtures.sh writes: PWX_FIXTURES_DIR, else <target dir>/fixtures.
    let fixtures = std::env::var("PWX_FIXTURES_DIR").unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| format!("{}/../../target", env!("CARGO_MANIFEST_DIR")));
        format!("{target}/fixtures")
    });
    let wasm = format!("{fixtures}/ext-auth.wasm");
    assert!(
        std::path::Path::new(&wasm).exists(),
        "{wasm} is missing: run scripts/build-fixtures.sh rust"
    );
    let config = std::fs::read_to_string(format!(
        "{}/../../examples/ext-auth/config.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let auth = serve(auth_service);
    let origin = serve(upstream);
    let pwx = support::pwx_run(&[
        wasm,
        "--config".into(),
        config,
        "--cluster".into(),
        format!("auth=http://{auth}"),
        "--upstream".into(),
        format!("http://{origin}"),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--workers".into(),
        "1".into(),
    ]);
    let addr = pwx.listener("http");
    let (status, response) = get(addr, "authorization: Bearer alice-token\r\n");
    assert_eq!(status, 200, "{response}");
    assert!(response.ends_with("hello alice\n"), "{response}");
    assert!(response.contains("x-auth-reason: token ok"), "{response}");
    let (status, response) = get(addr, "authorization: Bearer stolen\r\n");
    assert_eq!(status, 403, "{response}");
    assert!(response.ends_with("denied\n"), "{response}");
    assert!(
        response.contains("x-auth-reason: unknown token"),
        "{response}"
    );
}
