//! Envoy's inline `route_config`: virtual hosts, routes, matches and actions.

use crate::envoy::any::decode_base64;
use crate::envoy::reader::{Ctx, Obj, origin, string};
use crate::error::ConfigError;
use crate::model::{
    ClusterRoute, HeaderMatch, HeaderMatcher, PathMatch, Route, RouteAction, RouteMatch,
    VirtualHost,
};
use crate::yaml::{Node, Path};
use std::time::Duration;

pub(crate) fn route_config(
    ctx: &mut Ctx,
    node: &Node,
    path: &Path,
    model: &str,
) -> Result<Vec<VirtualHost>, ConfigError> {
    let obj = ctx.object(
        node,
        path,
        &["virtual_hosts"],
        &[(
            "name",
            "a route configuration name only matters to RDS, which pwx does not use",
        )],
    )?;
    let mut hosts = Vec::new();
    for (v, (node, path)) in obj.list("virtual_hosts")?.into_iter().enumerate() {
        let model = format!("{model}.virtual_hosts[{v}]");
        hosts.push(virtual_host(ctx, node, &path, &model)?);
    }
    Ok(hosts)
}

fn virtual_host(
    ctx: &mut Ctx,
    node: &Node,
    path: &Path,
    model: &str,
) -> Result<VirtualHost, ConfigError> {
    let obj = ctx.object(node, path, &["name", "domains", "routes"], &[])?;
    ctx.sources.insert(model.to_owned(), obj.origin());
    let mut domains = Vec::new();
    for (d, (n, p)) in obj.list("domains")?.into_iter().enumerate() {
        ctx.sources
            .insert(format!("{model}.domains[{d}]"), origin(n, &p));
        domains.push(string(n, &p)?);
    }
    if domains.is_empty() {
        return Err(
            ConfigError::at(obj.origin(), "the virtual host has no domains")
                .with_hint("add `domains: [\"*\"]` to match every host"),
        );
    }
    let mut routes = Vec::new();
    for (r, (n, p)) in obj.list("routes")?.into_iter().enumerate() {
        routes.push(route(ctx, n, &p, &format!("{model}.routes[{r}]"))?);
    }
    Ok(VirtualHost {
        name: obj.require_string("name")?,
        domains,
        routes,
    })
}

fn route(ctx: &mut Ctx, node: &Node, path: &Path, model: &str) -> Result<Route, ConfigError> {
    let obj = ctx.object(
        node,
        path,
        &["name", "match", "route", "direct_response"],
        &[],
    )?;
    ctx.sources.insert(model.to_owned(), obj.origin());
    let (match_node, match_path) = obj.require("match")?;
    let matcher = route_match(ctx, match_node, &match_path)?;
    let action = match obj.one_of(&["route", "direct_response"])? {
        Some("route") => {
            let (n, p) = obj.require("route")?;
            RouteAction::Cluster(cluster_route(ctx, n, &p, model)?)
        }
        Some(_) => {
            let (n, p) = obj.require("direct_response")?;
            direct_response(ctx, n, &p)?
        }
        None => {
            return Err(ConfigError::at(obj.origin(), "the route has no action")
                .with_hint("add `route: {cluster: NAME}` or `direct_response: {status: 200}`"));
        }
    };
    Ok(Route {
        name: obj.string_or_empty("name")?,
        matcher,
        action,
    })
}

fn route_match(ctx: &mut Ctx, node: &Node, path: &Path) -> Result<RouteMatch, ConfigError> {
    let obj = ctx.object(
        node,
        path,
        &["prefix", "path", "headers", "case_sensitive"],
        &[],
    )?;
    let path_match = match obj.one_of(&["prefix", "path"])? {
        Some("prefix") => PathMatch::Prefix(obj.require_string("prefix")?),
        Some(_) => PathMatch::Path(obj.require_string("path")?),
        None => {
            return Err(
                ConfigError::at(obj.origin(), "the route match has no path condition").with_hint(
                    "pwx supports `prefix` and `path`; use `prefix: /` to match everything",
                ),
            );
        }
    };
    let mut headers = Vec::new();
    for (n, p) in obj.list("headers")? {
        headers.push(header_matcher(ctx, n, &p)?);
    }
    Ok(RouteMatch {
        path: path_match,
        headers,
        case_sensitive: obj.bool("case_sensitive")?.unwrap_or(true),
    })
}

