//! `pwx run`: a chain of proxy-wasm filters in front of an upstream, on this machine — from
//! quick-mode flags, or from a configuration file (pwx YAML or an Envoy bootstrap).

mod file;
mod filter_source;
mod logs;
mod serve;
mod tls;
mod watch;

use anyhow::{Context, bail};
use pwx_abi::FailurePolicy;
use pwx_host::{Engine, EngineConfig, Limits, PluginConfig, Services, VmConfig};
use pwx_proxy::tls::{
    CertificatePem, ClientTls, ClientTlsOptions, Pem, ServerTls, ServerTlsOptions, Trust,
};
use pwx_proxy::{
    ClusterConfig, ClusterNames, FilterConfig, Proxy, ProxyConfig, UpstreamConfig, UpstreamProtocol,
};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `pwx run`.
#[derive(clap::Args)]
pub(crate) struct RunArgs {
    /// The first filter: a .wasm file, a filter project directory (built first, as `pwx
    /// build` does), https://…#sha256=HEX, or oci://REGISTRY/REPO:TAG. Not with `-c`.
    /// Without any filter, pwx proxies to the upstream unchanged.
    #[arg(conflicts_with = "config_path")]
    filter: Option<String>,
    /// A configuration file instead of the quick-mode flags: pwx's YAML, or an Envoy
    /// bootstrap (`envoy.yaml`) with static listeners, `envoy.filters.http.wasm` filters and
    /// clusters (see docs/config.md).
    #[arg(short = 'c', long = "config-path", value_name = "FILE")]
    config_path: Option<PathBuf>,
    /// Envoy-compatible log options (for the wasm logger): where module log lines go...
    #[command(flatten)]
    log: logs::LogArgs,
    /// More filters, in request order (repeatable; same forms as the first, directories too).
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
    /// `echo` (built-in echo upstream), `http://host:port`, `h2c://host:port`,
    /// `https://host:port` (TLS, HTTP/2 or HTTP/1.1 by ALPN), or the name of a `--cluster`.
    #[arg(long, default_value = "echo")]
    upstream: String,
    /// A cluster filters can call out to (`proxy_http_call`, gRPC):
    /// `NAME=http://host:port` (HTTP/1.1), `NAME=h2c://host:port` (HTTP/2) or
    /// `NAME=https://host:port` (TLS). Repeatable.
    #[arg(long = "cluster", value_name = "NAME=URL")]
    clusters: Vec<String>,
    /// PEM file of the CAs that `https://` upstreams and clusters are verified against
    /// (default: the system's roots).
    #[arg(long, value_name = "FILE", conflicts_with = "config_path")]
    upstream_ca: Option<PathBuf>,
    /// Terminate TLS on the listener with this certificate chain (PEM; with --tls-key).
    /// ALPN offers h2 and http/1.1.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        conflicts_with = "config_path"
    )]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        conflicts_with = "config_path"
    )]
    tls_key: Option<PathBuf>,
    /// Admin endpoint address (`/ready`, `/stats`, `/stats/prometheus`, `/plugins`); port 0
    /// picks a free port, which is printed. Default: the configuration file's `admin`, else
    /// 127.0.0.1:0.
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// Listener address.
    #[arg(long, default_value = "127.0.0.1:10000")]
    listen: SocketAddr,
    /// Worker threads (default: the number of cores).
    #[arg(long, visible_alias = "concurrency")]
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
    /// On SIGTERM or Ctrl-C, how long open connections may finish their requests (seconds)
    /// before pwx stops. A second signal stops at once.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 10.0,
        visible_alias = "drain-time-s"
    )]
    drain_timeout: f64,
    /// Do not reload when the configuration file or a local module file changes (SIGHUP and
    /// `POST /reload` on the admin endpoint still reload).
    #[arg(long)]
    no_watch: bool,
}

