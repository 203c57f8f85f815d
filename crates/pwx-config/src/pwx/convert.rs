//! From the pwx file types to the model: defaults, the implicit router, module sources, and
//! the checks serde cannot express (one path condition, `cluster` xor `direct_response`…),
//! each reported at the value's position (found again in the tree by its path).

use crate::context::Ctx;
use crate::error::{ConfigError, Origin};
use crate::model::{
    Admin, Cluster, ClusterRoute, CodeSource, Codec, Config, DataSource, Discovery,
    DnsLookupFamily, DownstreamTls, Endpoint, HeaderMatch, HeaderMatcher, HttpFilter, HttpListener,
    LbPolicy, Listener, ListenerKind, Node as NodeIdentity, PathMatch, Route, RouteAction,
    RouteMatch, Router, TcpListener, TlsCertificate, TlsVersion, UpstreamProtocol, UpstreamTls,
    UpstreamValidation, VirtualHost, WasmPlugin, WasmRuntime, WasmService, WasmVm,
};
use crate::pwx::file::*;
use crate::yaml::{Node, Path};
use pwx_abi::FailurePolicy;
use std::time::Duration;

use crate::defaults;

/// Converts a decoded file; `root` is its tree (for positions).
pub(crate) fn convert(ctx: &mut Ctx, root: &Node, file: PwxFile) -> Result<Config, ConfigError> {
    let at = |path: &Path| root.origin_of(path);
    let mut config = Config {
        admin: file.admin.map(|a| Admin {
            address: a.address.0,
        }),
        node: file
            .node
            .map(|n| NodeIdentity {
                id: n.id,
                cluster: n.cluster,
            })
            .unwrap_or_default(),
        ..Config::default()
    };
    for (i, listener) in file.listeners.into_iter().enumerate() {
        let path = Path::root().key("listeners").index(i);
        config
            .listeners
            .push(convert_listener(ctx, root, &path, i, listener)?);
    }
    for (i, cluster) in file.clusters.into_iter().enumerate() {
        let path = Path::root().key("clusters").index(i);
        let model = format!("clusters[{i}]");
        ctx.sources.insert(model.clone(), at(&path));
        ctx.sources
            .insert(format!("{model}.name"), at(&path.key("name")));
        ctx.sources
            .insert(format!("{model}.endpoints"), at(&path.key("endpoints")));
        for e in 0..cluster.endpoints.len() {
            ctx.sources.insert(
                format!("{model}.endpoints[{e}]"),
                at(&path.key("endpoints").index(e)),
            );
        }
        config
            .clusters
            .push(convert_cluster(ctx, root, &path, &model, cluster)?);
    }
    for (i, service) in file.services.into_iter().enumerate() {
        let path = Path::root().key("services").index(i);
        let model = format!("wasm_services[{i}]");
        ctx.sources.insert(model.clone(), at(&path));
        let singleton = service.singleton;
        let plugin = PluginFile {
            name: service.name,
            module: service.module,
            root_id: service.root_id,
            vm_id: service.vm_id,
            configuration: service.configuration,
            vm_configuration: service.vm_configuration,
            environment: service.environment,
            host_env: service.host_env,
            failure_policy: None,
            reload_backoff: None,
            allow_on_headers_stop_iteration: false,
        };
        config.wasm_services.push(WasmService {
            plugin: convert_plugin(ctx, root, &path, &model, plugin)?,
            singleton,
        });
    }
    Ok(config)
}

