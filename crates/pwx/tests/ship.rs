//! `pwx push`, `pwx pull`, `pwx images` and `pwx run oci://…` against a real Debian
//! `docker-registry` on 127.0.0.1, plus every bad input a registry can produce.

// Test code: panicking on an unexpected error is the point.
#![allow(clippy::unwrap_used)]

#[path = "../../pwx-oci/tests/common/mod.rs"]
mod common;
mod support;

use common::TestRegistry;
use pwx_oci::wasm::sha256_hex;
use support::{
    Running, cached_modules, fails, fixture, free_port, get, header, json, ok, pwx, wait_for_port,
};

#[test]
fn push_and_pull_each_format_byte_identical_with_stable_digests() {
    let reg = TestRegistry::start();
    let cache = tempfile::tempdir().unwrap();
    let module = fixture("add-header");
    let bytes = std::fs::read(&module).unwrap();
    let sha = sha256_hex(&bytes);
    for format in ["compat", "docker-compat", "artifact"] {
        let reference = format!("{}/filters/add-header:{format}", reg.host());
        let push = |tag_ref: &str| {
            json(&ok(pwx(cache.path())
                .args(["push", "--insecure", "--json", "--format", format])
                .arg(&module)
                .arg(tag_ref)))
        };
        let pushed = push(&reference);
        assert_eq!(pushed["module_sha256"], sha, "{format}");
        assert_eq!(pushed["format"], format);
        let digest = pushed["image_digest"].as_str().unwrap().to_string();
        assert!(digest.starts_with("sha256:"), "{pushed}");
        // Stable: pushing the same module again (another tag) gives the same image digest.
        let again = push(&format!("oci://{reference}-again"));
        assert_eq!(again["image_digest"], digest.as_str(), "{format}");

        // Pull with a fresh cache, by tag and by digest.
        let fresh = tempfile::tempdir().unwrap();
        let out = fresh.path().join("pulled.wasm");
        let pulled = json(&ok(pwx(fresh.path())
            .args(["pull", "--insecure", "--json", "-o"])
            .arg(&out)
            .arg(&reference)));
        assert_eq!(pulled["image_digest"], digest.as_str());
        assert_eq!(pulled["module_sha256"], sha);
        assert_eq!(pulled["format"], format);
        assert_eq!(pulled["abi_versions"][0], "v0.2.1");
        assert_eq!(pulled["from_cache"], false);
        assert_eq!(
            std::fs::read(&out).unwrap(),
            bytes,
            "{format}: byte-identical"
        );
        let cached = std::path::PathBuf::from(pulled["path"].as_str().unwrap());
        assert_eq!(std::fs::read(cached).unwrap(), bytes);

        let pinned = pushed["pinned"].as_str().unwrap();
        let by_digest = json(&ok(pwx(fresh.path())
            .args(["pull", "--insecure", "--json"])
            .arg(format!("oci://{pinned}"))));
        assert_eq!(by_digest["image_digest"], digest.as_str());
        assert_eq!(
            by_digest["from_cache"], true,
            "a digest already pulled is a cache hit"
        );
    }

    // Human output names both digests.
    let human = ok(pwx(cache.path())
        .args(["pull", "--insecure"])
        .arg(format!("{}/filters/add-header:compat", reg.host())));
    let text = String::from_utf8(human.stdout).unwrap();
    assert!(text.contains("image digest   sha256:"), "{text}");
    assert!(text.contains(&format!("module sha256  {sha}")), "{text}");

    // `pwx images` lists what was pushed and pulled, with both digests and the ABI.
    let images = json(&ok(pwx(cache.path()).args(["images", "--json"])));
    let entries = images.as_array().unwrap();
    for format in ["compat", "docker-compat", "artifact"] {
        let e = entries
            .iter()
            .find(|e| e["tag"] == format)
            .unwrap_or_else(|| panic!("{format} not in {images}"));
        assert_eq!(e["sha256"], sha);
        assert_eq!(e["format"], format);
        assert_eq!(e["abi_versions"][0], "v0.2.1");
        assert!(e["image_digest"].as_str().unwrap().starts_with("sha256:"));
    }
    let table = String::from_utf8(ok(pwx(cache.path()).arg("images")).stdout).unwrap();
    assert!(table.starts_with("REPOSITORY / SOURCE"), "{table}");
    assert!(table.contains(&sha[..12]), "{table}");
}

