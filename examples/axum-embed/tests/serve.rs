//! Runs the example binary on an ephemeral port and checks what its README promises: the
//! filters' headers, a 403 for a bad token that the app never answers, the app's view of the
//! filtered request.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

fn get(addr: &str, path: &str, token: Option<&str>) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let token = token.map(|t| format!("token: {t}\r\n")).unwrap_or_default();
    let request =
        format!("GET {path} HTTP/1.1\r\nhost: example\r\n{token}connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.to_ascii_lowercase()
}

#[test]
fn the_example_serves_its_app_behind_the_filters() {
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let mut child = Command::new(env!("CARGO_BIN_EXE_axum-embed"))
        .arg("127.0.0.1:0")
        .current_dir(repo)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let Some(addr) = line.trim().strip_prefix("axum-embed: listening on http://") else {
        let _ = child.kill();
        panic!(
            "unexpected first line {line:?} (are the fixtures built? scripts/build-fixtures.sh rust)"
        );
    };
    let addr = addr.to_string();

    let ok = get(&addr, "/", Some("7"));
    let denied = get(&addr, "/", Some("8"));
    let seen = get(&addr, "/headers", Some("13"));
    // Stop the server by its PID before asserting, so a failure leaves nothing running.
    child.kill().unwrap();
    child.wait().unwrap();

    assert!(ok.starts_with("http/1.1 200"), "{ok}");
    assert!(ok.contains("x-wasm-custom: foo"), "{ok}");
    assert!(ok.ends_with("hello from axum\n"), "{ok}");
    assert!(denied.starts_with("http/1.1 403"), "{denied}");
    assert!(denied.contains("powered-by: proxy-wasm"), "{denied}");
    assert!(denied.contains("x-wasm-custom: foo"), "{denied}");
    assert!(denied.ends_with("access forbidden.\n"), "{denied}");
    assert!(seen.contains("x-my-custom-header: hello world"), "{seen}");
    assert!(seen.contains("x-request-id: "), "{seen}");
}