fn convert_listener(
    ctx: &mut Ctx,
    root: &Node,
    path: &Path,
    index: usize,
    listener: ListenerFile,
) -> Result<Listener, ConfigError> {
    let at = |path: &Path| root.origin_of(path);
    let model = format!("listeners[{index}]");
    ctx.sources.insert(model.clone(), at(path));
    ctx.sources
        .insert(format!("{model}.name"), at(&path.key("name")));
    ctx.sources
        .insert(format!("{model}.address"), at(&path.key("address")));

    let mut filters = Vec::new();
    for (f, filter) in listener.filters.into_iter().enumerate() {
        let filter_path = path.key("filters").index(f);
        let kind = if listener.tcp_proxy.is_some() {
            "network_filters"
        } else {
            "http_filters"
        };
        let filter_model = format!("{model}.{kind}[{f}]");
        ctx.sources.insert(filter_model.clone(), at(&filter_path));
        filters.push(convert_plugin(
            ctx,
            root,
            &filter_path,
            &filter_model,
            filter,
        )?);
    }

    let kind = if let Some(tcp) = listener.tcp_proxy {
        for field in ["routes", "virtual_hosts"] {
            if root.find(&path.key(field)).is_some() {
                return Err(ConfigError::at(
                    at(&path.key(field)),
                    format!("a tcp_proxy listener has no `{field}`"),
                )
                .with_hint("remove it, or remove tcp_proxy to make this an HTTP listener"));
            }
        }
        ctx.sources.insert(
            format!("{model}.cluster"),
            at(&path.key("tcp_proxy").key("cluster")),
        );
        ListenerKind::Tcp(TcpListener {
            network_filters: filters,
            cluster: tcp.cluster,
            idle_timeout: match tcp.idle_timeout {
                None => Some(defaults::TCP_IDLE_TIMEOUT),
                Some(d) => Some(d.0).filter(|d| !d.is_zero()),
            },
        })
    } else {
        let virtual_hosts = match (listener.routes, listener.virtual_hosts) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::at(
                    at(&path.key("virtual_hosts")),
                    "give either `routes` or `virtual_hosts`, not both",
                )
                .with_hint("`routes` is shorthand for one virtual host matching every domain"));
            }
            (Some(routes), None) => {
                let routes_path = path.key("routes");
                let vh_model = format!("{model}.virtual_hosts[0]");
                ctx.sources.insert(vh_model.clone(), at(&routes_path));
                vec![VirtualHost {
                    name: "default".into(),
                    domains: vec!["*".into()],
                    routes: convert_routes(ctx, root, &routes_path, &vh_model, routes)?,
                }]
            }
            (None, Some(hosts)) => {
                let mut out = Vec::new();
                for (v, host) in hosts.into_iter().enumerate() {
                    let vh_path = path.key("virtual_hosts").index(v);
                    let vh_model = format!("{model}.virtual_hosts[{v}]");
                    ctx.sources.insert(vh_model.clone(), at(&vh_path));
                    for d in 0..host.domains.len() {
                        ctx.sources.insert(
                            format!("{vh_model}.domains[{d}]"),
                            at(&vh_path.key("domains").index(d)),
                        );
                    }
                    if host.domains.is_empty() {
                        return Err(ConfigError::at(
                            at(&vh_path.key("domains")),
                            "the virtual host has no domains",
                        )
                        .with_hint("add `\"*\"` to match every host"));
                    }
                    out.push(VirtualHost {
                        name: host.name,
                        domains: host.domains,
                        routes: convert_routes(
                            ctx,
                            root,
                            &vh_path.key("routes"),
                            &vh_model,
                            host.routes,
                        )?,
                    });
                }
                out
            }
            (None, None) => {
                return Err(
                    ConfigError::at(at(path), "the listener has no routes").with_hint(
                        "add `routes:` (or `virtual_hosts:`, or `tcp_proxy:` for a TCP listener)",
                    ),
                );
            }
        };
        let mut http_filters: Vec<HttpFilter> = filters.into_iter().map(HttpFilter::Wasm).collect();
        http_filters.push(HttpFilter::Router(Router {
            suppress_envoy_headers: listener.suppress_envoy_headers,
        }));
        ListenerKind::Http(HttpListener {
            codec: match listener.codec {
                CodecName::Auto => Codec::Auto,
                CodecName::Http1 => Codec::Http1,
                CodecName::Http2 => Codec::Http2,
            },
            virtual_hosts,
            http_filters,
            stream_idle_timeout: match listener.stream_idle_timeout {
                None => Some(defaults::STREAM_IDLE_TIMEOUT),
                Some(d) => Some(d.0).filter(|d| !d.is_zero()),
            },
            request_timeout: listener
                .request_timeout
                .map(|d| d.0)
                .filter(|d| !d.is_zero()),
            http1_enable_trailers: listener.http1_enable_trailers,
        })
    };
    let tls = listener.tls.map(|tls| {
        ctx.sources
            .insert(format!("{model}.tls"), at(&path.key("tls")));
        convert_listener_tls(ctx, root, &path.key("tls"), &model, tls)
    });
    Ok(Listener {
        name: listener.name,
        address: listener.address.0,
        per_connection_buffer_limit_bytes: listener.per_connection_buffer_limit_bytes,
        kind,
        tls,
    })
}

