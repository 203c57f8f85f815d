//! Envoy listeners: the address, one filter chain, and in it either an
//! `http_connection_manager` or Wasm network filters + `tcp_proxy`.

use crate::envoy::address;
use crate::envoy::any::type_of;
use crate::envoy::reader::{Ctx, Obj, origin};
use crate::envoy::route::route_config;
use crate::envoy::wasm::plugin_config;
use crate::error::ConfigError;
use crate::model::{
    Codec, HttpFilter, HttpListener, Listener, ListenerKind, Router, TcpListener, WasmPlugin,
};
use crate::yaml::{Node, Path};
use std::time::Duration;

const HCM: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const TCP_PROXY: &str = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
const NETWORK_WASM: &str = "envoy.extensions.filters.network.wasm.v3.Wasm";
const HTTP_WASM: &str = "envoy.extensions.filters.http.wasm.v3.Wasm";
const ROUTER: &str = "envoy.extensions.filters.http.router.v3.Router";
const ROUTER_NAME: &str = "envoy.filters.http.router";

pub(crate) fn listener(
    ctx: &mut Ctx,
    node: &Node,
    path: &Path,
    index: usize,
) -> Result<Listener, ConfigError> {
    let model = format!("listeners[{index}]");
    let obj = ctx.object(
        node,
        path,
        &[
            "name",
            "address",
            "filter_chains",
            "per_connection_buffer_limit_bytes",
        ],
        &[
            ("stat_prefix", "pwx keeps no Envoy statistics"),
            ("traffic_direction", "it only labels statistics and tracing"),
            (
                "enable_reuse_port",
                "pwx always binds one socket per worker with SO_REUSEPORT",
            ),
        ],
    )?;
    ctx.sources.insert(model.clone(), obj.origin());
    let name = obj
        .string("name")?
        .unwrap_or_else(|| format!("listener_{index}"));
    if let Some((n, p)) = obj.get("name") {
        ctx.sources.insert(format!("{model}.name"), origin(n, &p));
    }
    let (address_node, address_path) = obj.require("address")?;
    ctx.sources.insert(
        format!("{model}.address"),
        origin(address_node, &address_path),
    );
    let address = address(ctx, address_node, &address_path)?;

    let chains = obj.list("filter_chains")?;
    let Some((chain_node, chain_path)) = chains.first() else {
        return Err(
            ConfigError::at(obj.origin(), "the listener has no filter_chains")
                .with_hint("add one filter chain with an http_connection_manager"),
        );
    };
    if let Some((extra, extra_path)) = chains.get(1) {
        return Err(ConfigError::at(
            origin(extra, extra_path),
            "pwx supports one filter chain per listener",
        )
        .with_hint("merge the chains, or use one listener per chain"));
    }
    let chain = ctx.object(
        chain_node,
        chain_path,
        &["filters", "transport_socket"],
        &[(
            "name",
            "only names the chain for filter_chain_matcher, which pwx does not support",
        )],
    )?;
    let tls = match chain.get("transport_socket") {
        Some((n, p)) => Some(crate::envoy::tls::downstream(ctx, n, &p, &model)?),
        None => None,
    };
    let filters = chain.list("filters")?;
    if filters.is_empty() {
        return Err(
            ConfigError::at(chain.origin(), "the filter chain has no filters")
                .with_hint("add an envoy.filters.network.http_connection_manager"),
        );
    }
    let kind = network_filters(ctx, &filters, &model)?;
    Ok(Listener {
        name,
        address,
        per_connection_buffer_limit_bytes: obj
            .uint("per_connection_buffer_limit_bytes", u64::from(u32::MAX))?
            .map(|v| v as u32),
        kind,
        tls,
    })
}

/// The chain's network filters: `[http_connection_manager]` or `[wasm…, tcp_proxy]`.
fn network_filters(
    ctx: &mut Ctx,
    filters: &[(&Node, Path)],
    model: &str,
) -> Result<ListenerKind, ConfigError> {
    let mut wasm = Vec::new();
    let last = filters.len() - 1;
    for (i, (node, path)) in filters.iter().enumerate() {
        let filter = ctx.object(node, path, &["name", "typed_config"], &[])?;
        let (typed_node, typed_path) = filter.require("typed_config")?;
        let typed = Obj::typed(typed_node, &typed_path)?;
        let kind = type_of(&typed, &[HCM, TCP_PROXY, NETWORK_WASM])?;
        if kind != NETWORK_WASM && i != last {
            return Err(ConfigError::at(
                filter.origin(),
                "this terminal filter must be the last network filter",
            ));
        }
        match kind {
            HCM => {
                if !wasm.is_empty() {
                    return Err(ConfigError::at(
                        filter.origin(),
                        "pwx does not run Wasm network filters in front of an http_connection_manager",
                    )
                    .with_hint("use envoy.filters.http.wasm inside the connection manager instead"));
                }
                return http_connection_manager(ctx, typed_node, &typed_path, model)
                    .map(ListenerKind::Http);
            }
            TCP_PROXY => {
                let tcp = ctx.object(
                    typed_node,
                    &typed_path,
                    &["@type", "cluster", "idle_timeout"],
                    &[("stat_prefix", "pwx keeps no Envoy statistics")],
                )?;
                let (cluster_node, cluster_path) = tcp.require("cluster").map_err(|e| {
                    e.with_hint("pwx supports tcp_proxy to one `cluster` (no weighted_clusters)")
                })?;
                ctx.sources.insert(
                    format!("{model}.cluster"),
                    origin(cluster_node, &cluster_path),
                );
                let idle_timeout = match tcp.duration("idle_timeout")? {
                    None => Some(crate::defaults::TCP_IDLE_TIMEOUT),
                    Some(Duration::ZERO) => None,
                    Some(timeout) => Some(timeout),
                };
                return Ok(ListenerKind::Tcp(TcpListener {
                    network_filters: wasm,
                    cluster: tcp.require_string("cluster")?,
                    idle_timeout,
                }));
            }
            _ => {
                let model_path = format!("{model}.network_filters[{}]", wasm.len());
                ctx.sources.insert(model_path.clone(), filter.origin());
                wasm.push(wasm_filter(ctx, typed_node, &typed_path, &model_path)?);
            }
        }
    }
    Err(ConfigError::at(
        crate::envoy::reader::origin(filters[last].0, &filters[last].1),
        "the last network filter must be envoy.filters.network.tcp_proxy or envoy.filters.network.http_connection_manager",
    ))
}

