//! `pwx test --envoy`: the token-auth example's cases on pwx and on the real Envoy from `.venv`
//! (or `$ENVOY_BIN`), their JSON and JUnit results, and the report of a case on which pwx and
//! Envoy differ (snapshot). Skipped, with the reason printed, only when no Envoy is installed —
//! scripts/test.sh installs it before `cargo test`.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::{fixture, repo};

/// The Envoy binary, or `None` (with the reason printed) when none is installed.
fn envoy() -> Option<PathBuf> {
    let path = std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/envoy"));
    if path.is_file() {
        return Some(path);
    }
    eprintln!(
        "SKIPPED: no Envoy at {} (scripts/test.sh installs it into .venv; or set ENVOY_BIN)",
        path.display()
    );
    None
}

fn pwx_test(dir: &Path, envoy: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pwx"))
        .arg("test")
        .args(args)
        .arg("--envoy")
        .arg("--envoy-bin")
        .arg(envoy)
        .current_dir(dir)
        .env("PWX_LOG", "warn")
        .env("PWX_CACHE_DIR", dir.join("cache"))
        .output()
        .unwrap()
}

#[test]
fn token_auth_cases_agree_on_pwx_and_envoy() {
    let Some(envoy) = envoy() else { return };
    let dir = tempfile::tempdir().unwrap();
    let wasm = fixture("token-auth");
    let cases = repo().join("examples/token-auth/tests.yaml");
    let junit = dir.path().join("junit.xml");
    let started = std::time::Instant::now();
    let out = pwx_test(
        dir.path(),
        &envoy,
        &[
            cases.to_str().unwrap(),
            "--wasm",
            wasm.to_str().unwrap(),
            "--json",
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6, "{stdout}");
    for case in cases {
        assert_eq!(case["passed"], true, "{case}");
        assert_eq!(case["envoy"]["verdict"], "passed", "{case}");
        assert_eq!(
            case["envoy"]["differences"],
            serde_json::json!([]),
            "{case}"
        );
    }
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("tests=\"12\" failures=\"0\""), "{xml}");
    assert!(
        xml.contains("name=\"a composite token is refused [envoy]\""),
        "{xml}"
    );
    // One Envoy for the whole file: seconds, not a start per case.
    assert!(elapsed.as_secs() < 30, "took {elapsed:?}");
}

/// A file with a case on which pwx and Envoy differ (pwx-testkit hands the filter a hop-by-hop
/// `keep-alive` request header that Envoy's connection manager strips; token-auth logs every
/// header at trace level), a case that fails its expectation on both, and a `ticks` case.
const DIFFERING: &str = r#"
configuration: {"header": "token"}
cases:
  - name: a hop-by-hop header reaches the filter on pwx only
    request:
      headers:
        token: "7"
        keep-alive: timeout=5
    expect:
      status: 200
  - name: a wrong expectation fails on both
    request:
      headers:
        token: "9"
    expect:
      status: 200
  - name: ticks are not run on envoy
    ticks: 1
    expect:
      start_error: "never checked: ticks come first"
"#;

#[test]
fn differences_between_pwx_and_envoy_are_readable() {
    let Some(envoy) = envoy() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cases.yaml"), DIFFERING).unwrap();
    let wasm = fixture("token-auth");
    let out = pwx_test(
        dir.path(),
        &envoy,
        &["cases.yaml", "--wasm", wasm.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let text = format!(
        "{}--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
    .replace(wasm.to_str().unwrap(), "<token-auth.wasm>");
    insta::assert_snapshot!("envoy_differences", text);
}