#[test]
fn run_serves_traffic_with_a_filter_from_the_registry() {
    let reg = TestRegistry::start();
    let cache = tempfile::tempdir().unwrap();
    let reference = format!("{}/filters/add-header:v1", reg.host());
    ok(pwx(cache.path())
        .args(["push", "--insecure"])
        .arg(fixture("add-header"))
        .arg(&reference));
    // A fresh cache, so `pwx run` really pulls.
    let run_cache = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut proxy = Running(
        pwx(run_cache.path())
            .args(["run", "--insecure", "--workers", "1", "--upstream", "echo"])
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg(format!("oci://{reference}"))
            .spawn()
            .unwrap(),
    );
    wait_for_port(&mut proxy, port, "pwx run");
    let (status, headers, body) = get(port, "/productpage");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        header(&headers, "x-wasm-custom"),
        Some("foo"),
        "{headers:?}"
    );
    assert!(body.contains("x-my-custom-header"), "{body}");
    assert!(proxy.terminate().success());
    assert_eq!(cached_modules(run_cache.path()).len(), 1);
}

/// Runs a failing pwx command and checks the error is one line naming `needle` and a remedy.
fn one_line_error(stderr: &str, needle: &str, remedy: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(needle), "{needle:?} not in: {stderr}");
    assert!(lines[0].contains(remedy), "{remedy:?} not in: {stderr}");
}

