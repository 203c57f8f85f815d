//! `pwx new`, `pwx build`, `pwx test`: help texts and a failing case's report as snapshots,
//! the files `pwx new` writes, and `pwx test` against the add-header example (built by
//! `scripts/build-fixtures.sh`). The full loop (new → build → test with real toolchains) runs in
//! scripts/test.sh. Update snapshots with `INSTA_UPDATE=always cargo test -p pwx`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn pwx_in(dir: &Path, args: &[&str]) -> (String, i32) {
    let output = Command::new(env!("CARGO_BIN_EXE_pwx"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("PWX_LOG")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        match String::from_utf8_lossy(&output.stderr).as_ref() {
            "" => String::new(),
            stderr => format!("--- stderr\n{stderr}"),
        },
    );
    (text, output.status.code().unwrap())
}

fn add_header_wasm() -> PathBuf {
    let fixture = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../fixtures/add-header.wasm");
    assert!(
        fixture.exists(),
        "{} is missing: run scripts/build-fixtures.sh rust first",
        fixture.display()
    );
    fixture.canonicalize().unwrap()
}

#[test]
fn help_texts() {
    let dir = std::env::temp_dir();
    for (name, command) in [
        ("new_help", "new"),
        ("build_help", "build"),
        ("test_help", "test"),
    ] {
        let (text, code) = pwx_in(&dir, &[command, "--help"]);
        assert_eq!(code, 0, "{text}");
        insta::assert_snapshot!(name, text);
    }
}

#[test]
fn new_writes_every_file_of_each_template() {
    let dir = tempfile::tempdir().unwrap();
    let expected: [(&str, &[&str]); 4] = [
        ("rust", &["Cargo.toml", "src/lib.rs"]),
        (
            "assemblyscript",
            &[
                "package.json",
                "package-lock.json",
                "assembly/index.ts",
                "assembly/json.ts",
            ],
        ),
        ("cpp", &["filter.cc", "Makefile"]),
        ("go", &["main.go", "go.mod"]),
    ];
    for (lang, own) in expected {
        let name = format!("f-{lang}");
        let (text, code) = pwx_in(dir.path(), &["new", &name, "--lang", lang]);
        assert_eq!(code, 0, "{text}");
        let project = dir.path().join(&name);
        for file in own.iter().chain(&[
            "README.md",
            "config.json",
            "tests.yaml",
            "envoy.yaml",
            "wasmplugin.yaml",
            ".gitignore",
        ]) {
            let body = std::fs::read_to_string(project.join(file)).unwrap();
            for placeholder in ["{{name", "{{config", "{{files", "{{build", "{{language"] {
                assert!(
                    !body.contains(placeholder),
                    "{lang}/{file}: {placeholder} left"
                );
            }
        }
        // The embedded configuration is config.json, compact.
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(project.join("config.json")).unwrap())
                .unwrap();
        let envoy = std::fs::read_to_string(project.join("envoy.yaml")).unwrap();
        assert!(
            envoy.contains(&serde_json::to_string(&config).unwrap()),
            "{lang}"
        );
        assert!(
            envoy.contains(&format!("filename: build/{name}.wasm")),
            "{lang}"
        );
    }
    let rust = std::fs::read_to_string(dir.path().join("f-rust/Cargo.toml")).unwrap();
    assert!(
        rust.contains("proxy-wasm = \"=0.2.5\"") && rust.contains("[workspace]"),
        "{rust}"
    );
    let (text, code) = pwx_in(dir.path(), &["new", "f-rust", "--lang", "rust"]);
    assert_eq!(code, 1);
    assert!(text.contains("already exists and is not empty"), "{text}");
    let (text, code) = pwx_in(dir.path(), &["new", "Bad_Name", "--lang", "rust"]);
    assert_eq!(code, 1);
    insta::assert_snapshot!("new_bad_name", text);
}

#[test]
fn build_explains_a_missing_cpp_toolchain() {
    let dir = tempfile::tempdir().unwrap();
    let (_, code) = pwx_in(dir.path(), &["new", "cc", "--lang", "cpp"]);
    assert_eq!(code, 0);
    let output = Command::new(env!("CARGO_BIN_EXE_pwx"))
        .args(["build", "cc"])
        .current_dir(dir.path())
        .env_remove("PROXY_WASM_CPP_SDK")
        .env("CXX", "/nonexistent/clang++")
        .env("WASI_SYSROOT", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the C++ toolchain is not ready"),
        "{stderr}"
    );
    assert!(
        stderr.contains("PROXY_WASM_CPP_SDK") && stderr.contains("libc++"),
        "{stderr}"
    );
    let (text, code) = pwx_in(dir.path(), &["build"]);
    assert_eq!(code, 1);
    assert!(text.contains("holds no filter project"), "{text}");
}

const CASES: &str = r#"
configuration: ""
cases:
  - name: adds both headers
    request: { path: /x, headers: { accept: text/plain } }
    expect:
      status: 200
      headers: { x-wasm-custom: foo }
      upstream:
        headers: { x-my-custom-header: hello world, accept: text/plain }
  - name: a wrong expectation
    request: { method: POST, path: /y, body: "one\ntwo\n" }
    expect:
      status: 201
      headers: { x-wasm-custom: bar, x-missing: null }
      body: "one\nthree\n"
      local_reply: true
      logs: ["never logged"]
  - name: a configuration the filter refuses
    configuration: { headers: {} }
    expect: { start_error: "unknown field `headers`" }
"#;

#[test]
fn test_reports_failures_readably_and_as_junit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cases.yaml"), CASES).unwrap();
    let wasm = add_header_wasm();
    let args = [
        "test",
        "cases.yaml",
        "--wasm",
        wasm.to_str().unwrap(),
        "--junit",
        "report.xml",
    ];
    let (text, code) = pwx_in(dir.path(), &args);
    assert_eq!(code, 1, "{text}");
    insta::assert_snapshot!(
        "test_failure_report",
        text.replace(wasm.to_str().unwrap(), "WASM")
    );
    let junit = std::fs::read_to_string(dir.path().join("report.xml")).unwrap();
    assert!(
        junit.contains(r#"<testsuites tests="3" failures="1""#),
        "{junit}"
    );
    assert!(
        junit.contains(r#"<failure message="status: expected 201">"#),
        "{junit}"
    );
    let (json, _) = pwx_in(
        dir.path(),
        &[
            "test",
            "cases.yaml",
            "--wasm",
            wasm.to_str().unwrap(),
            "--json",
            "-k",
            "wrong",
        ],
    );
    let json = json.split("--- stderr").next().unwrap();
    let report: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(report["failed"], 1);
    assert_eq!(report["cases"][0]["failures"].as_array().unwrap().len(), 5);
}

#[test]
fn test_points_at_bad_yaml() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tests.yaml"),
        "cases:\n  - name: x\n    expect:\n      stauts: 200\n",
    )
    .unwrap();
    let wasm = add_header_wasm();
    let (text, code) = pwx_in(dir.path(), &["test", "--wasm", wasm.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        text.contains("tests.yaml:4:7: cases[0].expect: unknown field `stauts`"),
        "{text}"
    );
    assert!(!text.contains(" at line "), "location given twice: {text}");
    std::fs::write(dir.path().join("tests.yaml"), "cases:\n  - name: x\n").unwrap();
    let (text, code) = pwx_in(dir.path(), &["test"]);
    assert_eq!(code, 1);
    assert!(text.contains("no module to test"), "{text}");
}
