//! One request through the chain, with Envoy's order: request headers, body and trailers
//! through the filters in configured order, the upstream (or a local reply), the response
//! through the filters in reverse, then `on_log` and `on_done`/`on_delete` for each filter.
//!
//! A filter that pauses makes the stream wait (without blocking the worker) until the filter
//! resumes it, answers it, resets it, or the stream idle timeout fires. Bodies are received
//! whole and handed to each filter as Envoy hands over a content-length body: `(n, false)` then
//! `(0, true)`; a filter that paused its headers gets the whole body in one `(n, true)` call
//! after it resumes.

use crate::clusters::{OutBody, OutRequest, is_hop_by_hop};
use crate::dispatch::{Waiter, Wake};
use crate::routes::RouteAction;
use crate::worker::Worker;
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use pwx_host::failure::{FailureAction, fail_closed_reply, stream_action};
use pwx_host::{Direction, Flow, HeaderMap, LocalReply, Step, StreamInfo, VmFailed};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

/// The stream was reset: the connection is closed without a response, as Envoy does.
#[derive(Debug, thiserror::Error)]
#[error("stream reset: {0}")]
pub(crate) struct StreamReset(&'static str);

/// A response on its way back through the chain.
pub(crate) struct Response {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) trailers: Option<HeaderMap>,
    pub(crate) details: Option<String>,
}

impl Response {
    pub(crate) fn local(reply: &LocalReply) -> Response {
        let mut headers = HeaderMap::new();
        headers.add(b":status", reply.status.to_string().as_bytes());
        for (k, v) in &reply.headers {
            headers.add(k, v);
        }
        if !reply.body.is_empty() && headers.get(b"content-type").is_none() {
            headers.add(b"content-type", b"text/plain");
        }
        Response {
            headers,
            body: Bytes::from(reply.body.clone()),
            trailers: None,
            details: Some(reply.details.clone()),
        }
    }
}

/// Why the request path ended before the upstream.
enum Stopped {
    /// Filter `.0` answered; the response path starts at that filter.
    Reply(usize, LocalReply),
    /// Filter `.0`'s VM failed (FAIL_CLOSED reply, its own response path skipped).
    Failed(usize),
    /// A filter reset the stream.
    Reset,
    /// The request body exceeded the buffer limit.
    TooLarge,
    /// Filter `.0` kept the stream paused past the idle timeout.
    IdleTimeout(usize),
}

/// What a callback decided, once its deferred actions were applied.
enum After<T> {
    Continue(T),
    Stop,
    Reply(LocalReply),
    Failed,
    Overflow,
}

/// How a wait ended.
enum Woken {
    Continue(pwx_host::Held),
    Reply(LocalReply),
    Reset,
    Failed,
    IdleTimeout,
}

/// The stream's contexts, one per filter; closing them (`on_log`, `on_done`, `on_delete`) is
/// guaranteed even when the client goes away mid-stream and hyper drops the request future.
struct Contexts {
    worker: Rc<Worker>,
    /// The worker's filter index of each position in this listener's chain.
    filters: Vec<usize>,
    /// The stream context in each filter (`None` once a fail-open filter is bypassed).
    ids: Vec<Option<u32>>,
    info: StreamInfo,
    request: HeaderMap,
    response: HeaderMap,
    response_trailers: Option<HeaderMap>,
    /// The listener's stream idle timeout.
    idle: Duration,
    closed: bool,
}

impl Contexts {
    fn open(worker: Rc<Worker>, listener: usize, info: StreamInfo) -> Contexts {
        let filters = worker.plan.listeners[listener].filters.clone();
        let ids = {
            let mut chain = worker.chain.borrow_mut();
            filters
                .iter()
                .map(|&f| {
                    let filter = &mut chain.filters[f];
                    filter.vm.create_stream(filter.root, info.clone())
                })
                .collect()
        };
        let idle = worker.plan.listeners[listener].stream_idle_timeout;
        Contexts {
            worker,
            filters,
            ids,
            idle,
            info,
            request: HeaderMap::new(),
            response: HeaderMap::new(),
            response_trailers: None,
            closed: false,
        }
    }

