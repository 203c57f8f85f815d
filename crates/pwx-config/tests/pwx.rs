//! pwx's own YAML: the documented example and a file with every feature.
#![allow(clippy::unwrap_used)]

use pwx_abi::FailurePolicy;
use pwx_config::*;
use std::path::PathBuf;
use std::time::Duration;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

#[test]
fn documented_example_loads() {
    let loaded = load(repo("docs/examples/pwx.yaml")).unwrap();
    assert_eq!(loaded.format, Format::Pwx);
    assert!(loaded.warnings.is_empty());
    let config = &loaded.config;
    assert_eq!(config.listeners.len(), 2);
    let ListenerKind::Http(http) = &config.listeners[0].kind else {
        panic!("expected HTTP")
    };
    assert_eq!(http.virtual_hosts[0].domains, ["*"]);
    assert_eq!(http.virtual_hosts[0].routes.len(), 3);
    let HttpFilter::Wasm(filter) = &http.http_filters[0] else {
        panic!("expected a Wasm filter")
    };
    assert_eq!(
        filter.configuration,
        br#"{"response_headers":{"x-hello":"world"}}"#
    );
    assert_eq!(
        filter.vm.code,
        CodeSource::File(repo("docs/examples/../../target/fixtures/add-header.wasm"))
    );
    assert_eq!(http.http_filters.len(), 2, "the router is appended");
    let ListenerKind::Http(by_host) = &config.listeners[1].kind else {
        panic!("expected HTTP")
    };
    assert_eq!(
        by_host.virtual_hosts[0].routes[0].matcher.path,
        PathMatch::Prefix("/".into()),
        "a route without match takes every path"
    );
}

