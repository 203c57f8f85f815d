//! Envoy bootstraps pwx must read unchanged: the conformance runner's and a tutorial's.
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

fn http(listener: &Listener) -> &HttpListener {
    match &listener.kind {
        ListenerKind::Http(http) => http,
        ListenerKind::Tcp(_) => panic!("expected an HTTP listener"),
    }
}

fn wasm(filter: &HttpFilter) -> &WasmPlugin {
    match filter {
        HttpFilter::Wasm(plugin) => plugin,
        HttpFilter::Router(_) => panic!("expected a Wasm filter"),
    }
}

#[test]
fn conformance_bootstrap_reads_unchanged() {
    let loaded = load(data("envoy-conformance.yaml")).unwrap();
    assert_eq!(loaded.format, Format::Envoy);
    let config = &loaded.config;
    assert_eq!(
        config.admin.as_ref().unwrap().address,
        "127.0.0.1:0".parse().unwrap()
    );
    let listener = &config.listeners[0];
    assert_eq!(listener.name, "main");
    assert_eq!(listener.address, "127.0.0.1:0".parse().unwrap());
    assert_eq!(listener.per_connection_buffer_limit_bytes, Some(65536));
    let http = http(listener);
    assert_eq!(http.codec, Codec::Http1);
    assert!(http.http1_enable_trailers);
    assert_eq!(http.stream_idle_timeout, Some(Duration::from_secs(300)));
    let route = &http.virtual_hosts[0].routes[0];
    assert_eq!(route.matcher.path, PathMatch::Prefix("/".into()));
    let RouteAction::Cluster(target) = &route.action else {
        panic!("expected a cluster route")
    };
    assert_eq!(target.cluster, "upstream");
    assert_eq!(target.timeout, Some(Duration::from_millis(2500)));

    assert_eq!(http.http_filters.len(), 3);
    let probe = wasm(&http.http_filters[0]);
    assert_eq!(probe.name, "probe");
    assert_eq!(probe.configuration, br#"{"a":"x","b":1}"#);
    assert_eq!(probe.failure_policy, FailurePolicy::FailReload);
    assert_eq!(probe.reload_backoff, Duration::from_millis(250));
    assert!(probe.allow_on_headers_stop_iteration);
    assert_eq!(probe.vm.vm_id, "vm1");
    assert_eq!(probe.vm.runtime, WasmRuntime::V8);
    assert_eq!(probe.vm.configuration, b"vm-text");
    assert_eq!(
        probe.vm.code,
        CodeSource::File("/opt/pwx-test/probe.wasm".into())
    );
    let second = wasm(&http.http_filters[1]);
    assert_eq!(second.configuration, b"plain");
    assert_eq!(second.failure_policy, FailurePolicy::FailClosed);
    assert_eq!(second.reload_backoff, Duration::from_secs(1));
    assert_eq!(
        http.http_filters[2],
        HttpFilter::Router(Router {
            suppress_envoy_headers: true
        })
    );

    let cluster = &config.clusters[0];
    assert_eq!(cluster.name, "upstream");
    assert_eq!(cluster.discovery, Discovery::Static);
    assert_eq!(cluster.connect_timeout, Duration::from_secs(1));
    assert_eq!(cluster.protocol, UpstreamProtocol::Http1);
    assert!(cluster.http1_enable_trailers);
    assert_eq!(
        cluster.endpoints,
        vec![Endpoint {
            host: "127.0.0.1".into(),
            port: 18080
        }]
    );

    let ignored: Vec<String> = loaded
        .warnings
        .iter()
        .map(|w| w.origin.path.clone())
        .collect();
    assert_eq!(
        ignored,
        [
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stat_prefix",
            "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.name",
            "static_resources.clusters[0].load_assignment.cluster_name",
        ]
    );
    let first = loaded.warnings[0].to_string();
    assert!(
        first.contains("envoy-conformance.yaml:15:11: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stat_prefix: `stat_prefix` is accepted and ignored: pwx keeps no Envoy statistics"),
        "{first}"
    );
}

#[test]
fn tutorial_bootstrap_reads_unchanged() {
    let path = data("envoy-tutorial.yaml");
    let loaded = load(&path).unwrap();
    let config = &loaded.config;
    assert_eq!(
        config.node,
        Node {
            id: "tutorial-node".into(),
            cluster: "tutorial".into()
        }
    );
    assert_eq!(
        config.admin.as_ref().unwrap().address,
        "0.0.0.0:9901".parse().unwrap()
    );

    let service = &config.wasm_services[0];
    assert!(service.singleton);
    assert_eq!(service.plugin.name, "stats_service");
    assert_eq!(service.plugin.root_id, "service");
    assert_eq!(service.plugin.configuration, b"interval_ms=1000");
    assert_eq!(
        service.plugin.vm.code,
        CodeSource::File(data("./probe.wasm"))
    );

    let http = http(&config.listeners[0]);
    assert_eq!(http.codec, Codec::Auto);
    assert_eq!(http.virtual_hosts.len(), 2);
    let api = &http.virtual_hosts[0];
    assert_eq!(api.domains, ["api.example.com", "api.example.com:10000"]);
    assert_eq!(
        api.routes[0].matcher.headers,
        vec![HeaderMatcher {
            name: "x-canary".into(),
            matcher: HeaderMatch::Exact("yes".into()),
            invert: false,
            ignore_case: false,
        }]
    );
    let RouteAction::Cluster(grpc) = &api.routes[0].action else {
        panic!("expected a cluster route")
    };
    assert_eq!(grpc.timeout, None, "timeout: 0s disables the timeout");
    let local = &http.virtual_hosts[1];
    assert_eq!(
        local.routes[0].action,
        RouteAction::DirectResponse {
            status: 200,
            body: b"ok\n".to_vec()
        }
    );
    assert_eq!(
        local.routes[0].matcher.path,
        PathMatch::Path("/healthz".into())
    );
    let RouteAction::Cluster(web) = &local.routes[1].action else {
        panic!("expected a cluster route")
    };
    assert_eq!(web.timeout, Some(Duration::from_secs(15)));
    assert_eq!(web.prefix_rewrite.as_deref(), Some("/app/"));
    assert_eq!(web.host_rewrite_literal.as_deref(), Some("www.example.com"));

    let filter = wasm(&http.http_filters[0]);
    assert_eq!(
        filter.configuration,
        b"{\"header\": \"x-hello\", \"value\": \"world\"}\n"
    );
    assert_eq!(
        filter.failure_policy,
        FailurePolicy::FailOpen,
        "fail_open: true"
    );
    assert_eq!(filter.vm.configuration, b"hello", "BytesValue is base64");
    assert_eq!(filter.vm.environment, [("MODE".into(), "tutorial".into())]);
    assert_eq!(filter.vm.host_env_keys, ["HOME"]);
    assert_eq!(
        filter
            .vm
            .resolved_environment(|k| (k == "HOME").then(|| "/root".to_owned())),
        [
            ("HOME".to_owned(), "/root".to_owned()),
            ("MODE".to_owned(), "tutorial".to_owned())
        ]
    );
    assert_eq!(
        http.http_filters[1],
        HttpFilter::Router(Router {
            suppress_envoy_headers: false
        })
    );

    let web = config.cluster("web_service").unwrap();
    assert_eq!(web.discovery, Discovery::StrictDns);
    assert_eq!(web.dns_lookup_family, DnsLookupFamily::V4Only);
    assert_eq!(web.endpoints.len(), 2);
    assert_eq!(web.connect_timeout, Duration::from_secs(5));
    let grpc = config.cluster("grpc_backend").unwrap();
    assert_eq!(grpc.protocol, UpstreamProtocol::Http2);
    assert_eq!(grpc.lb_policy, LbPolicy::LeastRequest);
    assert_eq!(grpc.connect_timeout, Duration::from_millis(250));
    let external = config.cluster("external").unwrap();
    assert_eq!(external.discovery, Discovery::LogicalDns);
    assert_eq!(
        external.tls,
        Some(UpstreamTls {
            sni: Some("www.example.com".into()),
            sni_from_endpoint: false,
            validation: UpstreamValidation::TrustedCa(DataSource::File(
                "/etc/ssl/certs/ca-certificates.crt".into()
            )),
            verify_server_name: false,
            alpn: vec!["h2".into(), "http/1.1".into()],
            client_certificate: None,
        })
    );

    let ignored: Vec<&str> = loaded
        .warnings
        .iter()
        .map(|w| w.origin.path.rsplit('.').next().unwrap())
        .collect();
    assert_eq!(
        ignored,
        [
            "stat_prefix",
            "access_log",
            "name",
            "cluster_name",
            "cluster_name",
            "cluster_name",
            "name",
            "name"
        ],
        "{:#?}",
        loaded.warnings
    );

    let origin = loaded
        .sources
        .get("listeners[0].virtual_hosts[1].routes[1].cluster")
        .unwrap();
    assert_eq!((origin.location.line, origin.location.column), (69, 38));
    assert!(
        origin
            .path
            .ends_with("virtual_hosts[1].routes[1].route.cluster")
    );
}

#[test]
fn tcp_proxy_with_wasm_network_filter() {
    let text = r#"
static_resources:
  listeners:
  - name: tcp
    address: {socket_address: {address: 127.0.0.1, port_value: 15000}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.wasm
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm
          config:
            name: net
            vm_config:
              code: {remote: {http_uri: {uri: "https://example.com/f.wasm", cluster: db, timeout: 10s}, sha256: "AB0000000000000000000000000000000000000000000000000000000000000c"}}
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp
          cluster: db
  clusters:
  - name: db
    load_assignment:
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: "::1", port_value: "5432"}}}}]}]
"#;
    let loaded = parse_str(text, "tcp.yaml").unwrap();
    let ListenerKind::Tcp(tcp) = &loaded.config.listeners[0].kind else {
        panic!("expected a TCP listener")
    };
    assert_eq!(tcp.cluster, "db");
    assert_eq!(
        tcp.idle_timeout,
        Some(Duration::from_secs(3600)),
        "Envoy's default"
    );
    assert_eq!(tcp.network_filters[0].name, "net");
    assert_eq!(
        tcp.network_filters[0].vm.code,
        CodeSource::Remote {
            uri: "https://example.com/f.wasm".into(),
            sha256: "ab0000000000000000000000000000000000000000000000000000000000000c".into(),
            cluster: Some("db".into()),
            timeout: Some(Duration::from_secs(10)),
        }
    );
    assert_eq!(tcp.network_filters[0].vm.runtime, WasmRuntime::Default);
    assert_eq!(
        loaded.config.clusters[0].endpoints[0].port, 5432,
        "quoted port"
    );
}

