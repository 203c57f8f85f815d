//! A worker: one thread with its own single-threaded runtime, listener socket (SO_REUSEPORT),
//! VM replicas and upstream client. Requests never leave their worker and take no lock: the
//! chain sits in a `RefCell` that is borrowed only for the duration of a callback sequence,
//! never across an await.

use crate::chain::{Chain, Filter, Rebuild, Response, Stopped, paused_forever};
use crate::config::UpstreamConfig;
use crate::upstream::{Upstream, is_hop_by_hop};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use pwx_host::failure::fail_closed_reply;
use pwx_host::{HeaderMap, LocalReply, Module, PluginConfig, Services, StreamInfo, Vm, VmConfig};
use std::cell::RefCell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

/// What every worker builds its chain from.
pub(crate) struct WorkerPlan {
    pub(crate) filters: Vec<(Module, PluginConfig, VmConfig)>,
    pub(crate) services: Arc<Services>,
    pub(crate) limits: pwx_host::Limits,
    pub(crate) upstream: UpstreamConfig,
}

enum Target {
    Echo,
    Http(Box<Upstream>),
}

/// Builds this worker's VM replicas and starts their plugins.
fn build_chain(plan: &WorkerPlan) -> Result<Chain, String> {
    let mut filters = Vec::new();
    for (module, plugin, vm_config) in &plan.filters {
        let mut vm = Vm::new(
            module,
            vm_config.clone(),
            plan.services.clone(),
            &plan.limits,
        )
        .map_err(|e| e.to_string())?;
        let root = vm.start_plugin(plugin.clone()).map_err(|e| e.to_string())?;
        let rebuild = Rebuild {
            module: module.clone(),
            vm_config: vm_config.clone(),
            services: plan.services.clone(),
            limits: plan.limits.clone(),
            backoff: pwx_host::failure::ReloadBackoff::new(plugin.reload_backoff),
        };
        filters.push(Filter {
            vm,
            root,
            plugin: Arc::new(plugin.clone()),
            rebuild,
        });
    }
    Ok(Chain { filters })
}

/// Runs a worker until `shutdown` flips; reports start-up success or failure on `ready`.
pub(crate) fn run(
    listener: std::net::TcpListener,
    plan: Arc<WorkerPlan>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = ready.send(Err(format!("starting the worker runtime: {e}")));
            return;
        }
    };
    let chain = match build_chain(&plan) {
        Ok(chain) => Rc::new(RefCell::new(chain)),
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let target = Rc::new(match &plan.upstream {
        UpstreamConfig::Echo => Target::Echo,
        UpstreamConfig::Http(uri) => Target::Http(Box::new(Upstream::new(uri.clone()))),
    });
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listener = match listener
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(listener))
        {
            Ok(listener) => listener,
            Err(e) => {
                let _ = ready.send(Err(format!("listening: {e}")));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                },
                _ = shutdown.changed() => break,
            };
            let local_addr = stream.local_addr().ok();
            let (chain, target, plan) = (chain.clone(), target.clone(), plan.clone());
            tokio::task::spawn_local(async move {
                let service = service_fn(move |request| {
                    handle(
                        chain.clone(),
                        target.clone(),
                        plan.clone(),
                        request,
                        peer,
                        local_addr,
                    )
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
            });
        }
    });
}

/// Envoy's request headers as filters see them: pseudo-headers first, `host` as `:authority`,
/// plus what the connection manager adds before the filter chain.
fn request_map(parts: &http::request::Parts) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.add(
        b":authority",
        parts
            .headers
            .get(http::header::HOST)
            .map(|h| h.as_bytes())
            .unwrap_or_default(),
    );
    map.add(
        b":path",
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .as_bytes(),
    );
    map.add(b":method", parts.method.as_str().as_bytes());
    map.add(b":scheme", b"http");
    for (name, value) in &parts.headers {
        if name != http::header::HOST {
            map.add(name.as_str().as_bytes(), value.as_bytes());
        }
    }
    if map.get(b"x-forwarded-proto").is_none() {
        map.add(b"x-forwarded-proto", b"http");
    }
    if map.get(b"x-request-id").is_none() {
        map.add(b"x-request-id", request_id().as_bytes());
    }
    map
}

