//! Module sources in `pwx check` and `pwx test`: `oci://` from a real Debian `docker-registry` on
//! 127.0.0.1, `http://127.0.0.1` downloads with their sha256 (plain http is accepted for
//! loopback only), and every checksum mismatch refused with both values.

// Test code: panicking on an unexpected error is the point.
#![allow(clippy::unwrap_used)]

#[path = "../../pwx-oci/tests/common/mod.rs"]
mod common;
mod support;

use common::{FileServer, TestRegistry};
use pwx_oci::wasm::sha256_hex;
use support::{cached_modules, fails, fixture, ok, pwx};

/// One add-header case; `wasm` goes in the file when given.
fn cases(dir: &std::path::Path, wasm: Option<&str>) -> std::path::PathBuf {
    let path = dir.join("tests.yaml");
    let head = wasm.map(|w| format!("wasm: {w:?}\n")).unwrap_or_default();
    std::fs::write(
        &path,
        format!(
            "{head}cases:\n  - name: adds its header\n    expect:\n      status: 200\n      headers:\n        x-wasm-custom: foo\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn check_and_test_take_an_image_from_the_registry() {
    let reg = TestRegistry::start();
    let cache = tempfile::tempdir().unwrap();
    let reference = format!("{}/filters/add-header:v1", reg.host());
    ok(pwx(cache.path())
        .args(["push", "--insecure"])
        .arg(fixture("add-header"))
        .arg(&reference));
    let source = format!("oci://{reference}");

    // A fresh cache each time, so the image is really pulled.
    let fresh = tempfile::tempdir().unwrap();
    let out = ok(pwx(fresh.path()).args(["check", "--insecure", &source]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("module     {source}\n")),
        "{text}"
    );
    assert!(
        text.contains("ok: envoy-1.40 would load this module"),
        "{text}"
    );
    assert_eq!(cached_modules(fresh.path()).len(), 1);

    let fresh = tempfile::tempdir().unwrap();
    let file = cases(fresh.path(), Some(&source));
    let out = ok(pwx(fresh.path()).arg("test").arg(&file).arg("--insecure"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 passed, 0 failed"), "{text}");
    assert!(text.contains(&format!("against {source}")), "{text}");

    // The image's module with the wrong expected sha256: refused, both values shown.
    let wrong = "ab".repeat(32);
    let actual = sha256_hex(&std::fs::read(fixture("add-header")).unwrap());
    let fresh = tempfile::tempdir().unwrap();
    let file = cases(fresh.path(), None);
    let err = fails(pwx(fresh.path()).arg("test").arg(&file).args([
        "--insecure",
        "--wasm",
        &source,
        "--sha256",
        &wrong,
    ]));
    assert!(err.contains(&wrong) && err.contains(&actual), "{err}");
    assert_eq!(
        cached_modules(fresh.path()),
        Vec::<std::path::PathBuf>::new()
    );
}

#[test]
fn check_and_test_take_a_download_with_its_sha256() {
    let bytes = std::fs::read(fixture("add-header")).unwrap();
    let sha = sha256_hex(&bytes);
    let server = FileServer::start(bytes);
    let url = format!("http://127.0.0.1:{}/add-header.wasm", server.port);
    let cache = tempfile::tempdir().unwrap();

    let out = ok(pwx(cache.path()).args(["check", &format!("{url}#sha256={sha}")]));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ok: envoy-1.40"),
        "{out:?}"
    );
    // `--sha256` instead of the fragment; the second run is a cache hit.
    let out = ok(pwx(cache.path()).args(["check", &url, "--sha256", &sha]));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&sha));
    let file = cases(cache.path(), None);
    ok(pwx(cache.path())
        .arg("test")
        .arg(&file)
        .args(["--wasm", &url, "--sha256", &sha]));

    // No sha256: refused, saying how to give it.
    let err = fails(pwx(cache.path()).args(["check", &url]));
    assert!(err.contains("#sha256="), "{err}");
    let err = fails(
        pwx(cache.path())
            .arg("test")
            .arg(&file)
            .args(["--wasm", &url]),
    );
    assert!(err.contains("#sha256="), "{err}");

    // A wrong sha256: refused with both values, nothing cached.
    let wrong = "cd".repeat(32);
    let fresh = tempfile::tempdir().unwrap();
    let err = fails(pwx(fresh.path()).args(["check", &format!("{url}#sha256={wrong}")]));
    assert!(err.contains(&wrong) && err.contains(&sha), "{err}");
    let file = cases(fresh.path(), Some(&format!("{url}#sha256={wrong}")));
    let err = fails(pwx(fresh.path()).arg("test").arg(&file));
    assert!(err.contains(&wrong) && err.contains(&sha), "{err}");
    assert_eq!(
        cached_modules(fresh.path()),
        Vec::<std::path::PathBuf>::new()
    );

    // A local file with a wrong --sha256 is refused the same way.
    let err = fails(
        pwx(fresh.path())
            .arg("check")
            .arg(fixture("add-header"))
            .args(["--sha256", &wrong]),
    );
    assert!(err.contains(&wrong) && err.contains(&sha), "{err}");

    // Plain http is for loopback only.
    let err =
        fails(pwx(fresh.path()).args(["check", &format!("http://files.test/f.wasm#sha256={sha}")]));
    assert!(err.contains("use https://"), "{err}");
}