    /// Filters whose VM failed before this stream: FAIL_RELOAD rebuilds (after its backoff),
    /// FAIL_OPEN bypasses, the others answer 503.
    fn skip_failed(&mut self) -> Result<(), Stopped> {
        let worker = self.worker.clone();
        for i in 0..self.ids.len() {
            let f = self.filters[i];
            if worker.chain.borrow().filters[f].vm.failure().is_none() {
                continue;
            }
            let reloaded = worker.chain.borrow_mut().filters[f].reload();
            if reloaded {
                worker.plugin_started(f);
                let mut chain = worker.chain.borrow_mut();
                let filter = &mut chain.filters[f];
                self.ids[i] = filter.vm.create_stream(filter.root, self.info.clone());
                continue;
            }
            let policy = worker.chain.borrow().filters[f].plugin.failure_policy;
            match stream_action(policy) {
                FailureAction::Bypass => self.ids[i] = None,
                FailureAction::Reply(_) => return Err(Stopped::Failed(i)),
            }
        }
        Ok(())
    }

    /// `on_log` for every filter, then `on_done` and `on_delete`.
    fn close(&mut self) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        let worker = self.worker.clone();
        let Ok(mut chain) = worker.chain.try_borrow_mut() else {
            tracing::error!("stream closed while its chain was busy; its contexts leak");
            return;
        };
        let mut pending = Vec::new();
        for (&index, id) in self.filters.iter().zip(&self.ids) {
            let Some(context) = *id else { continue };
            worker.waiters.borrow_mut().remove(&(index, context));
            let vm = &mut chain.filters[index].vm;
            vm.set_final_maps(
                context,
                Some(&self.request),
                Some(&self.response),
                self.response_trailers.as_ref(),
            );
            if let Ok(deferred) = vm.on_log(context) {
                pending.push((index, deferred));
            }
        }
        for (&index, id) in self.filters.iter().zip(&self.ids) {
            let Some(context) = *id else { continue };
            let vm = &mut chain.filters[index].vm;
            let _ = vm.finish_stream(context);
            pending.push((index, vm.take_deferred()));
        }
        drop(chain);
        for (index, deferred) in pending {
            worker.apply(index, deferred, None);
        }
    }
}

impl Drop for Contexts {
    fn drop(&mut self) {
        self.close();
    }
}

/// Applies a callback's deferred actions and reads its decision.
fn settle<T>(
    worker: &Rc<Worker>,
    index: usize,
    context: u32,
    result: Result<Step<T>, VmFailed>,
) -> After<T> {
    let step = match result {
        Ok(step) => step,
        Err(_) => {
            worker.fail_waiters(index);
            return After::Failed;
        }
    };
    let reply = step.local_reply(context).cloned();
    worker.apply(index, step.deferred, Some(context));
    if let Some(reply) = reply {
        return After::Reply(reply);
    }
    match step.flow {
        Flow::Continue(data) => After::Continue(data),
        Flow::Stop => After::Stop,
        Flow::BufferOverflow => After::Overflow,
    }
}

/// Waits until filter `index` acts on its paused stream.
async fn wait(
    worker: &Rc<Worker>,
    index: usize,
    context: u32,
    direction: Direction,
    idle: Duration,
) -> Woken {
    let (wake, woken) = tokio::sync::oneshot::channel();
    worker
        .waiters
        .borrow_mut()
        .insert((index, context), Waiter { direction, wake });
    match tokio::time::timeout(idle, woken).await {
        Ok(Ok(Wake::Continue(held))) => Woken::Continue(held),
        Ok(Ok(Wake::LocalReply(reply))) => Woken::Reply(reply),
        Ok(Ok(Wake::Reset)) => Woken::Reset,
        Ok(Ok(Wake::Failed)) | Ok(Err(_)) => Woken::Failed,
        Err(_) => {
            worker.waiters.borrow_mut().remove(&(index, context));
            Woken::IdleTimeout
        }
    }
}

/// The body split into the calls Envoy makes for a content-length body.
fn frames(body: Bytes, has_trailers: bool) -> Vec<(Bytes, bool)> {
    match (body.is_empty(), has_trailers) {
        (true, _) => Vec::new(),
        (false, true) => vec![(body, false)],
        (false, false) => vec![(body, false), (Bytes::new(), true)],
    }
}

