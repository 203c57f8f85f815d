//! `pwx run`: a chain of proxy-wasm filters in front of an upstream, on this machine.

use anyhow::{Context, bail};
use pwx_abi::FailurePolicy;
use pwx_host::{Engine, EngineConfig, Limits, PluginConfig, Services, TracingLog, VmConfig};
use pwx_proxy::{
    ClusterConfig, FilterConfig, Proxy, ProxyConfig, UpstreamConfig, UpstreamProtocol,
};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `pwx run`.
#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// The first filter: a .wasm file, https://…#sha256=HEX, or oci://REGISTRY/REPO:TAG.
    filter: String,
    /// More filters, in request order (repeatable; same forms as the first).
    #[arg(long = "filter", value_name = "SOURCE")]
    filters: Vec<String>,
    /// Registry and module-cache options for URL and oci:// filters.
    #[command(flatten)]
    sources: crate::modules::SourceArgs,
    /// Plugin configuration of each filter, in the same order (repeatable; missing = empty).
    #[arg(long = "config", value_name = "JSON")]
    configs: Vec<String>,
    /// VM configuration given to every filter.
    #[arg(long, value_name = "STRING", default_value = "")]
    vm_config: String,
    /// `echo` (built-in echo upstream), `http://host:port`, `h2c://host:port`, or the name of
    /// a `--cluster`.
    #[arg(long, default_value = "echo")]
    upstream: String,
    /// A cluster filters can call out to (`proxy_http_call`, gRPC):
    /// `NAME=http://host:port` (HTTP/1.1) or `NAME=h2c://host:port` (HTTP/2). Repeatable.
    #[arg(long = "cluster", value_name = "NAME=URL")]
    clusters: Vec<String>,
    /// Admin endpoint address (`/ready`, `/stats`, `/stats/prometheus`, `/plugins`); port 0
    /// picks a free port, which is printed.
    #[arg(long, default_value = "127.0.0.1:0")]
    admin: SocketAddr,
    /// Write the admin address (`host:port`) to this file once serving (as Envoy's
    /// `--admin-address-path`).
    #[arg(long, value_name = "FILE")]
    admin_address_path: Option<PathBuf>,
    /// Listener address.
    #[arg(long, default_value = "127.0.0.1:10000")]
    listen: SocketAddr,
    /// Worker threads (default: the number of cores).
    #[arg(long)]
    workers: Option<usize>,
    /// What a failing filter does to traffic: fail-closed (503), fail-open (bypass), or
    /// fail-reload (503 while a fresh VM is rebuilt, with backoff).
    #[arg(long, default_value = "fail-closed", value_parser = ["fail-closed", "fail-open", "fail-reload"])]
    failure_policy: String,
    /// Longest a single filter callback may run, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    deadline_ms: u64,
    /// Largest linear memory of one VM, in MiB.
    #[arg(long, default_value_t = 1024)]
    max_memory_mib: usize,
}

/// Parses `http://host:port` or `h2c://host:port` into an endpoint and a protocol.
fn endpoint(url: &str, what: &str) -> anyhow::Result<(String, UpstreamProtocol)> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("{what} {url:?} is not a URL"))?;
    let protocol = match uri.scheme_str() {
        Some("http") => UpstreamProtocol::Http1,
        Some("h2c") => UpstreamProtocol::Http2,
        _ => bail!(
            "{what} {url:?}: give http://host:port (HTTP/1.1) or h2c://host:port (HTTP/2 cleartext); TLS upstreams come with the transport layer"
        ),
    };
    let authority = uri
        .authority()
        .with_context(|| format!("{what} {url:?} has no host:port"))?;
    let port = authority.port_u16().unwrap_or(80);
    Ok((format!("{}:{port}", authority.host()), protocol))
}

