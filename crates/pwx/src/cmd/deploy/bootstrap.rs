//! `pwx deploy bootstrap`: a plain Envoy bootstrap with the filter inline, or the ECDS variant
//! whose extension config is served from a file (`path_config_source`), so both a validation and
//! a real run work without an xDS server.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use pwx_oci::ModuleSource;
use serde_json::{Value, json};

use super::filter::{Code, Filter, FilterArgs, WASM_TYPE};
use super::output::{OutputArgs, Rendered, RenderedKind, emit};

/// Name of the cluster Envoy fetches a remote module from.
pub(crate) const MODULE_CLUSTER: &str = "pwx_module_source";
/// Name of the upstream cluster.
const UPSTREAM_CLUSTER: &str = "upstream";
/// File name of the rendered bootstrap.
pub(crate) const BOOTSTRAP_FILE: &str = "envoy.yaml";
const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const ROUTER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";
const TLS_TYPE: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
const EXTENSION_CONFIG_TYPE: &str = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";

/// Arguments of `pwx deploy bootstrap`.
#[derive(clap::Args)]
pub(crate) struct BootstrapArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// Have Envoy fetch the module from this URL (code.remote with http_uri and the module's
    /// sha256). Default: the module's own URL for https:// sources, a local file otherwise.
    #[arg(long, value_name = "URL")]
    module_url: Option<String>,
    /// Use a local file even for https:// sources (the verified copy in the module cache).
    #[arg(long, conflicts_with = "module_url")]
    local: bool,
    /// Serve the filter through extension config discovery (ECDS) from a second file
    /// (needs --out).
    #[arg(long)]
    ecds: bool,
    #[command(flatten)]
    listener: ListenerArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// Where Envoy listens and what it proxies to.
#[derive(clap::Args, Clone)]
pub(crate) struct ListenerArgs {
    /// Listener address.
    #[arg(long, default_value = "127.0.0.1:10000")]
    pub listen: SocketAddr,
    /// Upstream HOST:PORT (plain HTTP/1.1). Default: Envoy answers 200 itself (direct_response),
    /// so the filter runs on both paths with nothing else running.
    #[arg(long, value_name = "HOST:PORT")]
    pub upstream: Option<String>,
    /// Envoy admin address (default: no admin listener).
    #[arg(long, value_name = "ADDR:PORT")]
    pub admin: Option<SocketAddr>,
    /// CA bundle used to verify an https:// module URL.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/etc/ssl/certs/ca-certificates.crt"
    )]
    pub ca_file: PathBuf,
}

/// Everything a bootstrap needs beyond the filter.
pub(crate) struct BootstrapSpec<'a> {
    pub listener: &'a ListenerArgs,
    pub code: Code,
    /// `Some(path)`: the ECDS variant, with the extension config in the file at `path`.
    pub ecds_path: Option<PathBuf>,
    /// `Some(url)`: a module cluster for this URL is added.
    pub module_url: Option<endpoint::Endpoint>,
}

pub(crate) fn execute(args: BootstrapArgs) -> anyhow::Result<()> {
    let filter = args.filter.load()?;
    if args.ecds && args.output.out.is_none() {
        bail!(
            "--ecds writes two files (the bootstrap and the extension config it reads); pass --out DIR"
        );
    }
    let (code, module_url) = choose_code(&filter, args.module_url.as_deref(), args.local)?;
    let ecds_path = match (&args.output.out, args.ecds) {
        (Some(dir), true) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let dir = std::fs::canonicalize(dir)
                .with_context(|| format!("cannot resolve {}", dir.display()))?;
            Some(dir.join(ecds_file_name(&filter.name)))
        }
        _ => None,
    };
    let spec = BootstrapSpec {
        listener: &args.listener,
        code,
        ecds_path,
        module_url,
    };
    let rendered = render(&filter, &spec)?;
    emit(&rendered, &args.output)?;
    eprintln!(
        "module {} sha256 {}{}",
        filter.module.source,
        filter.module.sha256,
        filter
            .module
            .image
            .as_ref()
            .map(|i| format!(", image digest {}", i.image_digest))
            .unwrap_or_default()
    );
    Ok(())
}

/// `<name>-ecds.yaml`, with anything but `[A-Za-z0-9._-]` replaced.
fn ecds_file_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}-ecds.yaml")
}

