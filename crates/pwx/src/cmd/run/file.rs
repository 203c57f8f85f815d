//! `pwx run -c FILE`: a pwx YAML or Envoy bootstrap file (read by pwx-config, with positions
//! in every error) turned into the data plane's configuration. What the data plane cannot do
//! yet is refused here with the place in the file, never ignored.

use super::RunArgs;
use anyhow::bail;
use pwx_config::{CodeSource, ConfigError, HttpFilter, ListenerKind, WasmPlugin};
use pwx_host::services::NodeInfo;
use pwx_host::{Limits, PluginConfig, VmConfig};
use pwx_proxy::{
    ClusterConfig, FilterConfig, HeaderMatch, HeaderMatcher, ListenerConfig, PathMatch,
    ProxyConfig, Route, RouteAction, RouteMatch, TcpProxyConfig, UpstreamProtocol, VirtualHost,
};
use std::path::Path;
use std::time::Duration;

/// An error about the model path `path`, at its place in the file.
pub(super) fn refuse(loaded: &pwx_config::Loaded, path: &str, message: String) -> anyhow::Error {
    let origin = loaded.sources.origin(path);
    anyhow::anyhow!(
        "{}:{}:{}: {}: {message}",
        origin.location.file,
        origin.location.line,
        origin.location.column,
        origin.path
    )
}

/// Loads the module of a plugin, wherever its code lives.
fn module(plugin: &WasmPlugin, args: &RunArgs) -> anyhow::Result<(Vec<u8>, String)> {
    let options = args.sources.options()?;
    let resolved = match &plugin.vm.code {
        CodeSource::Inline(bytes) => {
            return Ok((bytes.clone(), format!("{} (inline)", plugin.name)));
        }
        CodeSource::File(path) => {
            let text = path.to_string_lossy().into_owned();
            (crate::modules::resolve(&text, None, &options)?, text)
        }
        CodeSource::Remote { uri, sha256, .. } => (
            crate::modules::resolve(uri, Some(sha256), &options)?,
            uri.clone(),
        ),
        CodeSource::Oci(reference) => (
            crate::modules::resolve(reference, None, &options)?,
            reference.clone(),
        ),
    };
    Ok((resolved.0.bytes, resolved.1))
}

fn filter(plugin: &WasmPlugin, args: &RunArgs) -> anyhow::Result<FilterConfig> {
    let (wasm, source) = module(plugin, args)?;
    Ok(FilterConfig {
        wasm,
        source,
        plugin: PluginConfig {
            name: plugin.name.clone(),
            root_id: plugin.root_id.clone(),
            configuration: plugin.configuration.clone(),
            failure_policy: plugin.failure_policy,
            reload_backoff: plugin.reload_backoff,
            allow_on_headers_stop_iteration: plugin.allow_on_headers_stop_iteration,
        },
        vm: VmConfig {
            vm_id: plugin.vm.vm_id.clone(),
            configuration: plugin.vm.configuration.clone(),
            environment: plugin
                .vm
                .resolved_environment(|key| std::env::var(key).ok()),
        },
    })
}

fn header_matcher(
    loaded: &pwx_config::Loaded,
    at: &str,
    matcher: &pwx_config::HeaderMatcher,
) -> anyhow::Result<HeaderMatcher> {
    if matcher.ignore_case {
        return Err(refuse(
            loaded,
            at,
            "ignore_case header matching is not supported by pwx yet; compare exact values".into(),
        ));
    }
    Ok(HeaderMatcher {
        name: matcher.name.clone(),
        matcher: match &matcher.matcher {
            pwx_config::HeaderMatch::Exact(v) => HeaderMatch::Exact(v.clone()),
            pwx_config::HeaderMatch::Prefix(v) => HeaderMatch::Prefix(v.clone()),
            pwx_config::HeaderMatch::Suffix(v) => HeaderMatch::Suffix(v.clone()),
            pwx_config::HeaderMatch::Contains(v) => HeaderMatch::Contains(v.clone()),
            pwx_config::HeaderMatch::Present(v) => HeaderMatch::Present(*v),
        },
        invert: matcher.invert,
    })
}

fn virtual_hosts(
    loaded: &pwx_config::Loaded,
    at: &str,
    hosts: &[pwx_config::VirtualHost],
) -> anyhow::Result<Vec<VirtualHost>> {
    let mut out = Vec::new();
    for (h, host) in hosts.iter().enumerate() {
        let mut routes = Vec::new();
        for (r, route) in host.routes.iter().enumerate() {
            let here = format!("{at}.virtual_hosts[{h}].routes[{r}]");
            let headers = route
                .matcher
                .headers
                .iter()
                .enumerate()
                .map(|(i, m)| header_matcher(loaded, &format!("{here}.match.headers[{i}]"), m))
                .collect::<anyhow::Result<_>>()?;
            routes.push(Route {
                name: route.name.clone(),
                matcher: RouteMatch {
                    path: match &route.matcher.path {
                        pwx_config::PathMatch::Prefix(p) => PathMatch::Prefix(p.clone()),
                        pwx_config::PathMatch::Path(p) => PathMatch::Path(p.clone()),
                    },
                    headers,
                    case_sensitive: route.matcher.case_sensitive,
                },
                action: match &route.action {
                    pwx_config::RouteAction::Cluster(c) => RouteAction::Cluster {
                        cluster: c.cluster.clone(),
                        timeout: c.timeout,
                        prefix_rewrite: c.prefix_rewrite.clone(),
                        host_rewrite: c.host_rewrite_literal.clone(),
                    },
                    pwx_config::RouteAction::DirectResponse { status, body } => {
                        RouteAction::DirectResponse {
                            status: *status,
                            body: body.clone(),
                        }
                    }
                },
            });
        }
        out.push(VirtualHost {
            name: host.name.clone(),
            domains: host.domains.clone(),
            routes,
        });
    }
    Ok(out)
}