#[tokio::test(flavor = "current_thread")]
async fn bad_registry_inputs_are_one_line_errors_and_leave_nothing_cached() {
    let reg = TestRegistry::start();
    let secured = TestRegistry::start_with_auth("pwx", "s3cret");
    let cache = tempfile::tempdir().unwrap();
    let host = reg.host();

    // Unreachable registry (nothing listens on that port).
    let dead = format!("127.0.0.1:{}/filters/x:v1", free_port());
    let err = fails(pwx(cache.path()).args(["pull", "--insecure", &dead]));
    one_line_error(&err, &dead, "reachable");

    // Plain-HTTP registry without --insecure: the error suggests it.
    let err = fails(pwx(cache.path()).args(["pull", &format!("{host}/filters/x:v1")]));
    one_line_error(&err, "filters/x:v1", "--insecure");

    // 401: no credentials, then wrong ones.
    let private = format!("{}/private/f:v1", secured.host());
    let err = fails(
        pwx(cache.path())
            .args(["push", "--insecure"])
            .arg(fixture("add-header"))
            .arg(&private),
    );
    one_line_error(&err, "private/f:v1", "credentials");
    let err = fails(
        pwx(cache.path())
            .args(["pull", "--insecure", "--username", "pwx", &private])
            .env("PWX_REGISTRY_PASSWORD", "wrong"),
    );
    one_line_error(&err, "private/f:v1", "credentials");
    // …and the right ones work, from a flag or from docker's config.json.
    ok(pwx(cache.path())
        .args(["push", "--insecure", "--username", "pwx"])
        .env("PWX_REGISTRY_PASSWORD", "s3cret")
        .arg(fixture("add-header"))
        .arg(&private));
    let docker = tempfile::tempdir().unwrap();
    let config = common::write_docker_config(docker.path(), &secured.host(), "pwx", "s3cret");
    ok(pwx(cache.path())
        .args(["pull", "--insecure", "--docker-config"])
        .arg(&config)
        .arg(&private));
    let cache = tempfile::tempdir().unwrap();

    // Missing tag.
    let missing = format!("{host}/filters/absent:v9");
    let err = fails(pwx(cache.path()).args(["pull", "--insecure", &missing]));
    one_line_error(&err, &missing, "tag or digest");

    // A manifest that is not a Wasm image (a layer of another media type).
    let not_wasm = format!("{host}/filters/not-wasm:v1");
    push_raw(&not_wasm, "application/vnd.example.data", b"hello".to_vec()).await;
    let err = fails(pwx(cache.path()).args(["pull", "--insecure", &not_wasm]));
    one_line_error(&err, &not_wasm, "pwx reads OCI or Docker \"compat\" images");

    // A corrupt compat layer (valid digest, not a tar+gzip).
    let corrupt = format!("{host}/filters/corrupt:v1");
    push_raw(
        &corrupt,
        "application/vnd.oci.image.layer.v1.tar+gzip",
        b"definitely not gzip".to_vec(),
    )
    .await;
    let err = fails(pwx(cache.path()).args(["pull", "--insecure", &corrupt]));
    one_line_error(&err, &corrupt, "tar+gzip");

    // A module sha256 that does not match: both values shown.
    let good = format!("{host}/filters/good:v1");
    let pusher = tempfile::tempdir().unwrap();
    ok(pwx(pusher.path())
        .args(["push", "--insecure"])
        .arg(fixture("add-header"))
        .arg(&good));
    let fresh = tempfile::tempdir().unwrap();
    let wrong = "ab".repeat(32);
    let actual = sha256_hex(&std::fs::read(fixture("add-header")).unwrap());
    let err = fails(pwx(fresh.path()).args(["pull", "--insecure", "--sha256", &wrong, &good]));
    one_line_error(&err, &wrong, &actual);
    assert!(err.contains("filters/good:v1"), "{err}");

    // A digest that is not in the repository.
    let absent_digest = format!("{host}/filters/good@sha256:{}", "cd".repeat(32));
    let err = fails(pwx(fresh.path()).args(["pull", "--insecure", &absent_digest]));
    one_line_error(&err, &absent_digest, "tag or digest");

    // None of the failures left a module (or a temporary file) in the caches.
    assert_eq!(
        cached_modules(cache.path()),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(
        cached_modules(fresh.path()),
        Vec::<std::path::PathBuf>::new()
    );

    // A URL source with the wrong sha256 is refused by `pwx run` before anything starts.
    let server = common::FileServer::start(std::fs::read(fixture("add-header")).unwrap());
    let url = format!("http://127.0.0.1:{}/f.wasm#sha256={wrong}", server.port);
    let err = fails(pwx(fresh.path()).args(["run", &url]));
    one_line_error(&err, &wrong, &actual);
    assert_eq!(
        cached_modules(fresh.path()),
        Vec::<std::path::PathBuf>::new()
    );
}

/// Pushes an image whose only layer is `layer` with `media_type`, bypassing pwx's own checks.
async fn push_raw(reference: &str, media_type: &str, layer: Vec<u8>) {
    use oci_client::client::{ClientConfig, ClientProtocol};
    use oci_client::manifest::{OciDescriptor, OciImageManifest};
    pwx_oci::http::ensure_crypto_provider();
    let client = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..ClientConfig::default()
    });
    let r: oci_client::Reference = reference.parse().unwrap();
    let auth = oci_client::secrets::RegistryAuth::Anonymous;
    client
        .auth(&r, &auth, oci_client::RegistryOperation::Push)
        .await
        .unwrap();
    let config = b"{}".to_vec();
    let desc = |mt: &str, blob: &[u8]| OciDescriptor {
        media_type: mt.to_string(),
        digest: format!("sha256:{}", sha256_hex(blob)),
        size: blob.len() as i64,
        ..OciDescriptor::default()
    };
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some("application/vnd.oci.image.manifest.v1+json".to_string()),
        config: desc("application/vnd.oci.image.config.v1+json", &config),
        layers: vec![desc(media_type, &layer)],
        ..OciImageManifest::default()
    };
    client
        .push_blob(&r, layer.clone(), &manifest.layers[0].digest)
        .await
        .unwrap();
    client
        .push_blob(&r, config, &manifest.config.digest)
        .await
        .unwrap();
    client
        .push_manifest_raw(
            &r,
            serde_json::to_vec(&manifest).unwrap(),
            "application/vnd.oci.image.manifest.v1+json"
                .parse()
                .unwrap(),
        )
        .await
        .unwrap();
}