fn merge(frames: Vec<(Bytes, bool)>) -> Vec<(Bytes, bool)> {
    if frames.len() < 2 {
        return frames;
    }
    let end = frames.last().is_some_and(|(_, end)| *end);
    let mut all = BytesMut::new();
    for (chunk, _) in frames {
        all.extend_from_slice(&chunk);
    }
    vec![(all.freeze(), end)]
}

/// What a wait on behalf of the request path means for it.
fn request_woken(index: usize, woken: Woken) -> Result<pwx_host::Held, Stopped> {
    match woken {
        Woken::Continue(held) => Ok(held),
        Woken::Reply(reply) => Err(Stopped::Reply(index, reply)),
        Woken::Reset => Err(Stopped::Reset),
        Woken::Failed => Err(Stopped::Failed(index)),
        Woken::IdleTimeout => Err(Stopped::IdleTimeout(index)),
    }
}

type Message = (HeaderMap, Bytes, Option<HeaderMap>);

/// The request path through every filter, in order.
async fn request_path(
    worker: &Rc<Worker>,
    contexts: &Contexts,
    (mut headers, body, mut trailers): Message,
) -> Result<Message, Stopped> {
    let count = contexts.ids.len();
    let end_with_headers = body.is_empty() && trailers.is_none();
    let mut paused_headers = vec![false; count];
    for (i, paused) in paused_headers.iter_mut().enumerate() {
        let Some(ctx) = contexts.ids[i] else { continue };
        let f = contexts.filters[i];
        let result = worker.chain.borrow_mut().filters[f].vm.on_headers(
            ctx,
            Direction::Request,
            headers,
            end_with_headers,
        );
        headers = match settle(worker, f, ctx, result) {
            After::Continue(h) => h,
            After::Stop => {
                *paused = true;
                let held = request_woken(
                    i,
                    wait(worker, f, ctx, Direction::Request, contexts.idle).await,
                )?;
                held.headers.unwrap_or_default()
            }
            After::Reply(reply) => return Err(Stopped::Reply(i, reply)),
            After::Failed => return Err(Stopped::Failed(i)),
            After::Overflow => return Err(Stopped::TooLarge),
        };
    }
    let mut data = frames(body, trailers.is_some());
    for (i, paused) in paused_headers.into_iter().enumerate() {
        let Some(ctx) = contexts.ids[i] else { continue };
        let f = contexts.filters[i];
        let input = if paused { merge(data) } else { data };
        let halt = |halt| match halt {
            Halt::Reply(reply) => Stopped::Reply(i, reply),
            Halt::Failed => Stopped::Failed(i),
            Halt::Overflow => Stopped::TooLarge,
            Halt::Woken(woken) => match request_woken(i, woken) {
                Err(stopped) => stopped,
                // Only non-resume wakes become a Halt.
                Ok(_) => Stopped::Reset,
            },
        };
        (data, trailers) = body_and_trailers(
            worker,
            f,
            ctx,
            Direction::Request,
            (input, trailers),
            contexts.idle,
        )
        .await
        .map_err(halt)?;
    }
    Ok((headers, concat(data), trailers))
}

fn concat(frames: Vec<(Bytes, bool)>) -> Bytes {
    match frames.len() {
        0 => Bytes::new(),
        1 => frames
            .into_iter()
            .next()
            .map(|(b, _)| b)
            .unwrap_or_default(),
        _ => {
            let mut all = BytesMut::new();
            for (chunk, _) in frames {
                all.extend_from_slice(&chunk);
            }
            all.freeze()
        }
    }
}

/// Why one filter's body-and-trailers pass ended early.
enum Halt {
    /// The filter answered with a local reply in a body or trailers callback.
    Reply(LocalReply),
    /// The filter's VM failed.
    Failed,
    /// Buffering exceeded the limit.
    Overflow,
    /// The filter paused and was woken by something other than a resume.
    Woken(Woken),
}

