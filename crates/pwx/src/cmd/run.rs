//! `pwx run`: a chain of proxy-wasm filters in front of an upstream, on this machine.

use anyhow::{Context, bail};
use pwx_abi::FailurePolicy;
use pwx_host::{Engine, EngineConfig, Limits, PluginConfig, Services, TracingLog, VmConfig};
use pwx_proxy::{FilterConfig, Proxy, ProxyConfig, UpstreamConfig};
use std::net::SocketAddr;
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
    /// `echo` (built-in echo upstream) or `http://host:port`.
    #[arg(long, default_value = "echo")]
    upstream: String,
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

pub(crate) fn execute(args: RunArgs) -> anyhow::Result<()> {
    let upstream = match args.upstream.as_str() {
        "echo" => UpstreamConfig::Echo,
        url => {
            let uri: http::Uri = url
                .parse()
                .with_context(|| format!("--upstream {url:?} is neither `echo` nor a URL"))?;
            if uri.scheme_str() != Some("http") || uri.authority().is_none() {
                bail!(
                    "--upstream {url:?}: give `echo` or http://host:port (TLS upstreams come with the transport layer)"
                );
            }
            UpstreamConfig::Http(uri)
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
    let services = Arc::new(Services::new(Arc::new(TracingLog {
        level: pwx_abi::LogLevel::Info,
    })));
    let config = ProxyConfig {
        listen: args.listen,
        workers,
        filters,
        upstream,
        limits,
    };
    let sources: Vec<String> = config.filters.iter().map(|f| f.source.clone()).collect();
    let proxy = Proxy::start(config, &engine, services)?;
    eprintln!(
        "pwx: listening on http://{} ({workers} workers), filters: {}, upstream: {}",
        proxy.local_addr(),
        sources.join(" -> "),
        args.upstream
    );
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
