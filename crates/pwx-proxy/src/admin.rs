//! The admin endpoint, on its own thread: `/ready`, `/stats` (Envoy's text format, `?format=json`
//! too), `/stats/prometheus`, `/listeners` (Envoy's JSON shape), `/plugins` (the loaded
//! plugins, the state of each worker's VM replicas, the last reload) and `POST /reload`.

use crate::reload::{ReloadRequest, ReloadState};
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use pwx_abi::MetricType;
use pwx_host::Services;
use pwx_host::metrics::{CUSTOM_NAMESPACE, HISTOGRAM_BUCKETS, Metric};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// What one worker last reported about one of its VM replicas.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub(crate) struct VmState {
    pub(crate) plugin: String,
    pub(crate) vm_id: String,
    pub(crate) instance: u64,
    pub(crate) failed: Option<String>,
    pub(crate) contexts: usize,
    pub(crate) memory_bytes: usize,
    /// The configuration generation the replica belongs to.
    pub(crate) generation: u64,
}

/// The VM states of every worker, refreshed by the workers once a second.
#[derive(Default)]
pub(crate) struct VmStates {
    by_worker: Mutex<std::collections::BTreeMap<usize, Vec<VmState>>>,
}

impl VmStates {
    pub(crate) fn publish(&self, worker: usize, states: Vec<VmState>) {
        self.by_worker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(worker, states);
    }

    fn snapshot(&self) -> Vec<(usize, Vec<VmState>)> {
        self.by_worker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(w, s)| (*w, s.clone()))
            .collect()
    }
}

/// A running admin endpoint.
pub(crate) struct Admin {
    addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    thread: std::thread::JoinHandle<()>,
}

struct Context {
    listeners: Vec<SocketAddr>,
    services: Arc<Services>,
    state: Arc<ReloadState>,
    reloads: tokio::sync::mpsc::UnboundedSender<ReloadRequest>,
}