/// One filter's body calls and trailers callback, in Envoy's order. A pause on the last body
/// call or on the trailers waits for the filter; a pause on an earlier call buffers. Returns
/// the frames and trailers the filter passed on.
async fn body_and_trailers(
    worker: &Rc<Worker>,
    f: usize,
    ctx: u32,
    direction: Direction,
    (input, trailers): (Vec<(Bytes, bool)>, Option<HeaderMap>),
    idle: Duration,
) -> Result<(Vec<(Bytes, bool)>, Option<HeaderMap>), Halt> {
    let resumed = |woken: Woken| match woken {
        Woken::Continue(held) => Ok(held),
        other => Err(Halt::Woken(other)),
    };
    let mut output = Vec::new();
    let mut buffering = false;
    for (chunk, end) in input {
        let result = worker.chain.borrow_mut().filters[f]
            .vm
            .on_body(ctx, direction, &chunk, end);
        match settle(worker, f, ctx, result) {
            After::Continue(b) => {
                buffering = false;
                output.push((Bytes::from(b), end));
            }
            After::Stop if end => {
                let held = resumed(wait(worker, f, ctx, direction, idle).await)?;
                output.push((Bytes::from(held.body.unwrap_or_default()), true));
            }
            After::Stop => buffering = true,
            After::Reply(reply) => return Err(Halt::Reply(reply)),
            After::Failed => return Err(Halt::Failed),
            After::Overflow => return Err(Halt::Overflow),
        }
    }
    let Some(current) = trailers else {
        return Ok((output, None));
    };
    let result = worker.chain.borrow_mut().filters[f]
        .vm
        .on_trailers(ctx, direction, current);
    let (next, held_body) = match settle(worker, f, ctx, result) {
        After::Continue(t) => {
            // Trailers that continue release a body the filter was still buffering.
            let held = if buffering {
                worker.chain.borrow_mut().filters[f]
                    .vm
                    .resume(ctx, direction)
                    .body
            } else {
                None
            };
            (t, held)
        }
        After::Stop => {
            let held = resumed(wait(worker, f, ctx, direction, idle).await)?;
            (held.trailers.unwrap_or_default(), held.body)
        }
        After::Reply(reply) => return Err(Halt::Reply(reply)),
        After::Failed => return Err(Halt::Failed),
        After::Overflow => return Err(Halt::Overflow),
    };
    if let Some(body) = held_body {
        output.push((Bytes::from(body), false));
    }
    Ok((output, Some(next)))
}

/// How the response path ended badly.
enum ResponseStop {
    /// Close the connection without (the rest of) a response.
    Reset,
    /// Replace the response.
    Replace(Response),
}

/// The response path from filter `from` down to the first one (Envoy's encoder order).
async fn response_path(
    worker: &Rc<Worker>,
    contexts: &Contexts,
    from: Option<usize>,
    mut response: Response,
) -> Result<Response, StreamReset> {
    let Some(from) = from else {
        return Ok(response);
    };
    for i in (0..=from).rev() {
        let Some(ctx) = contexts.ids[i] else { continue };
        match response_filter(worker, contexts.filters[i], ctx, response, contexts.idle).await {
            Ok(next) => response = next,
            Err(ResponseStop::Reset) => return Err(StreamReset("a filter reset the response")),
            Err(ResponseStop::Replace(replacement)) => response = replacement,
        }
    }
    Ok(response)
}

fn internal_error(details: &str) -> Response {
    Response::local(&LocalReply {
        status: 500,
        details: details.into(),
        body: b"Internal Server Error".to_vec(),
        headers: Vec::new(),
        grpc_status: None,
    })
}

