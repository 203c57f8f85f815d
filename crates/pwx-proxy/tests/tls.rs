//! TLS in the data plane with certificates made at test time: the start-up checks (each error
//! names its file or option), a listener picking its certificate by SNI and telling requests
//! they came over TLS, and clusters verifying upstream certificates as configured (a CA, the
//! chain only, nothing).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use pwx_abi::LogLevel;
use pwx_host::{Engine, EngineConfig, MemoryLog, PluginConfig, Services, VmConfig};
use pwx_proxy::tls::{
    CertificatePem, ClientTls, ClientTlsOptions, Pem, ServerTls, ServerTlsOptions, TlsError,
    TlsVersion, Trust,
};
use pwx_proxy::{ClusterConfig, FilterConfig, Proxy, ProxyConfig, UpstreamConfig};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(&EngineConfig::default()).unwrap())
}

/// A test CA that signs leaf certificates.
struct Ca {
    pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            pem,
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A leaf for `names`, as PEM data named after the first name.
    fn leaf(&self, names: &[&str]) -> CertificatePem {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        CertificatePem {
            chain: Pem::inline(format!("{}.pem", names[0]), cert.pem()),
            key: Pem::inline(format!("{}.key", names[0]), key.serialize_pem()),
        }
    }

    fn roots(&self) -> rustls::RootCertStore {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(self.pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        roots
    }
}

fn server_error(options: &ServerTlsOptions) -> String {
    match ServerTls::new(options) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn start_up_checks_name_the_file_or_option_at_fault() {
    let ca = Ca::new("test CA");
    let a = ca.leaf(&["a.test"]);
    let b = ca.leaf(&["b.test"]);
    let options = |certificate: CertificatePem| ServerTlsOptions {
        certificates: vec![certificate],
        ..ServerTlsOptions::default()
    };
    ServerTls::new(&options(a.clone())).unwrap();

    let message = server_error(&options(CertificatePem {
        chain: a.chain.clone(),
        key: b.key.clone(),
    }));
    assert!(
        message.contains(
            "the private key in b.test.key does not belong to the certificate in a.test.pem"
        ),
        "{message}"
    );
    let message = server_error(&options(CertificatePem {
        chain: a.chain.clone(),
        key: a.chain.clone(),
    }));
    assert!(
        message.starts_with("a.test.pem: no private key found"),
        "{message}"
    );
    let message = server_error(&options(CertificatePem {
        chain: Pem::inline("empty.pem", ""),
        key: a.key.clone(),
    }));
    assert!(
        message.starts_with("empty.pem: no certificate found"),
        "{message}"
    );
    let message = server_error(&ServerTlsOptions {
        cipher_suites: vec!["[ECDHE-RSA-AES128-GCM-SHA256|DES-CBC3-SHA]".into()],
        ..options(a.clone())
    });
    assert!(
        message.starts_with("unknown cipher suite `DES-CBC3-SHA`; pwx (rustls) accepts: ECDHE-ECDSA-AES128-GCM-SHA256, "),
        "{message}"
    );
    let message = server_error(&ServerTlsOptions {
        min_version: Some(TlsVersion::Tls13),
        max_version: Some(TlsVersion::Tls12),
        ..options(a.clone())
    });
    assert!(message.contains("above the maximum"), "{message}");
    let message = server_error(&ServerTlsOptions::default());
    assert!(message.contains("at least one certificate"), "{message}");
    let missing = std::env::temp_dir().join("pwx-no-such-file.pem");
    let error = Pem::file(&missing).unwrap_err();
    assert!(matches!(error, TlsError::Read { .. }));
    assert!(
        error.to_string().contains("pwx-no-such-file.pem"),
        "{error}"
    );
    // IANA names are accepted too.
    ServerTls::new(&ServerTlsOptions {
        cipher_suites: vec!["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into()],
        ..options(a)
    })
    .unwrap();
}

fn start(config: ProxyConfig) -> Proxy {
    start_logging(config, Arc::new(MemoryLog::default()))
}

fn start_logging(config: ProxyConfig, log: Arc<MemoryLog>) -> Proxy {
    let services = Services::new(log);
    Proxy::start(config, engine(), Arc::new(services)).unwrap()
}

/// The conformance probe running `script` (built by scripts/build-fixtures.sh).
fn probe(script: &str) -> FilterConfig {
    let path = format!(
        "{}/../../target/fixtures/probe.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    let wasm = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}; run scripts/build-fixtures.sh first"));
    FilterConfig {
        wasm,
        source: "probe".into(),
        plugin: PluginConfig {
            name: "probe".into(),
            configuration: script.into(),
            ..Default::default()
        },
        vm: VmConfig {
            vm_id: "probe".into(),
            ..Default::default()
        },
    }
}

/// One HTTP/1.1 GET over TLS with `server_name` (a DNS name is sent as SNI; an IP address is
/// not); the response, or the handshake error.
fn tls_get(
    addr: SocketAddr,
    roots: rustls::RootCertStore,
    server_name: &str,
) -> Result<String, String> {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut stream = rustls::StreamOwned::new(connection, socket);
    write!(
        stream,
        "GET /x HTTP/1.1\r\nhost: {server_name}\r\nconnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    match stream.read_to_string(&mut response) {
        Ok(_) => Ok(response),
        // Some servers close without close_notify after `connection: close`.
        Err(_) if response.contains("\r\n\r\n") => Ok(response),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn a_listener_picks_its_certificate_by_sni_and_requests_see_https() {
    let ca = Ca::new("test CA");
    let mut config = ProxyConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        Vec::new(),
        UpstreamConfig::Echo,
    );
    config.listeners[0].tls = Some(
        ServerTls::new(&ServerTlsOptions {
            certificates: vec![ca.leaf(&["a.test", "127.0.0.1"]), ca.leaf(&["b.test"])],
            alpn: vec!["http/1.1".into()],
            ..ServerTlsOptions::default()
        })
        .unwrap(),
    );
    let proxy = start(config);
    let addr = proxy.local_addr().unwrap();
    // Each name gets the certificate valid for it (the client checks the name).
    for name in ["a.test", "b.test"] {
        let response = tls_get(addr, ca.roots(), name).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(
            response.contains(r#""x-forwarded-proto": "https""#),
            "{response}"
        );
    }
    // No SNI (an IP address is never sent): the first certificate.
    let response = tls_get(addr, ca.roots(), "127.0.0.1").unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // A client that trusts another CA fails the handshake; the listener keeps serving.
    let error = tls_get(addr, Ca::new("other CA").roots(), "a.test").unwrap_err();
    assert!(error.contains("invalid peer certificate"), "{error}");
    assert!(tls_get(addr, ca.roots(), "b.test").is_ok());
    proxy.shutdown();
}

#[test]
fn filters_see_the_tls_connection_in_properties_and_the_scheme() {
    let ca = Ca::new("test CA");
    let script = r#"{"on_request_headers": [
        {"op": "get_property", "path": ["connection", "tls_version"]},
        {"op": "get_property", "path": ["connection", "requested_server_name"]},
        {"op": "get_header_map_value", "map": "request_headers", "key": ":scheme"}]}"#;
    let mut config = ProxyConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![probe(script)],
        UpstreamConfig::Echo,
    );
    config.listeners[0].tls = Some(
        ServerTls::new(&ServerTlsOptions {
            certificates: vec![ca.leaf(&["b.test"])],
            max_version: Some(TlsVersion::Tls12),
            ..ServerTlsOptions::default()
        })
        .unwrap(),
    );
    let log = Arc::new(MemoryLog::with_level(LogLevel::Trace));
    let proxy = start_logging(config, log.clone());
    let response = tls_get(proxy.local_addr().unwrap(), ca.roots(), "b.test").unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let lines = log.messages().join("\n");
    for expected in [
        r#"tls_version"]}) -> status=0 value="TLSv1.2""#,
        r#"requested_server_name"]}) -> status=0 value="b.test""#,
        r#"":scheme","map":"request_headers"}) -> status=0 value="https""#,
    ] {
        assert!(lines.contains(expected), "{expected} not in:\n{lines}");
    }
    proxy.shutdown();
}

/// An HTTPS origin (rustls, one request per connection) answering `200 ok`.
fn https_origin(certificate: &CertificatePem) -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    let chain = rustls::pki_types::CertificateDer::pem_slice_iter(&certificate.chain.data)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&certificate.key.data).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(socket) = socket else { continue };
            let config = config.clone();
            std::thread::spawn(move || {
                let connection = rustls::ServerConnection::new(config).unwrap();
                let mut stream = rustls::StreamOwned::new(connection, socket);
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
                stream.conn.send_close_notify();
                let _ = stream.flush();
            });
        }
    });
    addr
}

