//! Every error names the file, line, column and field path, says what is wrong and, where there
//! is something to do, what.
#![allow(clippy::unwrap_used)]

use pwx_config::parse_str;

fn error(text: &str, file: &str) -> String {
    match parse_str(text, file) {
        Ok(loaded) => panic!("expected an error, loaded {:?}", loaded.config),
        Err(error) => error.to_string(),
    }
}

/// A minimal Envoy bootstrap with `hcm_extra` added to the connection manager, `filters` as
/// its http_filters and `cluster` as the route's cluster.
fn envoy(hcm_extra: &str, filters: &str, cluster: &str) -> String {
    format!(
        r#"static_resources:
  listeners:
  - name: main
    address: {{socket_address: {{address: 127.0.0.1, port_value: 10000}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
{hcm_extra}          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: /}}
                route: {{cluster: {cluster}}}
          http_filters:
{filters}
  clusters:
  - name: backend
    load_assignment:
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 8080}}}}}}}}]}}]
"#
    )
}

const ROUTER: &str = r#"          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}"#;

fn wasm_filter(runtime: &str) -> String {
    format!(
        r#"          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: f
                vm_config:
                  runtime: {runtime}
                  code: {{local: {{filename: f.wasm}}}}"#
    )
}

#[test]
fn envoy_bootstrap_used_by_these_tests_is_valid() {
    let text = envoy(
        "",
        &format!("{}\n{ROUTER}", wasm_filter("envoy.wasm.runtime.v8")),
        "backend",
    );
    parse_str(&text, "envoy.yaml").unwrap();
}

#[test]
fn envoy_unknown_field() {
    let text = envoy("          use_remote_address: true\n", ROUTER, "backend");
    assert_eq!(
        error(&text, "envoy.yaml"),
        "envoy.yaml:10:11: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.use_remote_address: unknown or unsupported field `use_remote_address`\n  \
         hint: pwx does not support `use_remote_address` here; remove it, or see docs/config.md for the Envoy fields pwx reads"
    );
}

#[test]
fn envoy_unknown_type() {
    let filters = r#"          - name: envoy.filters.http.lua
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua}"#;
    let text = envoy("", &format!("{filters}\n{ROUTER}"), "backend");
    assert_eq!(
        error(&text, "envoy.yaml"),
        "envoy.yaml:19:37: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type: unsupported @type `type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua`\n  \
         hint: pwx supports here: type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm, type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
    );
}

#[test]
fn envoy_route_to_missing_cluster() {
    let text = envoy("", ROUTER, "nowhere");
    assert_eq!(
        error(&text, "envoy.yaml"),
        "envoy.yaml:16:34: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].route.cluster: unknown cluster `nowhere`\n  \
         hint: defined clusters: backend"
    );
}

#[test]
fn envoy_bad_duration() {
    let text = envoy("          stream_idle_timeout: 250ms\n", ROUTER, "backend");
    assert_eq!(
        error(&text, "envoy.yaml"),
        "envoy.yaml:10:32: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stream_idle_timeout: invalid duration `250ms`: Envoy durations are seconds with an `s` suffix, e.g. `0.25s` for 250 ms"
    );
}

#[test]
fn envoy_bad_address() {
    let text = envoy("", ROUTER, "backend").replace(
        "address: 127.0.0.1, port_value: 10000",
        "address: localhost, port_value: 10000",
    );
    assert_eq!(
        error(&text, "envoy.yaml"),
        "envoy.yaml:4:41: static_resources.listeners[0].address.socket_address.address: `localhost` is not an IP address\n  \
         hint: listeners and the admin endpoint bind an IP address, e.g. 127.0.0.1, 0.0.0.0 or ::"
    );
}

#[test]
fn envoy_router_not_last() {
    let text = envoy(
        "",
        &format!("{ROUTER}\n{}", wasm_filter("envoy.wasm.runtime.v8")),
        "backend",
    );
    assert_eq!(
        error(&text, "envoy.yaml"),
        "envoy.yaml:20:13: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[1]: `envoy.filters.http.wasm` follows envoy.filters.http.router, which must be the last HTTP filter\n  \
         hint: move the router to the end of http_filters"
    );
}