/// A cluster from `http://host:port`, `h2c://host:port` or `https://host:port` (TLS verified
/// against `tls`, the trust of `--upstream-ca`).
fn endpoint_cluster(
    name: &str,
    url: &str,
    what: &str,
    tls: &Trust,
) -> anyhow::Result<ClusterConfig> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("{what} {url:?} is not a URL"))?;
    let (protocol, tls, default_port) = match uri.scheme_str() {
        Some("http") => (UpstreamProtocol::Http1, None, 80),
        Some("h2c") => (UpstreamProtocol::Http2, None, 80),
        // ALPN offers both; the connection speaks what the server picks.
        Some("https") => {
            let options = ClientTlsOptions {
                alpn: vec!["h2".into(), "http/1.1".into()],
                ..ClientTlsOptions::new(tls.clone())
            };
            let tls = ClientTls::new(&options).with_context(|| format!("{what} {url:?}"))?;
            (UpstreamProtocol::Http1, Some(tls), 443)
        }
        _ => bail!(
            "{what} {url:?}: give http://host:port (HTTP/1.1), h2c://host:port (HTTP/2 cleartext) or https://host:port (TLS)"
        ),
    };
    let authority = uri
        .authority()
        .with_context(|| format!("{what} {url:?} has no host:port"))?;
    let port = authority.port_u16().unwrap_or(default_port);
    Ok(ClusterConfig {
        protocol,
        tls,
        ..ClusterConfig::single(name, format!("{}:{port}", authority.host()))
    })
}

/// What `https://` upstreams are verified against: `--upstream-ca`, else the system roots.
fn upstream_trust(args: &RunArgs) -> anyhow::Result<Trust> {
    Ok(match &args.upstream_ca {
        Some(path) => Trust::Ca(Pem::file(path).context("--upstream-ca")?),
        None => Trust::SystemRoots,
    })
}

/// The listener TLS of `--tls-cert`/`--tls-key`: ALPN h2 and http/1.1, TLS 1.2 and 1.3.
fn listener_tls(args: &RunArgs) -> anyhow::Result<Option<ServerTls>> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let options = ServerTlsOptions {
        certificates: vec![CertificatePem {
            chain: Pem::file(cert).context("--tls-cert")?,
            key: Pem::file(key).context("--tls-key")?,
        }],
        alpn: vec!["h2".into(), "http/1.1".into()],
        ..ServerTlsOptions::default()
    };
    Ok(Some(
        ServerTls::new(&options).context("--tls-cert/--tls-key")?,
    ))
}

/// The clusters of `--cluster NAME=URL` flags.
fn clusters(flags: &[String], trust: &Trust) -> anyhow::Result<Vec<ClusterConfig>> {
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
        clusters.push(endpoint_cluster(
            name,
            url,
            &format!("--cluster {name}"),
            trust,
        )?);
    }
    Ok(clusters)
}