fn cluster(
    loaded: &pwx_config::Loaded,
    index: usize,
    cluster: &pwx_config::Cluster,
) -> anyhow::Result<ClusterConfig> {
    let tls = cluster
        .tls
        .as_ref()
        .map(|tls| super::tls::cluster(loaded, &format!("clusters[{index}]"), tls))
        .transpose()?;
    Ok(ClusterConfig {
        tls,
        protocol: match cluster.protocol {
            pwx_config::UpstreamProtocol::Http1 => UpstreamProtocol::Http1,
            pwx_config::UpstreamProtocol::Http2 => UpstreamProtocol::Http2,
        },
        connect_timeout: cluster.connect_timeout,
        endpoints: cluster
            .endpoints
            .iter()
            .map(|e| format!("{}:{}", e.host, e.port))
            .collect(),
        ..ClusterConfig::single(cluster.name.clone(), String::new())
    })
}

/// A TCP listener: its network filters, then tcp_proxy to its cluster.
fn tcp_listener(
    listener: &pwx_config::Listener,
    tcp: &pwx_config::TcpListener,
    args: &RunArgs,
) -> anyhow::Result<ListenerConfig> {
    if listener.tls.is_some() {
        anyhow::bail!(
            "listener `{}`: TLS on a TCP (tcp_proxy) listener is not supported yet; terminate TLS \
             in front of it or use an HTTP listener",
            listener.name
        );
    }
    Ok(ListenerConfig {
        name: listener.name.clone(),
        address: listener.address,
        filters: tcp
            .network_filters
            .iter()
            .map(|plugin| filter(plugin, args))
            .collect::<anyhow::Result<_>>()?,
        virtual_hosts: Vec::new(),
        stream_idle_timeout: Duration::from_secs(300),
        suppress_envoy_headers: false,
        tls: None,
        tcp: Some(TcpProxyConfig {
            stat_prefix: listener.name.clone(),
            cluster: tcp.cluster.clone(),
            idle_timeout: tcp.idle_timeout,
        }),
    })
}

/// The proxy configuration `path` describes, and the node identity it declares.
pub(super) fn proxy_config(
    path: &Path,
    args: &RunArgs,
    mut limits: Limits,
) -> anyhow::Result<(ProxyConfig, NodeInfo)> {
    if args.filter.is_some() || !args.filters.is_empty() || !args.configs.is_empty() {
        bail!(
            "-c takes the filters from the configuration file; drop the FILTER, --filter and --config flags"
        );
    }
    let loaded = pwx_config::load(path).map_err(|e: ConfigError| anyhow::anyhow!("{e}"))?;
    for warning in &loaded.warnings {
        eprintln!("pwx: warning: {warning}");
    }
    let config = &loaded.config;
    let mut listeners = Vec::new();
    for (l, listener) in config.listeners.iter().enumerate() {
        let at = format!("listeners[{l}]");
        let http = match &listener.kind {
            ListenerKind::Http(http) => http,
            ListenerKind::Tcp(tcp) => {
                listeners.push(tcp_listener(listener, tcp, args)?);
                continue;
            }
        };
        if let Some(limit) = listener.per_connection_buffer_limit_bytes {
            limits.request_buffer_bytes = limit as usize;
            limits.response_buffer_bytes = limit as usize;
        }
        let filters = http
            .http_filters
            .iter()
            .filter_map(|f| match f {
                HttpFilter::Wasm(plugin) => Some(plugin),
                HttpFilter::Router(_) => None,
            })
            .map(|plugin| filter(plugin, args))
            .collect::<anyhow::Result<_>>()?;
        let suppress_envoy_headers = http
            .http_filters
            .iter()
            .any(|f| matches!(f, HttpFilter::Router(router) if router.suppress_envoy_headers));
        listeners.push(ListenerConfig {
            name: listener.name.clone(),
            address: listener.address,
            filters,
            virtual_hosts: virtual_hosts(&loaded, &at, &http.virtual_hosts)?,
            stream_idle_timeout: http
                .stream_idle_timeout
                .unwrap_or(Duration::from_secs(24 * 3600)),
            suppress_envoy_headers,
            tls: listener
                .tls
                .as_ref()
                .map(|tls| super::tls::listener(&loaded, &at, tls))
                .transpose()?,
            tcp: None,
        });
    }
    let clusters = config
        .clusters
        .iter()
        .enumerate()
        .map(|(i, c)| cluster(&loaded, i, c))
        .collect::<anyhow::Result<_>>()?;
    let services = config
        .wasm_services
        .iter()
        .map(|service| {
            if !service.singleton {
                eprintln!(
                    "pwx: warning: wasm service {:?} is not a singleton; pwx runs every bootstrap service once per process",
                    service.plugin.name
                );
            }
            filter(&service.plugin, args)
        })
        .collect::<anyhow::Result<_>>()?;
    let proxy = ProxyConfig {
        listeners,
        workers: 1,
        clusters,
        services,
        // As Envoy: every plugin also runs on the main thread.
        main_thread_plugins: true,
        admin: config.admin.as_ref().map(|a| a.address),
        limits,
    };
    let node = NodeInfo {
        id: config.node.id.clone(),
        cluster: config.node.cluster.clone(),
    };
    Ok((proxy, node))
}