#[test]
fn envoy_no_router() {
    let text = envoy("", &wasm_filter("envoy.wasm.runtime.v8"), "backend");
    let message = error(&text, "envoy.yaml");
    assert!(
        message.starts_with("envoy.yaml:9:11: static_resources.listeners[0].filter_chains[0].filters[0].typed_config: http_filters must end with envoy.filters.http.router"),
        "{message}"
    );
}

#[test]
fn envoy_null_runtime() {
    let text = envoy(
        "",
        &format!("{}\n{ROUTER}", wasm_filter("envoy.wasm.runtime.null")),
        "backend",
    );
    assert_eq!(
        error(&text, "envoy.yaml"),
        "envoy.yaml:24:28: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.config.vm_config.runtime: pwx cannot run null-VM plugins: `envoy.wasm.runtime.null` means native code compiled into Envoy\n  \
         hint: build the plugin as a .wasm module and use envoy.wasm.runtime.v8 (pwx runs every runtime name on wasmtime)"
    );
}

#[test]
fn envoy_struct_configuration_is_refused_with_the_reason() {
    let filters = wasm_filter("envoy.wasm.runtime.v8").replace(
        "                name: f\n",
        "                name: f\n                configuration: {\"@type\": type.googleapis.com/google.protobuf.Struct, value: {a: 1}}\n",
    );
    let message = error(
        &envoy("", &format!("{filters}\n{ROUTER}"), "backend"),
        "envoy.yaml",
    );
    assert!(
        message.contains("config.configuration.@type: unsupported @type `type.googleapis.com/google.protobuf.Struct`"),
        "{message}"
    );
    assert!(
        message.contains(
            "Envoy passes other types, google.protobuf.Struct included, as serialized protobuf"
        ),
        "{message}"
    );
}

#[test]
fn envoy_fail_open_and_failure_policy_conflict() {
    let filters = wasm_filter("envoy.wasm.runtime.v8").replace(
        "                name: f\n",
        "                name: f\n                fail_open: true\n                failure_policy: FAIL_RELOAD\n",
    );
    let message = error(
        &envoy("", &format!("{filters}\n{ROUTER}"), "backend"),
        "envoy.yaml",
    );
    assert!(
        message.contains(
            "typed_config.config: only one of `fail_open` or `failure_policy` can be set"
        ),
        "{message}"
    );
}

/// A minimal pwx file; `listener_extra` is added to the listener, `route` is the route.
fn pwx(listener_extra: &str, route: &str) -> String {
    format!(
        "listeners:\n  - name: main\n    address: 127.0.0.1:10000\n{listener_extra}    routes:\n      - {route}\nclusters:\n  - name: backend\n    endpoints: [127.0.0.1:8080]\n"
    )
}

#[test]
fn pwx_file_used_by_these_tests_is_valid() {
    parse_str(&pwx("", "{cluster: backend}"), "pwx.yaml").unwrap();
}

#[test]
fn pwx_unknown_field() {
    assert_eq!(
        error(
            &pwx("    use_remote_address: true\n", "{cluster: backend}"),
            "pwx.yaml"
        ),
        "pwx.yaml:4:5: listeners[0].use_remote_address: unknown field `use_remote_address`, expected one of `name`, `address`, `codec`, `routes`, `virtual_hosts`, `filters`, `tcp_proxy`, `per_connection_buffer_limit_bytes`, `stream_idle_timeout`, `request_timeout`, `http1_enable_trailers`, `suppress_envoy_headers`, `tls`\n  \
         hint: see docs/config.md for the pwx YAML format (`pwx schema` prints its JSON Schema)"
    );
}

#[test]
fn pwx_route_to_missing_cluster() {
    assert_eq!(
        error(&pwx("", "{cluster: nowhere}"), "pwx.yaml"),
        "pwx.yaml:5:19: listeners[0].routes[0].cluster: unknown cluster `nowhere`\n  hint: defined clusters: backend"
    );
}

#[test]
fn pwx_bad_duration() {
    assert_eq!(
        error(
            &pwx("", "{cluster: backend, timeout: 5 seconds}"),
            "pwx.yaml"
        ),
        "pwx.yaml:5:37: listeners[0].routes[0].timeout: invalid duration `5 seconds`: write a number and a unit (ms, s, m or h), e.g. 250ms, 5s, 1m"
    );
}