/// The proxy the quick-mode flags describe, and a one-line summary of it.
fn quick_config(
    args: &RunArgs,
    first: Option<&str>,
    limits: Limits,
) -> anyhow::Result<(ProxyConfig, String)> {
    let trust = upstream_trust(args)?;
    let mut clusters = clusters(&args.clusters, &trust)?;
    let upstream = match args.upstream.as_str() {
        "echo" => UpstreamConfig::Echo,
        name if clusters.iter().any(|c| c.name == name) => UpstreamConfig::Cluster(name.into()),
        url => {
            let name = "upstream";
            if clusters.iter().any(|c| c.name == name) {
                bail!(
                    "--upstream {url:?}: a --cluster is already named \"upstream\"; give --upstream upstream to route to it"
                );
            }
            clusters.push(endpoint_cluster(name, url, "--upstream", &trust)?);
            UpstreamConfig::Cluster(name.into())
        }
    };
    let failure_policy = match args.failure_policy.as_str() {
        "fail-open" => FailurePolicy::FailOpen,
        "fail-reload" => FailurePolicy::FailReload,
        _ => FailurePolicy::FailClosed,
    };
    let sources: Vec<&str> = first
        .into_iter()
        .chain(args.filters.iter().map(String::as_str))
        .collect();
    if args.configs.len() > sources.len() {
        bail!(
            "--config is given {} times but there are {} filters: give one --config per filter, in filter order",
            args.configs.len(),
            sources.len()
        );
    }
    let mut filters = Vec::new();
    let source_options = args.sources.options()?;
    for (index, source) in sources.into_iter().enumerate() {
        let source = &filter_source::resolve(source)?;
        let module = crate::modules::resolve(source, None, &source_options)?;
        let name = module.name();
        let configuration = args.configs.get(index).cloned().unwrap_or_default();
        filters.push(FilterConfig {
            wasm: module.bytes,
            source: source.to_string(),
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
    let mut config = ProxyConfig {
        admin: Some(args.admin.unwrap_or(ANY_LOCAL_PORT)),
        limits,
        ..ProxyConfig::new(args.listen, filters, upstream)
    };
    config.clusters.extend(clusters);
    config.listeners[0].tls = listener_tls(args)?;
    let sources: Vec<String> = config.listeners[0]
        .filters
        .iter()
        .map(|f| f.source.clone())
        .collect();
    let summary = format!(
        "filters: {}, upstream: {}",
        if sources.is_empty() {
            "none".to_string()
        } else {
            sources.join(" -> ")
        },
        args.upstream
    );
    Ok((config, summary))
}

/// 127.0.0.1 with a port the kernel picks.
const ANY_LOCAL_PORT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// A configuration built from the arguments (at start, and again at every reload).
pub(super) struct Loaded {
    pub(super) config: ProxyConfig,
    /// One line saying what runs.
    pub(super) summary: String,
    /// The node identity of a configuration file (`xds.node`), read at start only.
    pub(super) node: Option<pwx_host::services::NodeInfo>,
}

/// Reads the configuration file or the quick-mode flags, and every module they name.
pub(super) fn load(args: &RunArgs, limits: Limits, workers: usize) -> anyhow::Result<Loaded> {
    let (mut config, summary, node) = match (&args.config_path, &args.filter) {
        (Some(path), _) => {
            let (config, node) = file::proxy_config(path, args, limits)?;
            (
                config,
                format!("configuration: {}", path.display()),
                Some(node),
            )
        }
        (None, first) => {
            let (config, summary) = quick_config(args, first.as_deref(), limits)?;
            (config, summary, None)
        }
    };
    config.workers = workers;
    if let Some(admin) = args.admin {
        config.admin = Some(admin);
    }
    Ok(Loaded {
        config,
        summary,
        node,
    })
}

/// The local files a configuration came from: a change to one reloads it.
pub(super) fn watched_files(args: &RunArgs, config: &ProxyConfig) -> Vec<PathBuf> {
    let modules = config
        .listeners
        .iter()
        .flat_map(|l| &l.filters)
        .chain(&config.services)
        .map(|f| PathBuf::from(&f.source))
        .filter(|path| path.is_file());
    let mut files: Vec<PathBuf> = args.config_path.iter().cloned().chain(modules).collect();
    files.dedup();
    files
}

pub(crate) fn execute(args: RunArgs) -> anyhow::Result<()> {
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
    if !(args.drain_timeout.is_finite() && args.drain_timeout >= 0.0) {
        bail!(
            "--drain-timeout {}: give a number of seconds, 0 or more",
            args.drain_timeout
        );
    }
    let drain_timeout = Duration::from_secs_f64(args.drain_timeout);
    let log = args.log.sink()?;
    let mut services = Services::new(log);
    let Loaded {
        config,
        summary,
        node,
    } = load(&args, limits.clone(), workers)?;
    if let Some(node) = node {
        services.node = node;
    }
    let names = Arc::new(ClusterNames::of(&config));
    services.clusters = names.clone();
    let services = Arc::new(services);
    let engine = Engine::new(&EngineConfig::default()).context("starting the wasm engine")?;
    let schemes: Vec<&str> = config
        .listeners
        .iter()
        .map(|l| match (&l.tcp, &l.tls) {
            (Some(_), _) => "tcp",
            (None, Some(_)) => "https",
            (None, None) => "http",
        })
        .collect();
    let files = watched_files(&args, &config);
    let proxy = Proxy::start(config, &engine, services)?;
    let listening: Vec<String> = proxy
        .listener_addrs()
        .iter()
        .zip(schemes)
        .map(|(a, scheme)| format!("{scheme}://{a}"))
        .collect();
    eprintln!(
        "pwx: listening on {} ({workers} workers), {summary}",
        listening.join(", ")
    );
    if let Some(admin) = proxy.admin_addr() {
        eprintln!("pwx: admin on http://{admin} (/stats, /stats/prometheus, /plugins)");
        if let Some(path) = &args.log.admin_address_path {
            std::fs::write(path, admin.to_string())
                .with_context(|| format!("writing the admin address to {}", path.display()))?;
        }
    }
    let reloader = serve::Reloader {
        args: &args,
        limits,
        workers,
        engine: &engine,
        names,
    };
    serve::serve(proxy, reloader, files, !args.no_watch, drain_timeout)
}
