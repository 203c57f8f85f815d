//! `pwx run DIR`: a filter project directory is built first (as `pwx build` does) and its
//! module run; a directory that is no project is refused with what was looked for.
#![allow(clippy::unwrap_used)] // test code

mod support;

use std::process::Command;

#[test]
fn a_new_rust_project_directory_is_built_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pwx"))
        .current_dir(dir.path())
        .args(["new", "demo", "--lang", "rust"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let project = dir.path().join("demo");
    let config = std::fs::read_to_string(project.join("config.json")).unwrap();

    let pwx = support::pwx_run(&[
        project.to_str().unwrap(),
        "--config",
        &config,
        "--upstream",
        "echo",
        "--listen",
        "127.0.0.1:0",
        "--workers",
        "1",
    ]);
    assert!(
        project.join("build/demo.wasm").is_file(),
        "pwx run did not build the project into build/demo.wasm"
    );
    let (status, headers, body) = support::get(pwx.listener("http").port(), "/hello");
    assert_eq!(status, 200, "{body}");
    // The template's configuration: a response header and a request header the echo shows.
    assert_eq!(support::header(&headers, "x-served-by"), Some("demo"));
    assert!(body.contains("\"x-demo\": \"on\""), "{body}");
}

#[test]
fn a_directory_that_is_no_project_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pwx"))
        .args([
            "run",
            dir.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is a directory, so pwx run builds it as a filter project")
            && stderr
                .contains("holds no filter project pwx knows (Cargo.toml, package.json, go.mod")
            && stderr.contains("create one with `pwx new NAME`"),
        "{stderr}"
    );
}