#[test]
fn pwx_bad_address() {
    let text = pwx("", "{cluster: backend}").replace("127.0.0.1:10000", "localhost:10000");
    assert_eq!(
        error(&text, "pwx.yaml"),
        "pwx.yaml:3:14: listeners[0].address: invalid address `localhost:10000`: expected IP:port, e.g. 127.0.0.1:10000, 0.0.0.0:8080 or [::1]:10000"
    );
}

#[test]
fn pwx_filter_without_module() {
    let text = pwx("    filters:\n      - name: auth\n", "{cluster: backend}");
    assert_eq!(
        error(&text, "pwx.yaml"),
        "pwx.yaml:5:9: listeners[0].filters[0]: missing field `module`"
    );
}

#[test]
fn pwx_module_url_without_sha256() {
    let text = pwx(
        "    filters:\n      - {name: auth, module: \"https://example.com/a.wasm\"}\n",
        "{cluster: backend}",
    );
    assert_eq!(
        error(&text, "pwx.yaml"),
        "pwx.yaml:5:30: listeners[0].filters[0].module: a module URL needs the module's sha256\n  \
         hint: append #sha256=<64 hex digits> (`sha256sum filter.wasm` prints it)"
    );
}

#[test]
fn pwx_bad_enum_value() {
    let text = pwx(
        "    filters:\n      - {name: auth, module: a.wasm, failure_policy: fail_sometimes}\n",
        "{cluster: backend}",
    );
    assert_eq!(
        error(&text, "pwx.yaml"),
        "pwx.yaml:5:54: listeners[0].filters[0].failure_policy: unknown variant `fail_sometimes`, expected one of `fail_closed`, `fail_open`, `fail_reload`"
    );
}

#[test]
fn duplicate_names_point_at_both() {
    let text =
        pwx("", "{cluster: backend}") + "  - name: backend\n    endpoints: [127.0.0.1:8081]\n";
    assert_eq!(
        error(&text, "pwx.yaml"),
        "pwx.yaml:9:11: clusters[1].name: duplicate cluster name `backend` (first defined at pwx.yaml:7:11)"
    );
}

#[test]
fn duplicate_listener_addresses() {
    let text = pwx("", "{cluster: backend}").replace(
        "clusters:",
        "  - name: other\n    address: 127.0.0.1:10000\n    routes: [{cluster: backend}]\nclusters:",
    );
    assert_eq!(
        error(&text, "pwx.yaml"),
        "pwx.yaml:7:14: listeners[1].address: listeners `main` and `other` both listen on 127.0.0.1:10000"
    );
}

#[test]
fn static_cluster_needs_ip_addresses() {
    let text = pwx("", "{cluster: backend}").replace(
        "endpoints: [127.0.0.1:8080]",
        "discovery: static\n    endpoints: [backend.local:8080]",
    );
    assert_eq!(
        error(&text, "pwx.yaml"),
        "pwx.yaml:9:17: clusters[0].endpoints[0]: `backend.local` is not an IP address, and cluster `backend` is STATIC\n  \
         hint: use an IP address, or make the cluster STRICT_DNS (pwx YAML: discovery: strict_dns)"
    );
}

#[test]
fn empty_endpoints() {
    let text = pwx("", "{cluster: backend}").replace("[127.0.0.1:8080]", "[]");
    assert_eq!(
        error(&text, "pwx.yaml"),
        "pwx.yaml:8:16: clusters[0].endpoints: cluster `backend` has no endpoints\n  hint: add at least one endpoint (host and port)"
    );
}

#[test]
fn yaml_syntax_error() {
    let message = error("listeners: [\n  name: x\n", "bad.yaml");
    assert!(message.starts_with("bad.yaml:"), "{message}");
    assert!(message.contains("invalid YAML"), "{message}");
}

#[test]
fn duplicate_keys() {
    assert_eq!(
        error(
            "admin: {address: 127.0.0.1:9901}\nadmin: {address: 127.0.0.1:9902}\n",
            "dup.yaml"
        ),
        "dup.yaml:2:1: duplicate key `admin`"
    );
}

#[test]
fn unreadable_file() {
    let missing = std::env::temp_dir().join("pwx-config-no-such-file.yaml");
    let message = pwx_config::load(&missing).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!(
            "{}: cannot read the configuration:",
            missing.display()
        )),
        "{message}"
    );
}
