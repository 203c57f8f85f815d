//! Snapshot tests of the CLI's output: help texts and `pwx check` reports. The modules with
//! problems are built from WAT here; the good one is the add-header example built by
//! `scripts/build-fixtures.sh`. Update with `INSTA_UPDATE=always cargo test -p pwx` and review
//! the diff.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `pwx ARGS` and returns stdout, stderr and the exit status as one text.
fn pwx(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_pwx"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("PWX_LOG")
        .output()
        .unwrap();
    format!(
        "{}{}exit status: {}\n",
        String::from_utf8_lossy(&output.stdout),
        match String::from_utf8_lossy(&output.stderr).as_ref() {
            "" => String::new(),
            stderr => format!("--- stderr\n{stderr}"),
        },
        output.status.code().unwrap()
    )
}

/// Writes a module compiled from `wat` to a temporary file named `name`.
fn module(dir: &Path, name: &str, wat: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, wat::parse_str(wat).unwrap()).unwrap();
    path
}

/// A minimal well-formed filter with the given marker, imports and extra exports.
fn filter_wat(marker: Option<&str>, imports: &str, allocator: bool) -> String {
    format!(
        r#"(module
            {imports}
            (memory (export "memory") 1)
            {marker}
            {allocator}
            (func (export "proxy_on_context_create") (param i32 i32))
            (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) i32.const 0))"#,
        marker = marker
            .map(|m| format!(r#"(func (export "{m}"))"#))
            .unwrap_or_default(),
        allocator = if allocator {
            r#"(func (export "proxy_on_memory_allocate") (param i32) (result i32) i32.const 0)"#
        } else {
            ""
        },
    )
}

/// Replaces the lines that depend on the temporary directory or the build.
fn stable(text: String, path: &Path) -> String {
    text.replace(&path.display().to_string(), "FILE")
        .lines()
        .map(|line| {
            for label in ["sha256", "size"] {
                if line.starts_with(label) && line[label.len()..].starts_with(' ') {
                    return format!("{label:<10} [redacted]");
                }
            }
            line.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn help_texts() {
    insta::assert_snapshot!("pwx_help", pwx(&["--help"]));
    insta::assert_snapshot!("check_help", pwx(&["check", "--help"]));
    insta::assert_snapshot!("run_help", pwx(&["run", "--help"]));
}

#[test]
fn check_accepts_the_add_header_example() {
    // CARGO_TARGET_TMPDIR is <target>/tmp; build-fixtures.sh writes <target>/fixtures.
    let fixture = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../fixtures/add-header.wasm");
    assert!(
        fixture.exists(),
        "{} is missing: run scripts/build-fixtures.sh rust first",
        fixture.display()
    );
    let fixture = fixture.canonicalize().unwrap();
    let out = pwx(&["check", fixture.to_str().unwrap()]);
    assert!(out.ends_with("exit status: 0\n"), "{out}");
    insta::assert_snapshot!("check_add_header", stable(out, &fixture));
}

#[test]
fn check_flags_an_import_envoy_lacks() {
    let dir = tempfile::tempdir().unwrap();
    // Higress's private Redis extension: a filter built for it does not link on Envoy.
    let path = module(
        dir.path(),
        "redis.wasm",
        &filter_wat(
            Some("proxy_abi_version_0_2_1"),
            r#"(import "env" "proxy_redis_call" (func (param i32 i32 i32 i32 i32) (result i32)))"#,
            true,
        ),
    );
    let out = pwx(&["check", path.to_str().unwrap(), "--target", "envoy-1.40"]);
    assert!(out.ends_with("exit status: 1\n"), "{out}");
    insta::assert_snapshot!("check_unknown_import", stable(out, &path));
}

#[test]
fn check_flags_a_missing_allocator() {
    let dir = tempfile::tempdir().unwrap();
    let path = module(
        dir.path(),
        "no-alloc.wasm",
        &filter_wat(Some("proxy_abi_version_0_2_1"), "", false),
    );
    let out = pwx(&["check", path.to_str().unwrap()]);
    assert!(out.ends_with("exit status: 1\n"), "{out}");
    insta::assert_snapshot!("check_missing_allocator", stable(out, &path));
}

#[test]
fn check_flags_a_missing_abi_marker() {
    let dir = tempfile::tempdir().unwrap();
    let path = module(dir.path(), "no-marker.wasm", &filter_wat(None, "", true));
    let out = pwx(&["check", path.to_str().unwrap()]);
    assert!(out.ends_with("exit status: 1\n"), "{out}");
    insta::assert_snapshot!("check_missing_marker", stable(out, &path));
}

#[test]
fn check_flags_abi_0_2_1_on_a_0_1_0_only_target() {
    let dir = tempfile::tempdir().unwrap();
    let path = module(
        dir.path(),
        "v021.wasm",
        &filter_wat(
            Some("proxy_abi_version_0_2_1"),
            r#"(import "env" "proxy_get_log_level" (func (param i32) (result i32)))"#,
            true,
        ),
    );
    let out = pwx(&["check", path.to_str().unwrap(), "--target", "istio-1.6"]);
    assert!(out.ends_with("exit status: 1\n"), "{out}");
    insta::assert_snapshot!("check_abi_too_new", stable(out, &path));
}

#[test]
fn check_json_reports_findings_with_fixes() {
    let dir = tempfile::tempdir().unwrap();
    let path = module(
        dir.path(),
        "go.wasm",
        &filter_wat(
            Some("proxy_abi_version_0_2_0"),
            r#"(import "wasi_snapshot_preview1" "sched_yield" (func (result i32)))
               (import "env" "proxy_get_configuration" (func (param i32 i32) (result i32)))"#,
            true,
        ),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_pwx"))
        .args([
            "check",
            path.to_str().unwrap(),
            "--target",
            "istio-1.24",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["accepted"], false);
    assert_eq!(report["profile"], "envoy-1.24");
    let codes: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["wasi-missing-in-target", "import-not-in-abi"]);
    assert!(
        report["findings"][1]["fix"]
            .as_str()
            .unwrap()
            .contains("proxy_get_buffer_bytes")
    );
    // The same module is fine for Envoy 1.40 apart from the 0.1.0-only call.
    let out = pwx(&["check", path.to_str().unwrap(), "--json"]);
    assert!(out.contains("\"import-not-in-abi\""), "{out}");
    assert!(!out.contains("wasi-missing-in-target"), "{out}");
}

#[test]
fn check_refuses_garbage_and_unknown_targets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not.wasm");
    std::fs::write(&path, b"hello").unwrap();
    let out = stable(pwx(&["check", path.to_str().unwrap()]), &path);
    insta::assert_snapshot!("check_garbage", out);
    let out = pwx(&["check", path.to_str().unwrap(), "--target", "nginx"]);
    assert!(out.contains("unknown target \"nginx\""), "{out}");
    assert!(out.ends_with("exit status: 1\n"), "{out}");
}