/// A random UUID v4, as Envoy generates for `x-request-id`.
fn request_id() -> String {
    let mut bytes = [0u8; 16];
    // A failing OS random source leaves zeros: the id is a correlation tag, not a secret.
    let _ = getrandom::fill(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn status_reply(status: u32, details: &str, body: &str) -> LocalReply {
    LocalReply {
        status,
        details: details.into(),
        body: body.as_bytes().to_vec(),
        headers: Vec::new(),
        grpc_status: None,
    }
}

async fn handle(
    chain: Rc<RefCell<Chain>>,
    target: Rc<Target>,
    plan: Arc<WorkerPlan>,
    request: http::Request<Incoming>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, plan.limits.request_buffer_bytes)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(to_http(Response::local(&status_reply(
                413,
                "request_payload_too_large",
                "Payload Too Large",
            ))));
        }
    };
    let headers = request_map(&parts);
    let info = StreamInfo {
        source: Some(peer),
        destination: local,
        protocol: Some("HTTP/1.1".into()),
        start_time: Some(std::time::SystemTime::now()),
        request_body_bytes: body.len() as u64,
        ..StreamInfo::default()
    };
    let (mut streams, result) = {
        let mut chain = chain.borrow_mut();
        let mut streams = chain.open(&info);
        let result = chain.request(&mut streams, headers.clone(), body);
        (streams, result)
    };
    let last = chain.borrow().last();
    let (final_request, response, from) = match result {
        Ok((request_headers, body)) => {
            let response = match &*target {
                Target::Echo => {
                    let (headers, body) = crate::echo::respond(&request_headers, &body);
                    Response {
                        headers,
                        body,
                        details: None,
                    }
                }
                Target::Http(upstream) => match upstream.send(&request_headers, body).await {
                    Ok((headers, body)) => Response {
                        headers,
                        body,
                        details: None,
                    },
                    Err(failure) => Response::local(&status_reply(
                        503,
                        "upstream_reset_before_response_started{connection_failure}",
                        &format!(
                            "upstream connect error or disconnect/reset before headers. reset reason: connection failure, transport failure reason: {}",
                            failure.0
                        ),
                    )),
                },
            };
            (request_headers, response, last)
        }
        Err(Stopped::LocalReply(i, reply)) => (headers, Response::local(&reply), Some(i)),
        Err(Stopped::FailClosed(i)) => (
            headers,
            Response::local(&fail_closed_reply()),
            i.checked_sub(1),
        ),
        Err(Stopped::PausedForever(i)) => {
            let name = chain.borrow().filters[i].plugin.name.clone();
            (headers, paused_forever(i, &name), i.checked_sub(1))
        }
        Err(Stopped::TooLarge) => (
            headers,
            Response::local(&status_reply(
                413,
                "request_payload_too_large",
                "Payload Too Large",
            )),
            last,
        ),
    };
    let response = {
        let mut chain = chain.borrow_mut();
        let response = chain.response(&mut streams, from, response);
        chain.close(streams, &final_request, &response.headers);
        response
    };
    Ok(to_http(response))
}

fn to_http(response: Response) -> http::Response<Full<Bytes>> {
    let status = response
        .headers
        .get_str(":status")
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or(500);
    let mut builder = http::Response::builder().status(
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
    );
    for (name, value) in response.headers.iter() {
        if name.starts_with(b":") || is_hop_by_hop(name) {
            continue;
        }
        builder = builder.header(name, value);
    }
    if let Some(details) = &response.details {
        tracing::debug!(details, status, "local reply");
    }
    builder.body(Full::new(response.body)).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "a filter produced a response hyper refuses; answering 500");
        let mut fallback = http::Response::new(Full::new(Bytes::from_static(
            b"invalid response from filter chain\n",
        )));
        *fallback.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}