/// Listener TLS: files resolved against this file, pwx's default ALPN (`h2`, `http/1.1`).
fn convert_listener_tls(
    ctx: &mut Ctx,
    root: &Node,
    path: &Path,
    model: &str,
    tls: ListenerTlsFile,
) -> DownstreamTls {
    let version = |v: TlsVersionName| match v {
        TlsVersionName::Tls12 => TlsVersion::V1_2,
        TlsVersionName::Tls13 => TlsVersion::V1_3,
    };
    let mut certificates = Vec::new();
    for (i, certificate) in tls.certificates.into_iter().enumerate() {
        let at = path.key("certificates").index(i);
        let here = format!("{model}.tls.certificates[{i}]");
        ctx.sources.insert(here.clone(), root.origin_of(&at));
        ctx.sources.insert(
            format!("{here}.certificate_chain"),
            root.origin_of(&at.key("cert_file")),
        );
        ctx.sources.insert(
            format!("{here}.private_key"),
            root.origin_of(&at.key("key_file")),
        );
        certificates.push(TlsCertificate {
            certificate_chain: DataSource::File(ctx.resolve_path(&certificate.cert_file)),
            private_key: DataSource::File(ctx.resolve_path(&certificate.key_file)),
        });
    }
    ctx.sources
        .insert(format!("{model}.tls.tls_params"), root.origin_of(path));
    DownstreamTls {
        certificates,
        alpn: tls
            .alpn
            .unwrap_or_else(|| vec!["h2".to_string(), "http/1.1".to_string()]),
        min_version: tls.min_version.map(version),
        max_version: tls.max_version.map(version),
        cipher_suites: tls.cipher_suites,
    }
}

fn convert_routes(
    ctx: &mut Ctx,
    root: &Node,
    path: &Path,
    vh_model: &str,
    routes: Vec<RouteFile>,
) -> Result<Vec<Route>, ConfigError> {
    let at = |path: &Path| root.origin_of(path);
    let mut out = Vec::new();
    for (r, route) in routes.into_iter().enumerate() {
        let route_path = path.index(r);
        let model = format!("{vh_model}.routes[{r}]");
        ctx.sources.insert(model.clone(), at(&route_path));
        let matcher = convert_match(root, &route_path.key("match"), route.matcher)?;
        let action = match (route.cluster, route.direct_response) {
            (Some(cluster), None) => {
                ctx.sources
                    .insert(format!("{model}.cluster"), at(&route_path.key("cluster")));
                RouteAction::Cluster(ClusterRoute {
                    cluster,
                    timeout: match route.timeout {
                        None => Some(defaults::ROUTE_TIMEOUT),
                        Some(d) => Some(d.0).filter(|d| !d.is_zero()),
                    },
                    prefix_rewrite: route.prefix_rewrite,
                    host_rewrite_literal: route.host_rewrite_literal,
                })
            }
            (None, Some(direct)) => {
                for field in ["timeout", "prefix_rewrite", "host_rewrite_literal"] {
                    if root.find(&route_path.key(field)).is_some() {
                        return Err(ConfigError::at(
                            at(&route_path.key(field)),
                            format!(
                                "`{field}` applies to cluster routes, not to a direct_response"
                            ),
                        ));
                    }
                }
                if !(100..=599).contains(&direct.status) {
                    return Err(ConfigError::at(
                        at(&route_path.key("direct_response").key("status")),
                        format!(
                            "{} is not an HTTP status: expected 100 to 599",
                            direct.status
                        ),
                    ));
                }
                RouteAction::DirectResponse {
                    status: direct.status,
                    body: direct.body.unwrap_or_default().into_bytes(),
                }
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::at(
                    at(&route_path.key("direct_response")),
                    "a route has either `cluster` or `direct_response`, not both",
                ));
            }
            (None, None) => {
                return Err(ConfigError::at(at(&route_path), "the route has no action")
                    .with_hint("add `cluster: NAME` or `direct_response: {status: 404}`"));
            }
        };
        out.push(Route {
            name: route.name.unwrap_or_default(),
            matcher,
            action,
        });
    }
    Ok(out)
}