fn header_matcher(ctx: &mut Ctx, node: &Node, path: &Path) -> Result<HeaderMatcher, ConfigError> {
    const CONDITIONS: [&str; 6] = [
        "exact_match",
        "prefix_match",
        "suffix_match",
        "contains_match",
        "present_match",
        "string_match",
    ];
    let mut known = vec!["name", "invert_match"];
    known.extend(CONDITIONS);
    let obj = ctx.object(node, path, &known, &[])?;
    let mut ignore_case = false;
    let matcher = match obj.one_of(&CONDITIONS)? {
        Some("exact_match") => HeaderMatch::Exact(obj.require_string("exact_match")?),
        Some("prefix_match") => HeaderMatch::Prefix(obj.require_string("prefix_match")?),
        Some("suffix_match") => HeaderMatch::Suffix(obj.require_string("suffix_match")?),
        Some("contains_match") => HeaderMatch::Contains(obj.require_string("contains_match")?),
        Some("present_match") => HeaderMatch::Present(obj.bool("present_match")?.unwrap_or(true)),
        Some(_) => {
            let (n, p) = obj.require("string_match")?;
            let sm = ctx.object(
                n,
                &p,
                &["exact", "prefix", "suffix", "contains", "ignore_case"],
                &[],
            )?;
            ignore_case = sm.bool("ignore_case")?.unwrap_or(false);
            match sm.one_of(&["exact", "prefix", "suffix", "contains"])? {
                Some("exact") => HeaderMatch::Exact(sm.require_string("exact")?),
                Some("prefix") => HeaderMatch::Prefix(sm.require_string("prefix")?),
                Some("suffix") => HeaderMatch::Suffix(sm.require_string("suffix")?),
                Some(_) => HeaderMatch::Contains(sm.require_string("contains")?),
                None => {
                    return Err(
                        ConfigError::at(sm.origin(), "string_match has no condition")
                            .with_hint("pwx supports exact, prefix, suffix and contains"),
                    );
                }
            }
        }
        // Envoy: a matcher with only a name requires the header to be present.
        None => HeaderMatch::Present(true),
    };
    Ok(HeaderMatcher {
        name: obj.require_string("name")?.to_ascii_lowercase(),
        matcher,
        invert: obj.bool("invert_match")?.unwrap_or(false),
        ignore_case,
    })
}

fn cluster_route(
    ctx: &mut Ctx,
    node: &Node,
    path: &Path,
    model: &str,
) -> Result<ClusterRoute, ConfigError> {
    let obj = ctx.object(
        node,
        path,
        &[
            "cluster",
            "timeout",
            "prefix_rewrite",
            "host_rewrite_literal",
        ],
        &[],
    )?;
    let (cluster_node, cluster_path) = obj.require("cluster").map_err(|e| {
        e.with_hint("pwx routes to one named `cluster` (no cluster_header or weighted_clusters)")
    })?;
    ctx.sources.insert(
        format!("{model}.cluster"),
        origin(cluster_node, &cluster_path),
    );
    let timeout = match obj.duration("timeout")? {
        None => Some(crate::defaults::ROUTE_TIMEOUT),
        Some(Duration::ZERO) => None,
        Some(timeout) => Some(timeout),
    };
    Ok(ClusterRoute {
        cluster: string(cluster_node, &cluster_path)?,
        timeout,
        prefix_rewrite: obj.string("prefix_rewrite")?,
        host_rewrite_literal: obj.string("host_rewrite_literal")?,
    })
}

fn direct_response(ctx: &mut Ctx, node: &Node, path: &Path) -> Result<RouteAction, ConfigError> {
    let obj = ctx.object(node, path, &["status", "body"], &[])?;
    let status = status(&obj)?;
    let body = match obj.get("body") {
        None => Vec::new(),
        Some((n, p)) => {
            let body = ctx.object(n, &p, &["inline_string", "inline_bytes"], &[])?;
            match body.one_of(&["inline_string", "inline_bytes"])? {
                Some("inline_string") => body.require_string("inline_string")?.into_bytes(),
                Some(_) => {
                    let (n, p) = body.require("inline_bytes")?;
                    decode_base64(&string(n, &p)?).ok_or_else(|| {
                        ConfigError::at(origin(n, &p), "inline_bytes is not base64")
                    })?
                }
                None => Vec::new(),
            }
        }
    };
    Ok(RouteAction::DirectResponse { status, body })
}

fn status(obj: &Obj<'_>) -> Result<u16, ConfigError> {
    let value = obj
        .uint("status", 599)?
        .ok_or_else(|| ConfigError::at(obj.origin(), "missing required field `status`"))?;
    if value < 100 {
        let (n, p) = obj.require("status")?;
        return Err(ConfigError::at(
            origin(n, &p),
            format!("{value} is not an HTTP status: expected 100 to 599"),
        ));
    }
    Ok(value as u16)
}
