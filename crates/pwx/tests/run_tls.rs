//! `pwx run` with TLS on both sides, as a user runs it: certificates made at test time (a CA and
//! a `localhost` certificate), an HTTPS upstream inside the test (tokio-rustls + hyper), the real
//! `pwx` binary with the add-header example terminating TLS, and curl with the test CA in front.
#![allow(clippy::unwrap_used)] // test code

mod support;

use rustls::pki_types::pem::PemObject;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// A CA and a server certificate for `localhost` and 127.0.0.1, written as PEM files.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn new() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pwx test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        Certs { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

/// An HTTPS origin (ALPN h2 and http/1.1) answering with what it saw: the protocol, the
/// filter's request header and `x-forwarded-proto`.
fn https_upstream(certs: &Certs) -> SocketAddr {
    let chain = rustls::pki_types::CertificateDer::pem_file_iter(certs.path("cert.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(certs.path("key.pem")).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(|request: hyper::Request<_>| {
                        let header = |name: &str| {
                            request
                                .headers()
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-")
                                .to_string()
                        };
                        let body = format!(
                            "upstream: {:?} x-my-custom-header={} x-forwarded-proto={}\n",
                            request.version(),
                            header("x-my-custom-header"),
                            header("x-forwarded-proto"),
                        );
                        async move {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Full::new(bytes_of(body)),
                            ))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                });
            }
        });
    });
    addr
}

fn bytes_of(text: String) -> hyper::body::Bytes {
    hyper::body::Bytes::from(text)
}

fn add_header_wasm() -> String {
    // Where scripts/build-fixtures.sh writes: PWX_FIXTURES_DIR, else <target dir>/fixtures.
    let fixtures = std::env::var("PWX_FIXTURES_DIR").unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR")
            .unwrap_or_else(|_| format!("{}/../../target", env!("CARGO_MANIFEST_DIR")));
        format!("{target}/fixtures")
    });
    let wasm = format!("{fixtures}/add-header.wasm");
    assert!(
        Path::new(&wasm).exists(),
        "{wasm} is missing: run scripts/build-fixtures.sh rust"
    );
    wasm
}

/// `pwx run` that must fail at start-up: its exit status and stderr.
fn pwx_fails(args: &[String]) -> String {
    let output: Output = Command::new(env!("CARGO_BIN_EXE_pwx"))
        .arg("run")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "pwx run started: {stderr}");
    stderr
}

/// `curl -i` to `https://localhost:PORT/` with the test CA; the whole response as text.
fn curl(certs: &Certs, addr: SocketAddr, version: &str) -> String {
    let output = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "10", version, "--cacert"])
        .arg(certs.path("ca.pem"))
        .arg("--resolve")
        .arg(format!("localhost:{}:127.0.0.1", addr.port()))
        .arg(format!("https://localhost:{}/hello", addr.port()))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "curl {version} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_ascii_lowercase()
}

fn quick_mode(certs: &Certs, upstream: SocketAddr) -> Vec<String> {
    vec![
        add_header_wasm(),
        "--tls-cert".into(),
        certs.arg("cert.pem"),
        "--tls-key".into(),
        certs.arg("key.pem"),
        "--upstream".into(),
        format!("https://localhost:{}", upstream.port()),
        "--upstream-ca".into(),
        certs.arg("ca.pem"),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--workers".into(),
        "1".into(),
    ]
}

#[test]
fn pwx_terminates_tls_runs_the_filter_and_proxies_to_an_https_upstream() {
    let certs = Certs::new();
    let upstream = https_upstream(&certs);
    let pwx = support::pwx_run(&quick_mode(&certs, upstream));
    let addr = pwx.listener("https");

    let http1 = curl(&certs, addr, "--http1.1");
    assert!(http1.starts_with("http/1.1 200"), "{http1}");
    assert!(http1.contains("x-wasm-custom: foo"), "{http1}");
    // pwx offered h2 and http/1.1 upstream; the origin picked h2.
    assert!(http1.contains("upstream: http/2.0"), "{http1}");
    assert!(http1.contains("x-my-custom-header=hello world"), "{http1}");
    assert!(http1.contains("x-forwarded-proto=https"), "{http1}");

    let http2 = curl(&certs, addr, "--http2");
    assert!(http2.starts_with("http/2 200"), "{http2}");
    assert!(http2.contains("x-wasm-custom: foo"), "{http2}");
    assert!(http2.contains("x-my-custom-header=hello world"), "{http2}");

    // Garbage and a cleartext request on the TLS port: that connection closes, nothing else.
    for junk in [
        &b"\x16\x03\x01\x00\x05garbage-that-is-not-a-client-hello"[..],
        &b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n"[..],
    ] {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(junk).unwrap();
        let mut answer = Vec::new();
        // Ends with EOF (or a reset): a TLS alert at most, never an HTTP response.
        let _ = stream.read_to_end(&mut answer);
        assert!(
            !answer.starts_with(b"HTTP/"),
            "answered in cleartext: {answer:?}"
        );
        assert!(answer.len() < 64, "more than an alert: {answer:?}");
    }
    let again = curl(&certs, addr, "--http1.1");
    assert!(again.starts_with("http/1.1 200"), "{again}");
}

