//! Envoy clusters: type, load assignment, protocol options, TLS transport socket.

use crate::envoy::any::type_of;
use crate::envoy::reader::{Ctx, Obj, origin, string};
use crate::error::ConfigError;
use crate::model::{Cluster, Discovery, DnsLookupFamily, Endpoint, LbPolicy, UpstreamProtocol};
use crate::yaml::{Node, Path};

const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

pub(crate) fn cluster(
    ctx: &mut Ctx,
    node: &Node,
    path: &Path,
    index: usize,
) -> Result<Cluster, ConfigError> {
    let model = format!("clusters[{index}]");
    let obj = ctx.object(
        node,
        path,
        &[
            "name",
            "type",
            "connect_timeout",
            "lb_policy",
            "load_assignment",
            "typed_extension_protocol_options",
            "http2_protocol_options",
            "transport_socket",
            "dns_lookup_family",
            "dns_refresh_rate",
            "per_connection_buffer_limit_bytes",
        ],
        &[],
    )?;
    ctx.sources.insert(model.clone(), obj.origin());
    let (name_node, name_path) = obj.require("name")?;
    ctx.sources
        .insert(format!("{model}.name"), origin(name_node, &name_path));
    let discovery = match obj
        .enum_name("type", &["STATIC", "STRICT_DNS", "LOGICAL_DNS"])?
        .as_deref()
    {
        Some("STRICT_DNS") => Discovery::StrictDns,
        Some("LOGICAL_DNS") => Discovery::LogicalDns,
        _ => Discovery::Static,
    };
    let dns_lookup_family = match obj
        .enum_name(
            "dns_lookup_family",
            &["AUTO", "V4_ONLY", "V6_ONLY", "V4_PREFERRED", "ALL"],
        )?
        .as_deref()
    {
        Some("V4_ONLY") => DnsLookupFamily::V4Only,
        Some("V6_ONLY") => DnsLookupFamily::V6Only,
        Some("V4_PREFERRED") => DnsLookupFamily::V4Preferred,
        Some("ALL") => DnsLookupFamily::All,
        _ => DnsLookupFamily::Auto,
    };
    let lb_policy = match obj
        .enum_name("lb_policy", &["ROUND_ROBIN", "LEAST_REQUEST", "RANDOM"])?
        .as_deref()
    {
        Some("LEAST_REQUEST") => LbPolicy::LeastRequest,
        Some("RANDOM") => LbPolicy::Random,
        _ => LbPolicy::RoundRobin,
    };
    let endpoints = match obj.get("load_assignment") {
        Some((n, p)) => load_assignment(ctx, n, &p, &model)?,
        None => {
            ctx.sources
                .insert(format!("{model}.endpoints"), obj.origin());
            Vec::new()
        }
    };
    let (protocol, http1_enable_trailers) = protocol(ctx, &obj)?;
    let tls = match obj.get("transport_socket") {
        Some((n, p)) => Some(crate::envoy::tls::upstream(ctx, n, &p, &model)?),
        None => None,
    };
    Ok(Cluster {
        name: string(name_node, &name_path)?,
        discovery,
        dns_lookup_family,
        endpoints,
        connect_timeout: obj
            .duration("connect_timeout")?
            .unwrap_or(crate::defaults::CONNECT_TIMEOUT),
        protocol,
        http1_enable_trailers,
        lb_policy,
        per_connection_buffer_limit_bytes: obj
            .uint("per_connection_buffer_limit_bytes", u64::from(u32::MAX))?
            .map(|v| v as u32),
        dns_refresh_rate: obj
            .duration("dns_refresh_rate")?
            .unwrap_or(crate::defaults::DNS_REFRESH_RATE),
        tls,
    })
}