/// An HTTPS origin speaking HTTP/2 only (ALPN `h2`, hyper), answering with the version it
/// received.
fn h2_origin(certificate: &CertificatePem) -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    let chain = rustls::pki_types::CertificateDer::pem_slice_iter(&certificate.chain.data)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&certificate.key.data).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(socket).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(|request: http::Request<_>| {
                        let body = format!("{:?}", request.version());
                        async move {
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from(body)),
                            ))
                        }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(
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

/// The status of a plain GET through a proxy whose only cluster is `origin` with `tls`.
fn status_through(origin: SocketAddr, tls: ClientTlsOptions) -> (u16, String) {
    status_through_cluster(origin, tls, pwx_proxy::UpstreamProtocol::Http1)
}

fn status_through_cluster(
    origin: SocketAddr,
    tls: ClientTlsOptions,
    protocol: pwx_proxy::UpstreamProtocol,
) -> (u16, String) {
    let cluster = ClusterConfig {
        tls: Some(ClientTls::new(&tls).unwrap()),
        protocol,
        ..ClusterConfig::single("origin", format!("localhost:{}", origin.port()))
    };
    let mut config = ProxyConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        Vec::new(),
        UpstreamConfig::Cluster("origin".into()),
    );
    config.clusters.push(cluster);
    let proxy = start(config);
    let mut stream = TcpStream::connect(proxy.local_addr().unwrap()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    proxy.shutdown();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response)
}