#[test]
fn every_feature() {
    let path = data("pwx-full.yaml");
    let loaded = load(&path).unwrap();
    let config = &loaded.config;
    assert_eq!(
        config.admin.as_ref().unwrap().address,
        "[::1]:9901".parse().unwrap()
    );
    assert_eq!(config.node.id, "n1");
    let main = &config.listeners[0];
    assert_eq!(main.per_connection_buffer_limit_bytes, Some(32768));
    let ListenerKind::Http(http) = &main.kind else {
        panic!("expected HTTP")
    };
    assert_eq!(http.codec, Codec::Http2);
    assert_eq!(http.stream_idle_timeout, None, "0 disables");
    assert_eq!(http.request_timeout, Some(Duration::from_secs(30)));
    assert!(http.http1_enable_trailers);
    let route = &http.virtual_hosts[0].routes[0];
    assert_eq!(route.name, "api");
    assert!(!route.matcher.case_sensitive);
    assert_eq!(
        route.matcher.headers,
        [
            HeaderMatcher {
                name: "x-env".into(),
                matcher: HeaderMatch::Exact("canary".into()),
                invert: false,
                ignore_case: true
            },
            HeaderMatcher {
                name: "x-debug".into(),
                matcher: HeaderMatch::Present(false),
                invert: false,
                ignore_case: false
            },
            HeaderMatcher {
                name: "x-trace".into(),
                matcher: HeaderMatch::Present(true),
                invert: false,
                ignore_case: false
            },
            HeaderMatcher {
                name: "x-user".into(),
                matcher: HeaderMatch::Prefix("admin-".into()),
                invert: true,
                ignore_case: false
            },
        ]
    );
    assert_eq!(
        route.action,
        RouteAction::Cluster(ClusterRoute {
            cluster: "dns".into(),
            timeout: Some(Duration::from_millis(250)),
            prefix_rewrite: Some("/".into()),
            host_rewrite_literal: Some("backend.internal".into()),
        })
    );
    assert_eq!(
        http.virtual_hosts[0].routes[1].action,
        RouteAction::DirectResponse {
            status: 410,
            body: Vec::new()
        }
    );
    let plugins: Vec<&WasmPlugin> = http
        .http_filters
        .iter()
        .filter_map(|f| match f {
            HttpFilter::Wasm(p) => Some(p),
            HttpFilter::Router(_) => None,
        })
        .collect();
    let auth = plugins[0];
    assert_eq!(auth.root_id, "auth_root");
    assert_eq!(auth.vm.vm_id, "shared");
    assert_eq!(
        auth.configuration, br#"{"users":["alice","bob"],"strict":true,"limit":1.5}"#,
        "mappings become JSON in file order"
    );
    assert_eq!(auth.vm.configuration, b"plain text");
    assert_eq!(
        auth.vm.environment,
        [
            ("REGION".to_owned(), "eu".to_owned()),
            ("PORT".to_owned(), "8080".to_owned())
        ]
    );
    assert_eq!(auth.vm.host_env_keys, ["HOSTNAME"]);
    assert_eq!(auth.failure_policy, FailurePolicy::FailReload);
    assert_eq!(auth.reload_backoff, Duration::from_millis(1500));
    assert!(auth.allow_on_headers_stop_iteration);
    assert_eq!(auth.vm.code, CodeSource::File(data("filters/auth.wasm")));
    assert_eq!(plugins[1].configuration, b"42");
    assert_eq!(
        plugins[1].vm.code,
        CodeSource::Remote {
            uri: "https://example.com/f.wasm".into(),
            sha256: "abcdef0000000000000000000000000000000000000000000000000000000001".into(),
            cluster: None,
            timeout: None
        }
    );
    assert_eq!(
        plugins[2].vm.code,
        CodeSource::Oci("oci://registry.example.com/filters/f:1.0".into())
    );
    assert_eq!(
        http.http_filters.last(),
        Some(&HttpFilter::Router(Router {
            suppress_envoy_headers: true
        }))
    );

    let ListenerKind::Tcp(tcp) = &config.listeners[1].kind else {
        panic!("expected TCP")
    };
    assert_eq!(tcp.cluster, "static");
    assert_eq!(
        tcp.network_filters[0].vm.code,
        CodeSource::File("/abs/net.wasm".into())
    );

    let tls = config.listeners[0].tls.as_ref().unwrap();
    assert_eq!(
        tls.certificates[0].private_key,
        DataSource::File(data("certs/s.key"))
    );
    assert_eq!(tls.alpn, ["h2"]);
    assert_eq!(
        (tls.min_version, tls.max_version),
        (Some(TlsVersion::V1_2), Some(TlsVersion::V1_3))
    );
    assert_eq!(tls.cipher_suites, ["ECDHE-ECDSA-AES128-GCM-SHA256"]);

    let dns = config.cluster("dns").unwrap();
    assert_eq!(dns.discovery, Discovery::StrictDns, "host names imply DNS");
    assert_eq!(dns.protocol, UpstreamProtocol::Http2);
    assert_eq!(dns.lb_policy, LbPolicy::Random);
    assert_eq!(dns.dns_lookup_family, DnsLookupFamily::V4Preferred);
    assert_eq!(dns.dns_refresh_rate, Duration::from_secs(30));
    let tls = dns.tls.as_ref().unwrap();
    assert_eq!(
        tls.validation,
        UpstreamValidation::TrustedCa(DataSource::File(data("certs/ca.pem")))
    );
    assert!(tls.verify_server_name && tls.sni_from_endpoint);
    assert_eq!(
        tls.client_certificate,
        Some(TlsCertificate {
            certificate_chain: DataSource::File(data("certs/c.pem")),
            private_key: DataSource::File(data("certs/k.pem")),
        })
    );
    let fixed = config.cluster("static").unwrap();
    assert_eq!(
        fixed.discovery,
        Discovery::Static,
        "IP addresses imply static"
    );
    assert_eq!(fixed.endpoints[0].host, "::1");
    assert_eq!(fixed.connect_timeout, Duration::from_secs(60));
    assert!(fixed.http1_enable_trailers);
    assert_eq!(
        config.cluster("logical").unwrap().discovery,
        Discovery::LogicalDns
    );

    assert!(!config.wasm_services[0].singleton);
    assert_eq!(config.wasm_services[0].plugin.configuration, b"every 1s");
    assert!(config.wasm_services[1].singleton, "singleton by default");

    let origin = loaded
        .sources
        .get("listeners[0].virtual_hosts[0].routes[0].cluster")
        .unwrap();
    assert_eq!(
        origin.to_string(),
        format!("{}:23:18: listeners[0].routes[0].cluster", path.display())
    );
}

#[test]
fn tcp_listener_with_network_filters_and_idle_timeout() {
    let loaded = load(repo("examples/tcp-guard/pwx.yaml")).unwrap();
    let ListenerKind::Tcp(tcp) = &loaded.config.listeners[0].kind else {
        panic!("expected a TCP listener")
    };
    assert_eq!(tcp.cluster, "upstream");
    assert_eq!(tcp.idle_timeout, Some(Duration::from_secs(300)));
    assert_eq!(tcp.network_filters[0].name, "tcp-guard");
    assert_eq!(
        tcp.network_filters[0].configuration,
        br#"{"pattern":"DROP TABLE"}"#
    );
    let text = "listeners:\n- name: t\n  address: 127.0.0.1:0\n  tcp_proxy: {cluster: c, idle_timeout: 0}\nclusters:\n- {name: c, endpoints: [127.0.0.1:1]}\n";
    let loaded = parse_str(text, "pwx.yaml").unwrap();
    let ListenerKind::Tcp(tcp) = &loaded.config.listeners[0].kind else {
        panic!("expected a TCP listener")
    };
    assert_eq!(tcp.idle_timeout, None, "0 disables");
    let err = parse_str(
        "listeners:\n- name: t\n  address: 127.0.0.1:0\n  tcp_proxy: {cluster: c, idle: 1s}\nclusters:\n- {name: c, endpoints: [127.0.0.1:1]}\n",
        "pwx.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("unknown field `idle`"), "{err}");
}