/// One filter's part of the response path.
async fn response_filter(
    worker: &Rc<Worker>,
    i: usize,
    ctx: u32,
    response: Response,
    idle: Duration,
) -> Result<Response, ResponseStop> {
    let Response {
        headers,
        body,
        trailers,
        details,
    } = response;
    let end_with_headers = body.is_empty() && trailers.is_none();
    let woken = |woken: Woken| match woken {
        Woken::Continue(held) => Ok(held),
        Woken::Reply(reply) => Err(ResponseStop::Replace(Response::local(&reply))),
        Woken::Reset => Err(ResponseStop::Reset),
        Woken::Failed => Err(ResponseStop::Replace(Response::local(&fail_closed_reply()))),
        Woken::IdleTimeout => Err(ResponseStop::Reset),
    };
    let result = worker.chain.borrow_mut().filters[i].vm.on_headers(
        ctx,
        Direction::Response,
        headers,
        end_with_headers,
    );
    let mut paused = false;
    let headers = match settle(worker, i, ctx, result) {
        After::Continue(h) => h,
        After::Stop => {
            paused = true;
            woken(wait(worker, i, ctx, Direction::Response, idle).await)?
                .headers
                .unwrap_or_default()
        }
        // A local reply from the response headers replaces the upstream response and goes on
        // through the filters before this one.
        After::Reply(reply) => return Err(ResponseStop::Replace(Response::local(&reply))),
        After::Failed => return Err(ResponseStop::Replace(Response::local(&fail_closed_reply()))),
        After::Overflow => {
            return Err(ResponseStop::Replace(internal_error(
                "response_payload_too_large",
            )));
        }
    };
    let mut data = frames(body, trailers.is_some());
    if paused {
        data = merge(data);
    }
    // Past the headers, Envoy has already sent them: a local reply or a failure in a body or
    // trailers callback can only close the connection.
    let halt = |halt| match halt {
        Halt::Overflow => ResponseStop::Replace(internal_error("response_payload_too_large")),
        Halt::Reply(_) | Halt::Failed => ResponseStop::Reset,
        Halt::Woken(w) => woken(w).err().unwrap_or(ResponseStop::Reset),
    };
    let (output, trailers) =
        body_and_trailers(worker, i, ctx, Direction::Response, (data, trailers), idle)
            .await
            .map_err(halt)?;
    Ok(Response {
        headers,
        body: concat(output),
        trailers,
        details,
    })
}

/// Envoy's request headers as filters see them: pseudo-headers first, `host` as `:authority`,
/// plus what the connection manager adds before the filter chain.
fn request_map(parts: &http::request::Parts) -> HeaderMap {
    let mut map = HeaderMap::new();
    let authority = parts
        .headers
        .get(http::header::HOST)
        .map(|h| h.as_bytes())
        .or_else(|| parts.uri.authority().map(|a| a.as_str().as_bytes()))
        .unwrap_or_default();
    map.add(b":authority", authority);
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
    map.add(b":scheme", crate::tls::scheme(&parts.extensions));
    for (name, value) in &parts.headers {
        // The connection manager consumes the hop-by-hop headers before the filters run.
        if name != http::header::HOST && !is_connection_header(name) {
            map.add(name.as_str().as_bytes(), value.as_bytes());
        }
    }
    if map.get(b"x-forwarded-proto").is_none() {
        map.add(b"x-forwarded-proto", crate::tls::scheme(&parts.extensions));
    }
    if map.get(b"x-request-id").is_none() {
        map.add(b"x-request-id", request_id().as_bytes());
    }
    map
}

/// Headers about this hop's connection, which Envoy strips before the filter chain.
fn is_connection_header(name: &http::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade"
    )
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

fn protocol_name(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        _ => "HTTP/1.1",
    }
}