fn convert_match(
    root: &Node,
    path: &Path,
    matcher: Option<MatchFile>,
) -> Result<RouteMatch, ConfigError> {
    let Some(matcher) = matcher else {
        return Ok(RouteMatch {
            path: PathMatch::Prefix("/".into()),
            headers: Vec::new(),
            case_sensitive: true,
        });
    };
    let path_match = match (matcher.prefix, matcher.path) {
        (Some(prefix), None) => PathMatch::Prefix(prefix),
        (None, Some(exact)) => PathMatch::Path(exact),
        (None, None) => PathMatch::Prefix("/".into()),
        (Some(_), Some(_)) => {
            return Err(ConfigError::at(
                root.origin_of(&path.key("path")),
                "give either `prefix` or `path`, not both",
            ));
        }
    };
    let mut headers = Vec::new();
    for (h, header) in matcher.headers.into_iter().enumerate() {
        let header_path = path.key("headers").index(h);
        let conditions = [
            header.exact.map(HeaderMatch::Exact),
            header.prefix.map(HeaderMatch::Prefix),
            header.suffix.map(HeaderMatch::Suffix),
            header.contains.map(HeaderMatch::Contains),
            header.present.map(HeaderMatch::Present),
        ];
        let mut set: Vec<HeaderMatch> = conditions.into_iter().flatten().collect();
        if set.len() > 1 {
            return Err(ConfigError::at(
                root.origin_of(&header_path),
                "a header condition has one of exact, prefix, suffix, contains or present",
            ));
        }
        headers.push(HeaderMatcher {
            name: header.name.to_ascii_lowercase(),
            matcher: set.pop().unwrap_or(HeaderMatch::Present(true)),
            invert: header.invert,
            ignore_case: header.ignore_case,
        });
    }
    Ok(RouteMatch {
        path: path_match,
        headers,
        case_sensitive: matcher.case_sensitive.unwrap_or(true),
    })
}

fn convert_plugin(
    ctx: &mut Ctx,
    root: &Node,
    path: &Path,
    model: &str,
    plugin: PluginFile,
) -> Result<WasmPlugin, ConfigError> {
    ctx.sources.insert(
        format!("{model}.vm.environment"),
        root.origin_of(&path.key("environment")),
    );
    let module_origin = root.origin_of(&path.key("module"));
    let code = module_source(ctx, &plugin.module, module_origin)?;
    if plugin
        .reload_backoff
        .is_some_and(|d| d.0 < Duration::from_millis(1))
    {
        return Err(ConfigError::at(
            root.origin_of(&path.key("reload_backoff")),
            "reload_backoff must be at least 1ms",
        ));
    }
    Ok(WasmPlugin {
        name: plugin.name,
        root_id: plugin.root_id,
        configuration: plugin.configuration.unwrap_or_default().0,
        failure_policy: match plugin.failure_policy {
            None | Some(FailurePolicyName::FailClosed) => FailurePolicy::FailClosed,
            Some(FailurePolicyName::FailOpen) => FailurePolicy::FailOpen,
            Some(FailurePolicyName::FailReload) => FailurePolicy::FailReload,
        },
        reload_backoff: plugin
            .reload_backoff
            .map_or(defaults::RELOAD_BACKOFF, |d| d.0),
        allow_on_headers_stop_iteration: plugin.allow_on_headers_stop_iteration,
        vm: WasmVm {
            vm_id: plugin.vm_id,
            runtime: WasmRuntime::Default,
            code,
            configuration: plugin.vm_configuration.unwrap_or_default().0,
            environment: plugin.environment.0,
            host_env_keys: plugin.host_env,
            allow_precompiled: false,
            nack_on_code_cache_miss: false,
        },
    })
}

