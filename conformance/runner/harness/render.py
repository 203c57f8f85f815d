"""Renders a case into the Envoy bootstrap both proxies are started with."""

import json

import yaml

STRING_VALUE = "type.googleapis.com/google.protobuf.StringValue"


def _text(value):
    """Configuration values: strings are used as is, anything else becomes compact JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def wasm_filter(f, module_path):
    vm = {
        "runtime": "envoy.wasm.runtime.v8",
        "vm_id": f.get("vm_id", ""),
        "code": {"local": {"filename": module_path}},
    }
    if f.get("vm_config") is not None:
        vm["configuration"] = {"@type": STRING_VALUE, "value": _text(f["vm_config"])}
    plugin = {"name": f.get("name", "probe"), "root_id": f.get("root_id", ""), "vm_config": vm}
    if f.get("config") is not None:
        plugin["configuration"] = {"@type": STRING_VALUE, "value": _text(f["config"])}
    if f.get("failure_policy"):
        plugin["failure_policy"] = f["failure_policy"]
    if f.get("reload_backoff_ms") is not None:
        plugin["reload_config"] = {
            "backoff": {"base_interval": f"{f['reload_backoff_ms'] / 1000.0}s"}}
    if f.get("allow_on_headers_stop_iteration") is not None:
        plugin["allow_on_headers_stop_iteration"] = f["allow_on_headers_stop_iteration"]
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": plugin,
        },
    }


def network_wasm_filter(f, module_path):
    """The same plugin as `wasm_filter`, as a network filter."""
    http = wasm_filter(f, module_path)
    return {
        "name": "envoy.filters.network.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm",
            "config": http["typed_config"]["config"],
        },
    }


def _static_cluster(name, port):
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                "address": "127.0.0.1", "port_value": port}}}}]}],
        },
    }


def tcp_bootstrap(case, module_paths, upstream_ports):
    """A TCP listener: the case's filters as network wasm filters, then tcp_proxy to `upstream`.
    `upstream_ports` maps cluster names (`upstream`, and each of the case's `upstreams:`) to
    ports."""
    proxy = case.get("proxy") or {}
    filters = [network_wasm_filter(f, p) for f, p in zip(case["filters"], module_paths)]
    tcp_proxy = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "stat_prefix": "tcp",
        "cluster": "upstream",
    }
    if proxy.get("idle_timeout_ms") is not None:
        tcp_proxy["idle_timeout"] = f"{proxy['idle_timeout_ms'] / 1000.0}s"
    filters.append({"name": "envoy.filters.network.tcp_proxy", "typed_config": tcp_proxy})
    listener = {
        "name": "main",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [{"filters": filters}],
    }
    clusters = [_static_cluster(name, port) for name, port in upstream_ports.items()]
    return {
        "static_resources": {"listeners": [listener], "clusters": clusters},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
    }


def bootstrap(case, module_paths, upstream_port):
    """The envoy.yaml for one case. `module_paths[i]` is the .wasm of `case['filters'][i]`."""
    proxy = case.get("proxy") or {}
    http_filters = [wasm_filter(f, p) for f, p in zip(case["filters"], module_paths)]
    http_filters.append({
        "name": "envoy.filters.http.router",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
            "suppress_envoy_headers": True,
        },
    })
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network."
                 "http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "ingress",
        "codec_type": "HTTP1",
        "http_protocol_options": {"enable_trailers": True},
        "route_config": {
            "name": "local_route",
            "virtual_hosts": [{
                "name": "all",
                "domains": ["*"],
                "routes": [{"match": {"prefix": "/"},
                            "route": {"cluster": "upstream",
                                      "timeout": f"{proxy.get('route_timeout_ms', 3000) / 1000.0}s"}}],
            }],
        },
        "http_filters": http_filters,
    }
    listener = {
        "name": "main",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}],
    }
    cluster = {
        "name": "upstream",
        "type": "STATIC",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http_protocol_options": {"enable_trailers": True}},
            }
        },
        "load_assignment": {
            "cluster_name": "upstream",
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                "address": "127.0.0.1", "port_value": upstream_port}}}}]}],
        },
    }
    if proxy.get("buffer_limit_bytes"):
        listener["per_connection_buffer_limit_bytes"] = proxy["buffer_limit_bytes"]
        cluster["per_connection_buffer_limit_bytes"] = proxy["buffer_limit_bytes"]
    return {
        "static_resources": {"listeners": [listener], "clusters": [cluster]},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
    }


def dump(doc):
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
