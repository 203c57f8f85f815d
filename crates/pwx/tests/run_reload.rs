//! `pwx run -c` reloading itself: an edit of the configuration file, `POST /reload` and
//! SIGHUP each switch new requests to the new plugins; a broken edit (bad YAML, a module that
//! is not wasm) leaves the last good configuration serving and says why; SIGTERM drains and
//! exits 0.
#![allow(clippy::unwrap_used)] // test code

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

/// A pwx YAML file: one listener on a free port running add-header with `x-gen: <generation>`.
fn write_config(dir: &Path, module: &str, generation: &str) {
    let text = format!(
        "listeners:\n  - name: main\n    address: 127.0.0.1:0\n    routes:\n      - direct_response: {{status: 200, body: \"ok\\n\"}}\n    filters:\n      - name: add-header\n        module: {module}\n        configuration:\n          response_headers: {{x-gen: {generation}}}\n"
    );
    // Written aside and renamed over, as editors do.
    let aside = dir.join(".pwx.yaml.tmp");
    std::fs::write(&aside, text).unwrap();
    std::fs::rename(aside, dir.join("pwx.yaml")).unwrap();
}

fn generation_header(run: &support::PwxRun) -> String {
    let (status, headers, _) = support::get(run.listener("http").port(), "/");
    assert_eq!(status, 200);
    support::header(&headers, "x-gen")
        .unwrap_or("-")
        .to_string()
}

fn post_reload(run: &support::PwxRun) -> (u16, String) {
    let mut stream = TcpStream::connect(run.admin()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"POST /reload HTTP/1.1\r\nhost: admin\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_string())
}

#[test]
fn pwx_run_reloads_on_file_change_admin_post_and_sighup_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        support::fixture("add-header"),
        dir.path().join("filter.wasm"),
    )
    .unwrap();
    write_config(dir.path(), "filter.wasm", "a");
    let config = dir.path().join("pwx.yaml");
    let mut run = support::pwx_run(&[
        "-c".as_ref(),
        config.as_os_str(),
        "--workers".as_ref(),
        "1".as_ref(),
        "--admin".as_ref(),
        "127.0.0.1:0".as_ref(),
    ]);
    assert_eq!(generation_header(&run), "a");
    run.wait_for_line("pwx: reloads on SIGHUP, POST /reload, or a change to", 1);

    // An edit of the configuration file.
    write_config(dir.path(), "filter.wasm", "b");
    run.wait_for_line("pwx: reloaded (", 1);
    assert_eq!(generation_header(&run), "b");

    // A broken edit: the last good configuration keeps serving, and pwx says why.
    std::fs::write(&config, "listeners: [\n").unwrap();
    let failed = run.wait_for_line("failed:", 1);
    assert!(failed.contains("pwx.yaml"), "{failed}");
    run.wait_for_line("pwx: generation 1 keeps serving", 1);
    assert_eq!(generation_header(&run), "b");

    // A module that is not wasm, reloaded through the admin endpoint.
    write_config(dir.path(), "filter.wasm", "c");
    run.wait_for_line("pwx: reloaded (", 2);
    std::fs::write(dir.path().join("filter.wasm"), b"not wasm").unwrap();
    run.wait_for_line("is it a .wasm file?", 1);
    let (status, body) = post_reload(&run);
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("is it a .wasm file?"), "{body}");
    assert_eq!(generation_header(&run), "c");

    // Fixed: POST /reload and SIGHUP both reload.
    std::fs::copy(
        support::fixture("add-header"),
        dir.path().join("filter.wasm"),
    )
    .unwrap();
    run.wait_for_line("pwx: reloaded (", 3);
    write_config(dir.path(), "filter.wasm", "d");
    run.wait_for_line("pwx: reloaded (", 4);
    let (status, body) = post_reload(&run);
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("generation "), "{body}");
    // SAFETY: kill(2) on the PID of our own unreaped child.
    unsafe {
        libc::kill(run.process.0.id() as i32, libc::SIGHUP);
    }
    let line = run.wait_for_line("pwx: reloaded (SIGHUP)", 1);
    assert!(line.contains("generation"), "{line}");
    assert_eq!(generation_header(&run), "d");

    // SIGTERM: drain, then exit 0.
    let status = run.process.terminate();
    assert!(status.success(), "{status}; {:#?}", run.stderr());
    run.wait_for_line("pwx: stopped", 1);
}