/// `module:` → where the code comes from. URLs must carry the sha256 (as pwx-oci requires);
/// relative paths are resolved against the file's directory.
fn module_source(ctx: &Ctx, module: &str, origin: Origin) -> Result<CodeSource, ConfigError> {
    let module = module.trim();
    if module.is_empty() {
        return Err(ConfigError::at(origin, "`module` is empty")
            .with_hint("name a .wasm file, an https://…#sha256=… URL or an oci:// image"));
    }
    let Some((scheme, rest)) = module.split_once("://") else {
        return Ok(CodeSource::File(ctx.resolve_path(module)));
    };
    match scheme {
        "oci" => Ok(CodeSource::Oci(module.to_owned())),
        "file" => Ok(CodeSource::File(rest.into())),
        "https" | "http" => {
            let (uri, fragment) = module.split_once('#').unwrap_or((module, ""));
            let sha256 = fragment.strip_prefix("sha256=").unwrap_or_default();
            if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(
                    ConfigError::at(origin, "a module URL needs the module's sha256").with_hint(
                        "append #sha256=<64 hex digits> (`sha256sum filter.wasm` prints it)",
                    ),
                );
            }
            Ok(CodeSource::Remote {
                uri: uri.to_owned(),
                sha256: sha256.to_ascii_lowercase(),
                cluster: None,
                timeout: None,
            })
        }
        other => Err(
            ConfigError::at(origin, format!("unsupported module source `{other}://`"))
                .with_hint("use a path, https://…#sha256=…, or oci://…"),
        ),
    }
}

fn convert_cluster(
    ctx: &mut Ctx,
    root: &Node,
    path: &Path,
    model: &str,
    cluster: ClusterFile,
) -> Result<Cluster, ConfigError> {
    if cluster.tls.is_some() {
        ctx.sources
            .insert(format!("{model}.tls"), root.origin_of(&path.key("tls")));
    }
    let client_certificate = match cluster.tls.as_ref().map(|t| (&t.cert_file, &t.key_file)) {
        Some((Some(cert), Some(key))) => Some(TlsCertificate {
            certificate_chain: DataSource::File(ctx.resolve_path(cert)),
            private_key: DataSource::File(ctx.resolve_path(key)),
        }),
        Some((None, None)) | None => None,
        Some(_) => {
            return Err(ConfigError::at(
                root.origin_of(&path.key("tls")),
                "`cert_file` and `key_file` go together",
            ));
        }
    };
    let all_ips = cluster
        .endpoints
        .iter()
        .all(|e| e.host.parse::<std::net::IpAddr>().is_ok());
    let discovery = match cluster.discovery {
        Some(DiscoveryName::Static) => Discovery::Static,
        Some(DiscoveryName::StrictDns) => Discovery::StrictDns,
        Some(DiscoveryName::LogicalDns) => Discovery::LogicalDns,
        None if all_ips => Discovery::Static,
        None => Discovery::StrictDns,
    };
    Ok(Cluster {
        name: cluster.name,
        discovery,
        dns_lookup_family: match cluster.dns_lookup_family {
            DnsLookupFamilyName::Auto => DnsLookupFamily::Auto,
            DnsLookupFamilyName::V4Only => DnsLookupFamily::V4Only,
            DnsLookupFamilyName::V6Only => DnsLookupFamily::V6Only,
            DnsLookupFamilyName::V4Preferred => DnsLookupFamily::V4Preferred,
            DnsLookupFamilyName::All => DnsLookupFamily::All,
        },
        endpoints: cluster
            .endpoints
            .into_iter()
            .map(|e| Endpoint {
                host: e.host,
                port: e.port,
            })
            .collect(),
        dns_refresh_rate: cluster
            .dns_refresh_rate
            .map_or(defaults::DNS_REFRESH_RATE, |d| d.0),
        connect_timeout: cluster
            .connect_timeout
            .map_or(defaults::CONNECT_TIMEOUT, |d| d.0),
        protocol: match cluster.protocol {
            ProtocolName::Http1 => UpstreamProtocol::Http1,
            ProtocolName::Http2 => UpstreamProtocol::Http2,
        },
        http1_enable_trailers: cluster.http1_enable_trailers,
        lb_policy: match cluster.lb_policy {
            LbPolicyName::RoundRobin => LbPolicy::RoundRobin,
            LbPolicyName::LeastRequest => LbPolicy::LeastRequest,
            LbPolicyName::Random => LbPolicy::Random,
        },
        per_connection_buffer_limit_bytes: cluster.per_connection_buffer_limit_bytes,
        tls: cluster.tls.map(|tls| UpstreamTls {
            sni: tls.sni,
            sni_from_endpoint: true,
            validation: match tls.ca_file {
                Some(file) => {
                    UpstreamValidation::TrustedCa(DataSource::File(ctx.resolve_path(&file)))
                }
                None => UpstreamValidation::SystemRoots,
            },
            verify_server_name: true,
            alpn: tls.alpn,
            client_certificate,
        }),
    })
}