/// Decides between code.local and code.remote.
pub(crate) fn choose_code(
    filter: &Filter,
    module_url: Option<&str>,
    local: bool,
) -> anyhow::Result<(Code, Option<endpoint::Endpoint>)> {
    let own_url = match &filter.module.source {
        ModuleSource::Url { url, .. } if !local => Some(url.to_string()),
        _ => None,
    };
    let Some(url) = module_url.map(str::to_string).or(own_url) else {
        if let ModuleSource::Oci { reference, .. } = &filter.module.source {
            eprintln!(
                "note: Envoy does not pull OCI images; the bootstrap uses the module pulled from {reference} into {} (give --module-url to have Envoy download it)",
                filter.module.path.display()
            );
        }
        return Ok((Code::Local(filter.module.path.clone()), None));
    };
    let target = endpoint::Endpoint::parse(&url)?;
    Ok((
        Code::Remote {
            uri: url,
            cluster: MODULE_CLUSTER.to_string(),
            sha256: filter.module.sha256.clone(),
        },
        Some(target),
    ))
}

/// Renders the bootstrap (and, for ECDS, the extension config file).
pub(crate) fn render(filter: &Filter, spec: &BootstrapSpec<'_>) -> anyhow::Result<Vec<Rendered>> {
    let typed_config = filter.wasm_typed_config(&spec.code);
    let wasm_filter = match &spec.ecds_path {
        None => json!({"name": filter.name, "typed_config": typed_config}),
        Some(path) => json!({
            "name": filter.name,
            "config_discovery": {
                "config_source": {
                    "path_config_source": {"path": path.display().to_string()},
                    "resource_api_version": "V3",
                },
                "type_urls": [WASM_TYPE],
            },
        }),
    };
    let route = match &spec.listener.upstream {
        Some(_) => {
            json!({"match": {"prefix": "/"}, "route": {"cluster": UPSTREAM_CLUSTER, "timeout": "30s"}})
        }
        None => json!({
            "match": {"prefix": "/"},
            "direct_response": {"status": 200, "body": {"inline_string": "served by envoy (direct_response)\n"}},
        }),
    };
    let hcm = json!({
        "@type": HCM_TYPE,
        "stat_prefix": "pwx",
        "codec_type": "AUTO",
        "route_config": {
            "name": "pwx_route",
            "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [route]}],
        },
        "http_filters": [
            wasm_filter,
            {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}},
        ],
    });
    let listen = spec.listener.listen;
    let listener = json!({
        "name": "pwx_listener",
        "address": socket_address(listen.ip().to_string(), listen.port()),
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": hcm,
        }]}],
    });
    let mut clusters = Vec::new();
    if let Some(upstream) = &spec.listener.upstream {
        let target = endpoint::Endpoint::parse_host_port(upstream)?;
        clusters.push(cluster(UPSTREAM_CLUSTER, &target, None));
    }
    if let Some(target) = &spec.module_url {
        let tls = target.tls.then(|| {
            json!({
                "name": "envoy.transport_sockets.tls",
                "typed_config": {
                    "@type": TLS_TYPE,
                    "sni": target.host,
                    "common_tls_context": {"validation_context": {
                        "trusted_ca": {"filename": spec.listener.ca_file.display().to_string()},
                    }},
                },
            })
        });
        clusters.push(cluster(MODULE_CLUSTER, target, tls));
    }
    let mut bootstrap = json!({
        "node": {"id": "pwx", "cluster": "pwx"},
        "static_resources": {"listeners": [listener], "clusters": clusters},
    });
    if let Some(admin) = spec.listener.admin {
        bootstrap["admin"] =
            json!({"address": socket_address(admin.ip().to_string(), admin.port())});
    }
    let mut out = vec![Rendered {
        file_name: BOOTSTRAP_FILE.to_string(),
        kind: RenderedKind::EnvoyBootstrap,
        doc: bootstrap,
    }];
    if let Some(path) = &spec.ecds_path {
        out.push(Rendered {
            file_name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| ecds_file_name(&filter.name)),
            kind: RenderedKind::EnvoyExtensionConfig,
            doc: json!({
                "version_info": filter.module.sha256,
                "resources": [{
                    "@type": EXTENSION_CONFIG_TYPE,
                    "name": filter.name,
                    "typed_config": typed_config,
                }],
            }),
        });
    }
    Ok(out)
}

fn socket_address(address: String, port: u16) -> Value {
    json!({"socket_address": {"address": address, "port_value": port}})
}