fn load_assignment(
    ctx: &mut Ctx,
    node: &Node,
    path: &Path,
    model: &str,
) -> Result<Vec<Endpoint>, ConfigError> {
    let obj = ctx.object(
        node,
        path,
        &["endpoints"],
        &[(
            "cluster_name",
            "in a static load assignment it only repeats the cluster's name",
        )],
    )?;
    ctx.sources
        .insert(format!("{model}.endpoints"), obj.origin());
    let mut endpoints = Vec::new();
    for (n, p) in obj.list("endpoints")? {
        let locality = ctx.object(n, &p, &["lb_endpoints"], &[])?;
        for (n, p) in locality.list("lb_endpoints")? {
            let lb_endpoint = ctx.object(n, &p, &["endpoint"], &[])?;
            let (n, p) = lb_endpoint.require("endpoint")?;
            let endpoint = ctx.object(n, &p, &["address"], &[])?;
            let (n, p) = endpoint.require("address")?;
            ctx.sources.insert(
                format!("{model}.endpoints[{}]", endpoints.len()),
                origin(n, &p),
            );
            let address = ctx.object(n, &p, &["socket_address"], &[])?;
            let (n, p) = address.require("socket_address")?;
            let socket = ctx.object(n, &p, &["address", "port_value", "protocol"], &[])?;
            check_tcp(&socket)?;
            let port = socket
                .uint("port_value", u64::from(u16::MAX))?
                .ok_or_else(|| {
                    ConfigError::at(socket.origin(), "missing required field `port_value`")
                })?;
            endpoints.push(Endpoint {
                host: socket.require_string("address")?,
                port: port as u16,
            });
        }
    }
    Ok(endpoints)
}

/// `protocol: TCP` is the only one pwx (and an HTTP cluster) can use.
pub(crate) fn check_tcp(socket: &Obj<'_>) -> Result<(), ConfigError> {
    socket.enum_name("protocol", &["TCP"])?;
    Ok(())
}

/// The upstream HTTP version: `typed_extension_protocol_options` (v3) or the deprecated
/// top-level `http2_protocol_options`.
fn protocol(ctx: &mut Ctx, obj: &Obj<'_>) -> Result<(UpstreamProtocol, bool), ConfigError> {
    if let Some((n, p)) = obj.get("http2_protocol_options") {
        ctx.object(n, &p, &[], &[])?;
        ctx.warnings.push(crate::error::Warning {
            origin: origin(n, &p),
            message: "`http2_protocol_options` on the cluster is deprecated in Envoy; pwx reads it as HTTP/2 upstream, as Envoy does. Prefer typed_extension_protocol_options".into(),
        });
        if obj.get("typed_extension_protocol_options").is_some() {
            return Err(ConfigError::at(
                origin(n, &p),
                "set the protocol either here or in typed_extension_protocol_options, not both",
            ));
        }
        return Ok((UpstreamProtocol::Http2, false));
    }
    let Some((n, p)) = obj.get("typed_extension_protocol_options") else {
        return Ok((UpstreamProtocol::Http1, false));
    };
    let options = ctx.object(n, &p, &[HTTP_PROTOCOL_OPTIONS], &[])?;
    let Some((n, p)) = options.get(HTTP_PROTOCOL_OPTIONS) else {
        return Ok((UpstreamProtocol::Http1, false));
    };
    let typed = Obj::typed(n, &p)?;
    type_of(&typed, &[HTTP_PROTOCOL_OPTIONS])?;
    let http = ctx.object(n, &p, &["@type", "explicit_http_config"], &[])?;
    let (n, p) = http.require("explicit_http_config").map_err(|e| {
        e.with_hint("pwx supports explicit_http_config (use_downstream_protocol_config and auto_config are not supported)")
    })?;
    let explicit = ctx.object(
        n,
        &p,
        &["http_protocol_options", "http2_protocol_options"],
        &[],
    )?;
    match explicit.one_of(&["http_protocol_options", "http2_protocol_options"])? {
        Some("http2_protocol_options") => {
            let (n, p) = explicit.require("http2_protocol_options")?;
            ctx.object(n, &p, &[], &[])?;
            Ok((UpstreamProtocol::Http2, false))
        }
        Some(_) => {
            let (n, p) = explicit.require("http_protocol_options")?;
            let http1 = ctx.object(n, &p, &["enable_trailers"], &[])?;
            Ok((
                UpstreamProtocol::Http1,
                http1.bool("enable_trailers")?.unwrap_or(false),
            ))
        }
        None => Err(
            ConfigError::at(explicit.origin(), "explicit_http_config names no protocol")
                .with_hint("add `http_protocol_options: {}` or `http2_protocol_options: {}`"),
        ),
    }
}