impl Admin {
    pub(crate) fn start(
        addr: SocketAddr,
        listeners: Vec<SocketAddr>,
        services: Arc<Services>,
        state: Arc<ReloadState>,
        reloads: tokio::sync::mpsc::UnboundedSender<ReloadRequest>,
    ) -> std::io::Result<Admin> {
        let socket = std::net::TcpListener::bind(addr)?;
        socket.set_nonblocking(true)?;
        let addr = socket.local_addr()?;
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let context = Arc::new(Context {
            listeners,
            services,
            state,
            reloads,
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("pwx-admin".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(socket) = tokio::net::TcpListener::from_std(socket) else {
                        tracing::error!("the admin socket could not be registered");
                        return;
                    };
                    loop {
                        let stream = tokio::select! {
                            accepted = socket.accept() => match accepted {
                                Ok((stream, _)) => stream,
                                Err(_) => continue,
                            },
                            _ = stopped.changed() => break,
                        };
                        let context = context.clone();
                        tokio::spawn(async move {
                            let service = service_fn(move |request: http::Request<_>| {
                                let context = context.clone();
                                async move {
                                    let response = if request.uri().path() == "/reload" {
                                        reload(&context, request.method()).await
                                    } else {
                                        route(&context, &request)
                                    };
                                    Ok::<_, Infallible>(response)
                                }
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                });
            })?;
        Ok(Admin { addr, stop, thread })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.thread.join();
    }
}

fn reply(status: u16, content_type: &str, body: String) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, value);
    }
    response
}

fn route<B>(context: &Context, request: &http::Request<B>) -> http::Response<Full<Bytes>> {
    let query = request.uri().query().unwrap_or("");
    let json = query.split('&').any(|p| p == "format=json");
    match (request.method(), request.uri().path()) {
        (&http::Method::GET, "/ready") => reply(200, "text/plain", "LIVE\n".into()),
        (&http::Method::GET, "/stats") if json => {
            reply(200, "application/json", stats_json(&context.services))
        }
        (&http::Method::GET, "/stats") => reply(200, "text/plain", stats_text(&context.services)),
        (&http::Method::GET, "/stats/prometheus") => reply(
            200,
            "text/plain; version=0.0.4",
            stats_prometheus(&context.services),
        ),
        (&http::Method::GET, "/listeners") => {
            reply(200, "application/json", listeners_json(context))
        }
        (&http::Method::GET, "/plugins") => reply(200, "application/json", plugins_json(context)),
        (&http::Method::GET, "/") => reply(
            200,
            "text/plain",
            "pwx admin: /ready /stats /stats?format=json /stats/prometheus /listeners?format=json /plugins, POST /reload\n"
                .into(),
        ),
        _ => reply(404, "text/plain", "not found; try GET /\n".into()),
    }
}

/// `POST /reload`: asks the owner of the configuration (the CLI) to reload it and answers
/// with the outcome: 200 and a summary, or 500 and why the previous configuration still serves.
async fn reload(context: &Context, method: &http::Method) -> http::Response<Full<Bytes>> {
    if method != http::Method::POST {
        return reply(405, "text/plain", "use POST /reload\n".into());
    }
    let (answer, outcome) = tokio::sync::oneshot::channel();
    if context
        .reloads
        .send(ReloadRequest { reply: answer })
        .is_err()
    {
        return reply(
            501,
            "text/plain",
            "this proxy cannot reload its configuration (nothing owns it)\n".into(),
        );
    }
    match outcome.await {
        Ok(Ok(summary)) => reply(200, "text/plain", format!("{summary}\n")),
        Ok(Err(error)) => reply(500, "text/plain", format!("{error}\n")),
        Err(_) => reply(
            503,
            "text/plain",
            "the reload was not answered (the proxy is stopping)\n".into(),
        ),
    }
}

/// Envoy's text form of a histogram: quantiles estimated from the buckets.
fn histogram_summary(metric: &Metric) -> String {
    let (count, _) = metric.histogram_totals();
    if count == 0 {
        return "No recorded values".into();
    }
    let buckets = metric.histogram_buckets();
    let quantile = |q: f64| {
        let target = (q * count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in buckets.iter().enumerate() {
            seen += n;
            if seen >= target {
                return HISTOGRAM_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY);
            }
        }
        f64::INFINITY
    };
    [0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 1.0]
        .iter()
        .map(|q| {
            let v = quantile(*q);
            format!("P{}({v},{v})", q * 100.0)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn stats_text(services: &Services) -> String {
    let mut out = String::new();
    for (name, metric) in services.metrics.snapshot() {
        let value = match metric.kind {
            MetricType::Histogram => histogram_summary(&metric),
            MetricType::Counter => (metric.value() as u64).to_string(),
            MetricType::Gauge => (metric.value() as u64).to_string(),
        };
        let _ = writeln!(out, "{name}: {value}");
    }
    out
}

fn stats_json(services: &Services) -> String {
    let stats: Vec<serde_json::Value> = services
        .metrics
        .snapshot()
        .into_iter()
        .map(|(name, metric)| match metric.kind {
            MetricType::Histogram => {
                let (count, sum) = metric.histogram_totals();
                serde_json::json!({"name": name, "histogram": {"count": count, "sum": sum}})
            }
            _ => serde_json::json!({"name": name, "value": metric.value() as u64}),
        })
        .collect();
    serde_json::json!({ "stats": stats }).to_string()
}

/// Prometheus exposition. Like Envoy, stats of the custom `wasmcustom` namespace lose the
/// namespace and get no `envoy_` prefix; other characters than `[a-zA-Z0-9_]` become `_`.
fn stats_prometheus(services: &Services) -> String {
    let mut out = String::new();
    for (name, metric) in services.metrics.snapshot() {
        let bare = name
            .strip_prefix(CUSTOM_NAMESPACE)
            .and_then(|n| n.strip_prefix('.'))
            .unwrap_or(&name);
        let prom: String = bare
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        match metric.kind {
            MetricType::Counter => {
                let _ = writeln!(
                    out,
                    "# TYPE {prom} counter\n{prom}{{}} {}",
                    metric.value() as u64
                );
            }
            MetricType::Gauge => {
                let _ = writeln!(
                    out,
                    "# TYPE {prom} gauge\n{prom}{{}} {}",
                    metric.value() as u64
                );
            }
            MetricType::Histogram => {
                let _ = writeln!(out, "# TYPE {prom} histogram");
                let buckets = metric.histogram_buckets();
                let mut cumulative = 0;
                for (bound, n) in HISTOGRAM_BUCKETS.iter().zip(&buckets) {
                    cumulative += n;
                    let _ = writeln!(out, "{prom}_bucket{{le=\"{bound}\"}} {cumulative}");
                }
                let (count, sum) = metric.histogram_totals();
                let _ = writeln!(out, "{prom}_bucket{{le=\"+Inf\"}} {count}");
                let _ = writeln!(out, "{prom}_sum{{}} {sum}");
                let _ = writeln!(out, "{prom}_count{{}} {count}");
            }
        }
    }
    out
}

fn listeners_json(context: &Context) -> String {
    let statuses: Vec<serde_json::Value> = context
        .listeners
        .iter()
        .zip(&context.state.plan().listeners)
        .map(|(addr, listener)| {
            serde_json::json!({
                "name": listener.name,
                "local_address": {"socket_address": {
                    "address": addr.ip().to_string(),
                    "port_value": addr.port(),
                }},
            })
        })
        .collect();
    serde_json::json!({ "listener_statuses": statuses }).to_string()
}

fn plugins_json(context: &Context) -> String {
    let plan = context.state.plan();
    let plugins: Vec<serde_json::Value> = plan
        .filters
        .iter()
        .map(|(module, plugin, vm)| {
            serde_json::json!({
                "name": plugin.name,
                "root_id": plugin.root_id,
                "vm_id": vm.vm_id,
                "failure_policy": format!("{:?}", plugin.failure_policy.effective()),
                "module": {
                    "sha256": module.sha256(),
                    "abi_version": module.abi_version().to_string(),
                },
            })
        })
        .collect();
    let workers: Vec<serde_json::Value> = plan
        .vm_states
        .snapshot()
        .into_iter()
        .map(|(worker, vms)| serde_json::json!({"worker": worker, "vms": vms}))
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({
        "generation": context.state.generation(),
        "last_reload": context.state.last(),
        "plugins": plugins,
        "workers": workers,
    }))
    .unwrap_or_default()
}