/// A plain cluster with one endpoint: STATIC for an IP address, STRICT_DNS for a name.
fn cluster(name: &str, target: &endpoint::Endpoint, tls: Option<Value>) -> Value {
    let is_ip = target.host.parse::<IpAddr>().is_ok();
    let mut c = json!({
        "name": name,
        "type": if is_ip { "STATIC" } else { "STRICT_DNS" },
        "connect_timeout": "5s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": socket_address(target.host.clone(), target.port),
            }}]}],
        },
    });
    if let Some(tls) = tls {
        c["transport_socket"] = tls;
    }
    c
}

/// Replaces the ECDS reference in a rendered bootstrap with the extension config itself, so one
/// `envoy --mode validate` checks the filter's configuration too.
pub(crate) fn inline_ecds(bootstrap: &Value, extension: &Value) -> Option<Value> {
    let mut doc = bootstrap.clone();
    let resource = extension.get("resources")?.get(0)?;
    let filters = doc
        .pointer_mut(
            "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/http_filters",
        )?
        .as_array_mut()?;
    let slot = filters
        .iter_mut()
        .find(|f| f.get("config_discovery").is_some())?;
    *slot = json!({"name": resource.get("name")?, "typed_config": resource.get("typed_config")?});
    Some(doc)
}

/// Host, port and scheme of a module URL or an upstream, without a URL library.
pub(crate) mod endpoint {
    use anyhow::bail;

    /// Where a cluster points.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) struct Endpoint {
        pub host: String,
        pub port: u16,
        pub tls: bool,
    }

    impl Endpoint {
        /// From `http://host[:port]/…` or `https://host[:port]/…`.
        pub(crate) fn parse(url: &str) -> anyhow::Result<Endpoint> {
            let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
                (true, r)
            } else if let Some(r) = url.strip_prefix("http://") {
                (false, r)
            } else {
                bail!("module URL {url:?}: Envoy fetches modules over http:// or https:// only");
            };
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let authority = authority.rsplit('@').next().unwrap_or(authority);
            let default_port = if tls { 443 } else { 80 };
            let (host, port) = split_host_port(authority, default_port)
                .map_err(|e| anyhow::anyhow!("module URL {url:?}: {e}"))?;
            Ok(Endpoint { host, port, tls })
        }

        /// From `host:port` (an upstream).
        pub(crate) fn parse_host_port(value: &str) -> anyhow::Result<Endpoint> {
            let value = value.strip_prefix("http://").unwrap_or(value);
            let value = value.trim_end_matches('/');
            if !value.contains(':') || value.ends_with(']') {
                bail!("--upstream {value:?}: give HOST:PORT, e.g. 127.0.0.1:8080");
            }
            let (host, port) = split_host_port(value, 0)
                .map_err(|e| anyhow::anyhow!("--upstream {value:?}: {e}"))?;
            Ok(Endpoint {
                host,
                port,
                tls: false,
            })
        }
    }

    fn split_host_port(authority: &str, default_port: u16) -> Result<(String, u16), String> {
        if authority.is_empty() {
            return Err("no host".to_string());
        }
        if let Some(rest) = authority.strip_prefix('[') {
            let Some((host, after)) = rest.split_once(']') else {
                return Err("unclosed [ in the host".to_string());
            };
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| format!("bad port {p:?}"))?,
                None => default_port,
            };
            return Ok((host.to_string(), port));
        }
        match authority.rsplit_once(':') {
            Some((host, port)) => {
                let port: u16 = port.parse().map_err(|_| format!("bad port {port:?}"))?;
                if port == 0 {
                    return Err("port 0".to_string());
                }
                Ok((host.to_string(), port))
            }
            None => Ok((authority.to_string(), default_port)),
        }
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used)]
        use super::*;

        #[test]
        fn urls_and_upstreams() {
            let h = Endpoint::parse("https://files.test/a/f.wasm").unwrap();
            assert_eq!((h.host.as_str(), h.port, h.tls), ("files.test", 443, true));
            let h = Endpoint::parse("http://127.0.0.1:8080/f.wasm").unwrap();
            assert_eq!((h.host.as_str(), h.port, h.tls), ("127.0.0.1", 8080, false));
            assert!(Endpoint::parse("ftp://x/y").is_err());
            let h = Endpoint::parse_host_port("[::1]:9000").unwrap();
            assert_eq!((h.host.as_str(), h.port), ("::1", 9000));
            assert!(Endpoint::parse_host_port("localhost").is_err());
            assert!(Endpoint::parse_host_port("localhost:http").is_err());
        }
    }
}