#[test]
fn tcp_proxy_idle_timeout_is_read_and_zero_disables_it() {
    let bootstrap = |idle: &str| {
        format!(
            r#"
static_resources:
  listeners:
  - name: tcp
    address: {{socket_address: {{address: 127.0.0.1, port_value: 15000}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: tcp
          cluster: db
          idle_timeout: {idle}
  clusters:
  - name: db
    load_assignment:
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 5432}}}}}}}}]}}]
"#
        )
    };
    let idle = |text: String| {
        let loaded = parse_str(&text, "tcp.yaml").unwrap();
        let ListenerKind::Tcp(tcp) = &loaded.config.listeners[0].kind else {
            panic!("expected a TCP listener")
        };
        tcp.idle_timeout
    };
    assert_eq!(idle(bootstrap("2.5s")), Some(Duration::from_millis(2500)));
    assert_eq!(idle(bootstrap("0s")), None);
}

#[test]
fn empty_http_filters_run_the_router_alone() {
    let text = r#"
static_resources:
  listeners:
  - address: {socket_address: {address: 127.0.0.1}}
    filter_chains:
    - filters:
      - typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: []}]}
"#;
    let loaded = parse_str(text, "min.yaml").unwrap();
    let listener = &loaded.config.listeners[0];
    assert_eq!(listener.name, "listener_0");
    assert_eq!(
        http(listener).http_filters,
        [HttpFilter::Router(Router::default())]
    );
}