#[test]
fn an_upstream_certificate_from_an_unknown_ca_fails_the_request_with_503() {
    let certs = Certs::new();
    let other = Certs::new();
    let upstream = https_upstream(&certs);
    let mut args = quick_mode(&certs, upstream);
    // Trust another CA for the upstream: verification must fail.
    let ca = args.iter().position(|a| a == "--upstream-ca").unwrap();
    args[ca + 1] = other.arg("ca.pem");
    let pwx = support::pwx_run(&args);
    let addr = pwx.listener("https");
    let response = curl(&certs, addr, "--http1.1");
    assert!(response.starts_with("http/1.1 503"), "{response}");
    assert!(response.contains("connection failure"), "{response}");
    assert!(
        response.contains("tls error: invalid peer certificate"),
        "{response}"
    );
}

#[test]
fn a_missing_certificate_file_stops_pwx_run_and_names_the_file() {
    let certs = Certs::new();
    let mut args = quick_mode(&certs, "127.0.0.1:9".parse().unwrap());
    let missing = certs.arg("no-such-cert.pem");
    let cert = args.iter().position(|a| a == "--tls-cert").unwrap();
    args[cert + 1] = missing.clone();
    let stderr = pwx_fails(&args);
    assert!(stderr.contains(&missing), "{stderr}");
    assert!(stderr.contains("--tls-cert"), "{stderr}");
}

#[test]
fn a_key_that_is_not_a_key_stops_pwx_run_and_names_the_file() {
    let certs = Certs::new();
    let mut args = quick_mode(&certs, "127.0.0.1:9".parse().unwrap());
    let key = args.iter().position(|a| a == "--tls-key").unwrap();
    args[key + 1] = certs.arg("cert.pem");
    let stderr = pwx_fails(&args);
    assert!(stderr.contains("no private key found"), "{stderr}");
    assert!(stderr.contains(&certs.arg("cert.pem")), "{stderr}");
}

/// An Envoy bootstrap: DownstreamTlsContext on the listener, UpstreamTlsContext with the test
/// CA on the cluster, curl end to end; and the same file with an unknown cipher suite refused
/// at start-up with its place in the file.
#[test]
fn an_envoy_bootstrap_with_tls_contexts_runs_and_an_unknown_cipher_is_refused() {
    let certs = Certs::new();
    let upstream = https_upstream(&certs);
    let bootstrap = |cipher_suites: &str| {
        format!(
            r#"static_resources:
  listeners:
  - name: main
    address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            alpn_protocols: [h2, http/1.1]
            tls_params:
              cipher_suites: {cipher_suites}
            tls_certificates:
            - certificate_chain: {{filename: cert.pem}}
              private_key: {{filename: key.pem}}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: /}}
                route: {{cluster: origin}}
          http_filters:
          - name: add-header
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                vm_config:
                  runtime: envoy.wasm.runtime.v8
                  code: {{local: {{filename: {wasm}}}}}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: origin
    type: STATIC
    load_assignment:
      cluster_name: origin
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: localhost
        common_tls_context:
          validation_context:
            trusted_ca: {{filename: ca.pem}}
"#,
            wasm = add_header_wasm(),
            port = upstream.port(),
        )
    };
    let good = certs.path("envoy.yaml");
    std::fs::write(
        &good,
        bootstrap("[ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-RSA-AES128-GCM-SHA256]"),
    )
    .unwrap();
    let pwx = support::pwx_run(&[
        "-c".into(),
        good.display().to_string(),
        "--workers".into(),
        "1".into(),
    ]);
    let addr = pwx.listener("https");
    let response = curl(&certs, addr, "--http1.1");
    assert!(response.starts_with("http/1.1 200"), "{response}");
    assert!(response.contains("x-wasm-custom: foo"), "{response}");
    // No ALPN configured on the cluster: HTTP/1.1 upstream, as the cluster's protocol says.
    assert!(response.contains("upstream: http/1.1"), "{response}");
    assert!(response.contains("x-forwarded-proto=https"), "{response}");

    let bad = certs.path("bad.yaml");
    std::fs::write(&bad, bootstrap("[ECDHE-RSA-AES128-GCM-SHA256, AES128-SHA]")).unwrap();
    let stderr = pwx_fails(&["-c".into(), bad.display().to_string()]);
    assert!(
        stderr.contains("unknown cipher suite `AES128-SHA`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ECDHE-RSA-CHACHA20-POLY1305"),
        "lists the accepted ones: {stderr}"
    );
    assert!(stderr.contains("bad.yaml:"), "points at the file: {stderr}");
}