/// The clusters of `--cluster NAME=URL` flags.
fn clusters(flags: &[String]) -> anyhow::Result<Vec<ClusterConfig>> {
    let mut clusters: Vec<ClusterConfig> = Vec::new();
    for flag in flags {
        let Some((name, url)) = flag.split_once('=') else {
            bail!("--cluster {flag:?}: expected NAME=http://host:port");
        };
        if name.is_empty() {
            bail!("--cluster {flag:?}: the cluster name is empty");
        }
        if clusters.iter().any(|c| c.name == name) {
            bail!("--cluster {name:?} is given twice");
        }
        let (endpoint, protocol) = endpoint(url, &format!("--cluster {name}"))?;
        clusters.push(ClusterConfig {
            protocol,
            ..ClusterConfig::single(name, endpoint)
        });
    }
    Ok(clusters)
}

pub(crate) fn execute(args: RunArgs) -> anyhow::Result<()> {
    let mut clusters = clusters(&args.clusters)?;
    let upstream = match args.upstream.as_str() {
        "echo" => UpstreamConfig::Echo,
        name if clusters.iter().any(|c| c.name == name) => UpstreamConfig::Cluster(name.into()),
        url => {
            let (endpoint, protocol) = endpoint(url, "--upstream")?;
            let name = "upstream";
            if clusters.iter().any(|c| c.name == name) {
                bail!(
                    "--upstream {url:?}: a --cluster is already named \"upstream\"; give --upstream upstream to route to it"
                );
            }
            clusters.push(ClusterConfig {
                protocol,
                ..ClusterConfig::single(name, endpoint)
            });
            UpstreamConfig::Cluster(name.into())
        }
    };
    let failure_policy = match args.failure_policy.as_str() {
        "fail-open" => FailurePolicy::FailOpen,
        "fail-reload" => FailurePolicy::FailReload,
        _ => FailurePolicy::FailClosed,
    };
    let mut filters = Vec::new();
    let source_options = args.sources.options()?;
    for (index, source) in std::iter::once(&args.filter)
        .chain(&args.filters)
        .enumerate()
    {
        let module = crate::modules::resolve(source, None, &source_options)?;
        let name = module.name();
        let configuration = args.configs.get(index).cloned().unwrap_or_default();
        filters.push(FilterConfig {
            wasm: module.bytes,
            source: source.clone(),
            plugin: PluginConfig {
                name: name.clone(),
                root_id: String::new(),
                configuration: configuration.into_bytes(),
                failure_policy,
                ..Default::default()
            },
            vm: VmConfig {
                vm_id: name,
                configuration: args.vm_config.clone().into_bytes(),
                environment: Vec::new(),
            },
        });
    }
    let limits = Limits {
        callback_deadline: Duration::from_millis(args.deadline_ms),
        max_memory_bytes: args.max_memory_mib << 20,
        ..Limits::default()
    };
    let workers = args.workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
    });
    let engine = Engine::new(&EngineConfig::default()).context("starting the wasm engine")?;
    let mut config = ProxyConfig {
        workers,
        admin: Some(args.admin),
        limits,
        ..ProxyConfig::new(args.listen, filters, upstream)
    };
    config.clusters.extend(clusters);
    let mut services = Services::new(Arc::new(TracingLog {
        level: pwx_abi::LogLevel::Info,
    }));
    services.clusters = Arc::new(
        config
            .clusters
            .iter()
            .map(|c| c.name.clone())
            .collect::<std::collections::HashSet<_>>(),
    );
    let services = Arc::new(services);
    let sources: Vec<String> = config.listeners[0]
        .filters
        .iter()
        .map(|f| f.source.clone())
        .collect();
    let proxy = Proxy::start(config, &engine, services)?;
    eprintln!(
        "pwx: listening on http://{} ({workers} workers), filters: {}, upstream: {}",
        proxy
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        sources.join(" -> "),
        args.upstream
    );
    if let Some(admin) = proxy.admin_addr() {
        eprintln!("pwx: admin on http://{admin} (/stats, /stats/prometheus, /plugins)");
        if let Some(path) = &args.admin_address_path {
            std::fs::write(path, admin.to_string())
                .with_context(|| format!("writing the admin address to {}", path.display()))?;
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime
        .block_on(async {
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                result = tokio::signal::ctrl_c() => result,
                _ = terminate.recv() => Ok(()),
            }
        })
        .context("waiting for Ctrl-C or SIGTERM")?;
    eprintln!("pwx: shutting down");
    proxy.shutdown();
    Ok(())
}