/// Serves one request.
pub(crate) async fn handle(
    worker: Rc<Worker>,
    listener: usize,
    request: http::Request<Incoming>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
) -> Result<http::Response<OutBody>, StreamReset> {
    let (parts, body) = request.into_parts();
    let collected = match Limited::new(body, worker.plan.limits.request_buffer_bytes)
        .collect()
        .await
    {
        Ok(collected) => collected,
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return Ok(to_http(Response::local(&status_reply(
                413,
                "request_payload_too_large",
                "Payload Too Large",
            ))));
        }
        Err(_) => return Err(StreamReset("the client went away while sending the body")),
    };
    let trailers = collected.trailers().map(from_http_headers);
    let body = collected.to_bytes();
    let headers = request_map(&parts);
    let info = StreamInfo {
        source: Some(peer),
        destination: local,
        protocol: Some(protocol_name(parts.version).into()),
        start_time: Some(std::time::SystemTime::now()),
        request_body_bytes: body.len() as u64,
        ..crate::tls::stream_info(&parts.extensions)
    };
    let mut contexts = Contexts::open(worker.clone(), listener, info);
    contexts.request = headers.clone();
    let last = contexts.ids.len().checked_sub(1);
    let result = match contexts.skip_failed() {
        Ok(()) => request_path(&worker, &contexts, (headers, body, trailers)).await,
        Err(stopped) => Err(stopped),
    };
    let (response, from) = match result {
        Ok((request_headers, body, trailers)) => {
            contexts.request = request_headers.clone();
            let response = route(&worker, listener, request_headers, body, trailers).await;
            (response, last)
        }
        Err(Stopped::Reply(i, reply)) => (Response::local(&reply), Some(i)),
        Err(Stopped::Failed(i)) => (Response::local(&fail_closed_reply()), i.checked_sub(1)),
        Err(Stopped::Reset) => return Err(StreamReset("a filter reset the request")),
        Err(Stopped::TooLarge) => (
            Response::local(&status_reply(
                413,
                "request_payload_too_large",
                "Payload Too Large",
            )),
            last,
        ),
        Err(Stopped::IdleTimeout(i)) => (
            Response::local(&status_reply(408, "stream_idle_timeout", "stream timeout")),
            Some(i),
        ),
    };
    let response = response_path(&worker, &contexts, from, response).await?;
    contexts.response = response.headers.clone();
    contexts.response_trailers = response.trailers.clone();
    contexts.close();
    Ok(to_http(response))
}

/// Picks the route for the request the filters produced and sends it there; failures become
/// Envoy's local replies, which then run through the response path like any response.
async fn route(
    worker: &Rc<Worker>,
    listener: usize,
    mut headers: HeaderMap,
    body: Bytes,
    trailers: Option<HeaderMap>,
) -> Response {
    let hosts = &worker.plan.listeners[listener].virtual_hosts;
    let Some((_, route)) = crate::routes::select(hosts, &headers) else {
        return Response::local(&status_reply(404, "route_not_found", ""));
    };
    match &route.action {
        RouteAction::DirectResponse { status, body } => Response::local(&LocalReply {
            status: u32::from(*status),
            details: "direct_response".into(),
            body: body.clone(),
            headers: Vec::new(),
            grpc_status: None,
        }),
        RouteAction::Cluster {
            cluster,
            timeout,
            prefix_rewrite,
            host_rewrite,
        } => {
            if let (Some(rewrite), crate::routes::PathMatch::Prefix(prefix)) =
                (prefix_rewrite, &route.matcher.path)
                && let Some(rest) = headers
                    .get_str(":path")
                    .and_then(|p| p.strip_prefix(prefix.as_str()))
            {
                let path = format!("{rewrite}{rest}");
                headers.replace(b":path", path.as_bytes());
            }
            if let Some(host) = host_rewrite {
                headers.replace(b":authority", host.as_bytes());
            }
            let request = OutRequest {
                headers,
                body,
                trailers,
            };
            let stamp = !worker.plan.listeners[listener].suppress_envoy_headers;
            match worker
                .clusters
                .send(cluster, request, *timeout, stamp)
                .await
            {
                Ok(response) => Response {
                    headers: response.headers,
                    body: response.body,
                    trailers: response.trailers,
                    details: None,
                },
                Err(failure) => Response::local(&failure.local_reply()),
            }
        }
    }
}

fn from_http_headers(headers: &http::HeaderMap) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.add(name.as_str().as_bytes(), value.as_bytes());
    }
    map
}

fn to_http_headers(map: &HeaderMap) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    for (name, value) in map.iter() {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name),
            http::HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    headers
}

pub(crate) fn to_http(response: Response) -> http::Response<OutBody> {
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
    let body = Full::new(response.body);
    let body: OutBody = match response.trailers {
        Some(trailers) if !trailers.is_empty() => {
            let trailers = to_http_headers(&trailers);
            body.with_trailers(std::future::ready(Some(Ok(trailers))))
                .boxed()
        }
        _ => body.boxed(),
    };
    builder.body(body).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "a filter produced a response hyper refuses; answering 500");
        let mut fallback = http::Response::new(
            Full::new(Bytes::from_static(b"invalid response from filter chain\n")).boxed(),
        );
        *fallback.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}