/// `envoy.filters.{http,network}.wasm`'s typed_config: `{config: PluginConfig}`.
fn wasm_filter(
    ctx: &mut Ctx,
    node: &Node,
    path: &Path,
    model_path: &str,
) -> Result<WasmPlugin, ConfigError> {
    let obj = ctx.object(node, path, &["@type", "config"], &[])?;
    let (config, config_path) = obj.require("config")?;
    plugin_config(ctx, config, &config_path, model_path)
}

fn http_connection_manager(
    ctx: &mut Ctx,
    node: &Node,
    path: &Path,
    model: &str,
) -> Result<HttpListener, ConfigError> {
    let obj = ctx.object(
        node,
        path,
        &[
            "@type",
            "codec_type",
            "route_config",
            "http_filters",
            "stream_idle_timeout",
            "request_timeout",
            "http_protocol_options",
        ],
        &[
            ("stat_prefix", "pwx keeps no Envoy statistics"),
            (
                "access_log",
                "pwx does not write Envoy access logs; it logs requests with its own logger",
            ),
        ],
    )?;
    let codec = match obj
        .enum_name("codec_type", &["AUTO", "HTTP1", "HTTP2"])?
        .as_deref()
    {
        Some("HTTP1") => Codec::Http1,
        Some("HTTP2") => Codec::Http2,
        _ => Codec::Auto,
    };
    let http1_enable_trailers = match obj.get("http_protocol_options") {
        Some((n, p)) => ctx
            .object(n, &p, &["enable_trailers"], &[])?
            .bool("enable_trailers")?
            .unwrap_or(false),
        None => false,
    };
    let (route_node, route_path) = obj.require("route_config").map_err(|e| {
        e.with_hint("pwx needs the routes inline in route_config (RDS is not supported)")
    })?;
    let virtual_hosts = route_config(ctx, route_node, &route_path, model)?;
    let http_filters = http_filters(ctx, &obj.list("http_filters")?, &obj.origin(), model)?;
    let stream_idle_timeout = match obj.duration("stream_idle_timeout")? {
        None => Some(crate::defaults::STREAM_IDLE_TIMEOUT),
        Some(Duration::ZERO) => None,
        Some(timeout) => Some(timeout),
    };
    Ok(HttpListener {
        codec,
        virtual_hosts,
        http_filters,
        stream_idle_timeout,
        request_timeout: obj.duration("request_timeout")?.filter(|d| !d.is_zero()),
        http1_enable_trailers,
    })
}

fn http_filters(
    ctx: &mut Ctx,
    filters: &[(&Node, Path)],
    hcm: &crate::error::Origin,
    model: &str,
) -> Result<Vec<HttpFilter>, ConfigError> {
    let mut out = Vec::new();
    if filters.is_empty() {
        // Envoy 1.40 accepts an empty list and runs the router alone.
        ctx.sources
            .insert(format!("{model}.http_filters[0]"), hcm.clone());
        return Ok(vec![HttpFilter::Router(Router::default())]);
    }
    for (i, (node, path)) in filters.iter().enumerate() {
        let model_path = format!("{model}.http_filters[{i}]");
        let filter = ctx.object(node, path, &["name", "typed_config"], &[])?;
        ctx.sources.insert(model_path.clone(), filter.origin());
        let name = filter.string_or_empty("name")?;
        if let Some(HttpFilter::Router(_)) = out.last() {
            return Err(ConfigError::at(
                filter.origin(),
                format!(
                    "`{name}` follows envoy.filters.http.router, which must be the last HTTP filter"
                ),
            )
            .with_hint("move the router to the end of http_filters"));
        }
        let Some((typed_node, typed_path)) = filter.get("typed_config") else {
            return Err(ConfigError::at(filter.origin(), "missing required field `typed_config`")
                .with_hint(format!(
                    "Envoy 1.40 needs typed_config; for the router write `typed_config: {{\"@type\": type.googleapis.com/{ROUTER}}}`"
                )));
        };
        let typed = Obj::typed(typed_node, &typed_path)?;
        match type_of(&typed, &[HTTP_WASM, ROUTER])? {
            ROUTER => {
                let router = ctx.object(
                    typed_node,
                    &typed_path,
                    &["@type", "suppress_envoy_headers"],
                    &[],
                )?;
                out.push(HttpFilter::Router(Router {
                    suppress_envoy_headers: router.bool("suppress_envoy_headers")?.unwrap_or(false),
                }));
            }
            _ => out.push(HttpFilter::Wasm(wasm_filter(
                ctx,
                typed_node,
                &typed_path,
                &model_path,
            )?)),
        }
    }
    if !matches!(out.last(), Some(HttpFilter::Router(_))) {
        return Err(ConfigError::at(
            hcm.clone(),
            format!("http_filters must end with {ROUTER_NAME}"),
        )
        .with_hint(format!(
            "add `- name: {ROUTER_NAME}` with `typed_config: {{\"@type\": type.googleapis.com/{ROUTER}}}` as the last HTTP filter"
        )));
    }
    Ok(out)
}