#[test]
fn clusters_verify_upstream_certificates_as_configured() {
    let ca = Ca::new("test CA");
    let origin = https_origin(&ca.leaf(&["localhost"]));
    let trusted = || Trust::Ca(Pem::inline("ca.pem", ca.pem.clone()));

    let (status, response) = status_through(origin, ClientTlsOptions::new(trusted()));
    assert_eq!(status, 200, "{response}");
    assert!(response.ends_with("ok"), "{response}");

    let other = Trust::Ca(Pem::inline("other.pem", Ca::new("other CA").pem));
    let (status, response) = status_through(origin, ClientTlsOptions::new(other));
    assert_eq!(status, 503, "{response}");
    assert!(
        response.contains("transport failure reason: TLS error: invalid peer certificate"),
        "{response}"
    );

    // A name the certificate does not carry: refused when names are checked (pwx's own
    // front ends), accepted when only the chain is (Envoy without SAN matchers).
    let wrong_name = ClientTlsOptions {
        sni: Some("elsewhere.test".into()),
        ..ClientTlsOptions::new(trusted())
    };
    let (status, response) = status_through(origin, wrong_name.clone());
    assert_eq!(status, 503, "{response}");
    let (status, response) = status_through(
        origin,
        ClientTlsOptions {
            verify_name: false,
            ..wrong_name
        },
    );
    assert_eq!(status, 200, "{response}");

    // Envoy without `trusted_ca`: nothing is checked.
    let (status, response) = status_through(origin, ClientTlsOptions::new(Trust::AnyCertificate));
    assert_eq!(status, 200, "{response}");
}

#[test]
fn an_http2_cluster_over_tls_negotiates_h2() {
    let ca = Ca::new("test CA");
    let origin = h2_origin(&ca.leaf(&["localhost"]));
    let trusted = Trust::Ca(Pem::inline("ca.pem", ca.pem.clone()));
    let (status, response) = status_through_cluster(
        origin,
        ClientTlsOptions::new(trusted),
        pwx_proxy::UpstreamProtocol::Http2,
    );
    assert_eq!(status, 200, "{response}");
    assert!(response.ends_with("HTTP/2.0"), "{response}");
}
