//! One HTTP stream, streamed as Envoy streams it: request headers, each body chunk as it
//! arrives and trailers go through the filters in configured order and on to the upstream as
//! soon as they pass; the response comes back through the filters in reverse and on to the
//! client the same way; then `on_log`, `on_done` and `on_delete` for each filter.
//!
//! A stream is driven by one loop (`Driver`) on its worker: it reads the client's body, the
//! upstream's response and what the filters did from outside their callbacks (resume, local
//! reply, reset — posted to the stream's mailbox), and feeds them to the two directions'
//! pipelines (`pipeline`). Until the response head is known the loop runs inside hyper's
//! service future; a response still streaming after that continues in a task of its own.
//! Both sides are flow controlled: the loop stops reading a side when what it forwards is not
//! being taken, or when a paused filter holds more than the body buffer limit.

mod contexts;
mod messages;
mod pipeline;

use crate::body::{self, BoxError, InBody, Item, OutBody};
use crate::clusters::{Upstream, UpstreamBody, UpstreamFailure};
use crate::dispatch::{Wake, Woke};
use crate::routes::RouteAction;
use crate::worker::Worker;
use bytes::{Bytes, BytesMut};
use contexts::Contexts;
use http_body::Body as _;
use http_body_util::BodyExt;
use messages::{local_headers, status_reply};
use pipeline::{Frame, Halt, Pipeline};
use pwx_host::failure::fail_closed_reply;
use pwx_host::{Direction, HeaderMap, LocalReply, StreamInfo};
use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;
use tokio::time::Instant;

/// The stream was reset: the connection is closed without a response, as Envoy does.
#[derive(Debug, thiserror::Error)]
#[error("stream reset: {0}")]
pub(crate) struct StreamReset(&'static str);

/// How many frames may wait for an upstream or a client before the driver stops reading the
/// other side.
const DEPTH: usize = 8;

/// How many already-available events the driver handles after the response head, hoping the
/// response completes and can be sent whole (no channel, no task).
const EAGER_EVENTS: usize = 16;

/// Serves one request of a listener's connection.
pub(crate) fn handle(
    worker: Rc<Worker>,
    listener: usize,
    request: http::Request<hyper::body::Incoming>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
) -> impl Future<Output = Result<http::Response<OutBody>, StreamReset>> {
    serve(
        worker,
        listener,
        request.map(InBody::Hyper),
        Some(peer),
        local,
        None,
    )
}

/// Serves one request: from a listener's connection, or handed over by the embedded layer
/// (`inner`: the layer's inner service, the upstream of every such request).
pub(crate) async fn serve(
    worker: Rc<Worker>,
    listener: usize,
    request: http::Request<InBody>,
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
    inner: Option<crate::layer::InnerUpstream>,
) -> Result<http::Response<OutBody>, StreamReset> {
    let (parts, incoming) = request.into_parts();
    let headers = messages::request_map(&parts);
    let mut info = StreamInfo {
        source: peer,
        destination: local,
        connection_id: parts
            .extensions
            .get::<crate::worker::ConnectionId>()
            .map(|id| id.0),
        protocol: Some(messages::protocol_name(parts.version).into()),
        start_time: Some(std::time::SystemTime::now()),
        // Envoy counts attempts from 0 until the router sends the request upstream.
        upstream_request_attempt_count: Some(0),
        filter_chain_name: Some(String::new()),
        listener_direction: Some(0),
        ..crate::tls::stream_info(&parts.extensions)
    };
    // Envoy picks the route before the filters run (`xds.*` are readable from the first
    // callback); pwx routes by the headers the filters leave and refreshes these then.
    messages::route_facts(
        &mut info,
        &worker.plan.listeners[listener].virtual_hosts,
        &headers,
    );
    let mut driver = Driver::new(worker, listener, info, parts.version, incoming);
    driver.inner = inner;
    driver.start(headers);
    driver.run(Until::Head).await;
    if let Some(reason) = driver.reset {
        return Err(StreamReset(reason));
    }
    let response = driver.response_head();
    if !driver.finished() {
        tokio::task::spawn_local(async move {
            driver.run(Until::End).await;
        });
    }
    Ok(response)
}

/// How far `Driver::run` goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Until {
    /// Until the response head is known (hyper needs it to answer).
    Head,
    /// Until the stream is over.
    End,
}

/// The upstream side of the stream.
enum UpstreamState {
    /// Not sent (yet, or ever: local reply, direct response).
    Idle,
    /// Sent; waiting for the response headers.
    Waiting(Pin<Box<dyn Future<Output = Result<Upstream, UpstreamFailure>>>>),
    /// Reading the response body.
    Reading { body: InBody, http2: bool },
    /// Over (the response ended, or was replaced by a local reply).
    Done,
}

/// The client side of the response.
enum ClientState {
    /// No response headers yet.
    Waiting,
    /// The headers (and what followed them so far) are ready, not yet handed to hyper.
    Ready {
        headers: HeaderMap,
        items: Vec<Item>,
    },
    /// Handed to hyper; the rest streams through `to_client`.
    Streaming,
}

/// Something the driver reacts to.
enum Event {
    Woke(Woke),
    RequestFrame(Option<Result<http_body::Frame<Bytes>, BoxError>>),
    UpstreamHead(Result<Upstream, UpstreamFailure>),
    UpstreamFrame(Option<Result<http_body::Frame<Bytes>, BoxError>>),
    /// An item went to the upstream (`false`: the upstream stopped taking the body).
    SentUpstream(bool),
    /// An item went to the client (`false`: the client went away).
    SentClient(bool),
    ClientGone,
    RouteTimeout,
    IdleCheck,
}

struct Driver {
    worker: Rc<Worker>,
    listener: usize,
    contexts: Contexts,
    request: Pipeline,
    response: Pipeline,
    inbox: tokio::sync::mpsc::UnboundedReceiver<Woke>,
    /// The client's request body, while it is being read.
    incoming: Option<InBody>,
    /// The embedded layer's inner service: where this request goes instead of a cluster.
    inner: Option<crate::layer::InnerUpstream>,
    downstream: http::Version,
    /// The client sent its whole request.
    request_complete: bool,
    upstream: UpstreamState,
    upstream_tx: Option<body::Sender>,
    to_upstream: VecDeque<Item>,
    client: ClientState,
    client_tx: Option<body::Sender>,
    to_client: VecDeque<Item>,
    /// Response headers (from the upstream or a local reply) entered the response path.
    response_started: bool,
    /// The end of the response was handed on (to `ClientState::Ready` or `to_client`).
    response_complete: bool,
    /// Local replies so far: a frame of a replaced response must not follow the reply.
    replies: u32,
    /// Why the stream must end without (the rest of) a response.
    reset: Option<&'static str>,
    /// What is left of the `content-length` the request (to the upstream) and the response
    /// (to the client) declared: a filter that grew the body without fixing the header gets
    /// its body cut there, as the peer of Envoy reads it.
    upstream_room: Option<u64>,
    client_room: Option<u64>,
    /// Close the client connection after the response (HTTP/1).
    close_connection: bool,
    /// The chain position of a filter whose VM had failed and whose policy fails streams.
    failed: Option<usize>,
    route_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    idle: Duration,
    idle_timer: Pin<Box<tokio::time::Sleep>>,
    last_activity: Instant,
}

impl Driver {
    fn new(
        worker: Rc<Worker>,
        listener: usize,
        info: StreamInfo,
        downstream: http::Version,
        incoming: InBody,
    ) -> Driver {
        let (mailbox, inbox) = tokio::sync::mpsc::unbounded_channel();
        let mut contexts = Contexts::open(worker.clone(), listener, info, mailbox);
        // Filters whose VM failed before this stream get their failure policy applied first:
        // the pipelines see the contexts that remain.
        let failed = contexts.skip_failed().err();
        let request = Pipeline::new(Direction::Request, &contexts.filters, &contexts.ids);
        let response = Pipeline::new(Direction::Response, &contexts.filters, &contexts.ids);
        let idle = worker.plan.listeners[listener].stream_idle_timeout;
        let now = Instant::now();
        Driver {
            worker,
            listener,
            contexts,
            request,
            response,
            inbox,
            incoming: Some(incoming),
            inner: None,
            downstream,
            request_complete: false,
            upstream: UpstreamState::Idle,
            upstream_tx: None,
            to_upstream: VecDeque::new(),
            client: ClientState::Waiting,
            client_tx: None,
            to_client: VecDeque::new(),
            response_started: false,
            response_complete: false,
            replies: 0,
            reset: None,
            failed,
            close_connection: false,
            upstream_room: None,
            client_room: None,
            route_deadline: None,
            idle,
            idle_timer: Box::pin(tokio::time::sleep_until(now + idle)),
            last_activity: now,
        }
    }

    /// Sends the request headers into the chain (after the filters whose VM failed earlier
    /// had their failure policy applied).
    fn start(&mut self, headers: HeaderMap) {
        self.contexts.request = headers.clone();
        let end = self.incoming.as_ref().is_none_or(|b| b.is_end_stream());
        if end {
            self.incoming = None;
            self.request_complete = true;
        }
        if let Some(position) = self.failed {
            // FAIL_CLOSED: the failed filter's own response path is skipped.
            let from = self.response.index_of(position.checked_sub(1));
            self.local_reply(from, fail_closed_reply());
            return;
        }
        self.feed_request(Frame::Headers(headers, end));
    }

    /// The loop: waits for the next event and handles it, until `until`.
    async fn run(&mut self, until: Until) {
        loop {
            if self.reset.is_some() || self.finished() {
                return;
            }
            if until == Until::Head && matches!(self.client, ClientState::Ready { .. }) {
                // Handle what is already there: a response that completes now goes out whole.
                for _ in 0..EAGER_EVENTS {
                    if self.response_complete || self.reset.is_some() {
                        break;
                    }
                    let ready = tokio::select! {
                        biased;
                        event = self.next_event() => Some(event),
                        () = std::future::ready(()) => None,
                    };
                    match ready {
                        Some(event) => self.on_event(event),
                        None => break,
                    }
                }
                return;
            }
            let event = self.next_event().await;
            self.on_event(event);
        }
    }

    /// The response is complete and handed on, or the stream is over.
    fn finished(&self) -> bool {
        self.response_complete
            && self.to_client.is_empty()
            && !matches!(self.client, ClientState::Waiting)
    }

    async fn next_event(&mut self) -> Event {
        let limits = &self.worker.plan.limits;
        let read_request = self.incoming.is_some()
            && self.to_upstream.len() < DEPTH
            && self.request.queued_bytes() < limits.request_buffer_bytes;
        let read_upstream = self.to_client.len() < DEPTH
            && self.response.queued_bytes() < limits.response_buffer_bytes;
        let streaming = self.client_tx.is_some();
        tokio::select! {
            biased;
            Some(woke) = self.inbox.recv() => Event::Woke(woke),
            event = upstream_event(&mut self.upstream, read_upstream) => event,
            frame = next_frame(&mut self.incoming), if read_request => Event::RequestFrame(frame),
            sent = send_next(&self.upstream_tx, &mut self.to_upstream),
                if !self.to_upstream.is_empty() => Event::SentUpstream(sent),
            sent = send_next(&self.client_tx, &mut self.to_client),
                if !self.to_client.is_empty() => Event::SentClient(sent),
            () = closed(&self.client_tx), if streaming => Event::ClientGone,
            () = deadline(&mut self.route_deadline) => Event::RouteTimeout,
            () = self.idle_timer.as_mut() => Event::IdleCheck,
        }
    }

    fn on_event(&mut self, event: Event) {
        if !matches!(event, Event::IdleCheck) {
            self.last_activity = Instant::now();
        }
        match event {
            Event::Woke(woke) => self.on_woke(woke),
            Event::RequestFrame(frame) => self.on_request_frame(frame),
            Event::UpstreamHead(result) => self.on_upstream_head(result),
            Event::UpstreamFrame(frame) => self.on_upstream_frame(frame),
            Event::SentUpstream(true) | Event::SentClient(true) => {}
            Event::SentUpstream(false) => {
                // The upstream stopped reading the request (it answered early, or failed).
                self.upstream_tx = None;
                self.to_upstream.clear();
            }
            Event::SentClient(false) | Event::ClientGone => {
                self.reset = Some("the client went away");
            }
            Event::RouteTimeout => {
                self.route_deadline = None;
                match self.upstream {
                    UpstreamState::Waiting(_) => {
                        self.upstream = UpstreamState::Done;
                        self.local_reply(0, UpstreamFailure::Timeout.local_reply());
                    }
                    UpstreamState::Reading { .. } => {
                        self.reset = Some("the upstream response timed out");
                    }
                    UpstreamState::Idle | UpstreamState::Done => {}
                }
            }
            Event::IdleCheck => self.on_idle_check(),
        }
    }

    fn on_idle_check(&mut self) {
        let due = self.last_activity + self.idle;
        if due > Instant::now() {
            self.idle_timer.as_mut().reset(due);
            return;
        }
        // Quiet for the whole idle timeout: Envoy answers 408 before the response started,
        // and resets the stream after.
        self.idle_timer
            .as_mut()
            .reset(Instant::now() + Duration::from_secs(86_400));
        let from = self.response.index_of(self.request.waiting());
        self.local_reply(
            from,
            status_reply(408, "stream_idle_timeout", "stream timeout"),
        );
    }

    fn on_request_frame(&mut self, frame: Option<Result<http_body::Frame<Bytes>, BoxError>>) {
        let frame = match frame {
            None => {
                self.incoming = None;
                self.request_complete = true;
                Frame::Data(Bytes::new(), true)
            }
            Some(Err(error)) => {
                tracing::debug!(%error, "reading the request body failed");
                self.reset = Some("the client's request failed");
                return;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    self.contexts.request_body_bytes += data.len() as u64;
                    // HTTP/2 ends a stream with its last DATA frame; HTTP/1 ends after it, and
                    // Envoy then calls the filters once more with an empty end-of-stream chunk.
                    let end = self.downstream == http::Version::HTTP_2
                        && self.incoming.as_ref().is_some_and(|b| b.is_end_stream());
                    if end {
                        self.incoming = None;
                        self.request_complete = true;
                    }
                    Frame::Data(data, end)
                }
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => {
                        self.incoming = None;
                        self.request_complete = true;
                        Frame::Trailers(messages::from_http_headers(&trailers))
                    }
                    Err(_) => return,
                },
            },
        };
        self.feed_request(frame);
    }

    fn feed_request(&mut self, frame: Frame) {
        let mut out = Vec::new();
        let result = self.request.run(&self.worker, 0, frame, &mut out);
        self.after_request(out, result);
    }

    fn after_request(&mut self, out: Vec<Frame>, result: Result<(), Halt>) {
        for frame in out {
            self.request_emitted(frame);
        }
        if let Err(halt) = result {
            match halt {
                Halt::Reply(position, reply) => {
                    let from = self.response.index_of(Some(position));
                    self.local_reply(from, reply);
                }
                Halt::Failed(position) => {
                    let from = self.response.index_of(position.checked_sub(1));
                    self.local_reply(from, fail_closed_reply());
                }
                Halt::Reset => self.reset = Some("a filter reset the stream"),
                Halt::Overflow(position) => {
                    let from = self.response.index_of(Some(position));
                    self.local_reply(
                        from,
                        status_reply(413, "request_payload_too_large", "Payload Too Large"),
                    );
                }
            }
        }
    }

    /// A request frame passed every filter.
    fn request_emitted(&mut self, frame: Frame) {
        match frame {
            Frame::Headers(headers, end) => self.route(headers, end),
            Frame::Data(data, end) => {
                if self.upstream_tx.is_none() {
                    return;
                }
                let data = within(&mut self.upstream_room, data);
                if !data.is_empty() {
                    self.to_upstream
                        .push_back(Item::Frame(http_body::Frame::data(data)));
                }
                if end {
                    self.to_upstream.push_back(Item::End);
                }
            }
            Frame::Trailers(trailers) => {
                if self.upstream_tx.is_none() {
                    return;
                }
                let trailers = crate::clusters::to_http_headers(&trailers);
                self.to_upstream
                    .push_back(Item::Frame(http_body::Frame::trailers(trailers)));
                self.to_upstream.push_back(Item::End);
            }
        }
    }

    /// Picks the route for the request headers the filters produced and starts the upstream
    /// request (or answers directly).
    fn route(&mut self, mut headers: HeaderMap, end: bool) {
        self.contexts.request = headers.clone();
        let worker = self.worker.clone();
        let listener = &worker.plan.listeners[self.listener];
        let Some((host, route)) = crate::routes::select(&listener.virtual_hosts, &headers) else {
            self.local_reply(0, status_reply(404, "route_not_found", ""));
            return;
        };
        self.contexts.route_chosen(host, route);
        match &route.action {
            RouteAction::DirectResponse { status, body } => {
                let reply = LocalReply {
                    status: u32::from(*status),
                    details: "direct_response".into(),
                    body: body.clone(),
                    headers: Vec::new(),
                    grpc_status: None,
                };
                self.local_reply(0, reply);
            }
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
                let body = if end {
                    body::empty()
                } else {
                    let (sender, body) = body::channel();
                    self.upstream_tx = Some(sender);
                    body.boxed()
                };
                self.upstream_room = declared_length(&headers);
                let stamp = !listener.suppress_envoy_headers;
                self.contexts.upstream_started = Some(Instant::now());
                self.upstream = match self.inner.take() {
                    // An embedded stream's only route leads to the layer's inner service.
                    Some(inner) => {
                        UpstreamState::Waiting(Box::pin(inner.open(headers, body, stamp)))
                    }
                    None => {
                        let cluster = cluster.clone();
                        let worker = self.worker.clone();
                        UpstreamState::Waiting(Box::pin(async move {
                            worker.clusters.open(&cluster, headers, body, stamp).await
                        }))
                    }
                };
                if let Some(timeout) = timeout {
                    self.route_deadline = Some(Box::pin(tokio::time::sleep(*timeout)));
                }
            }
        }
    }

    fn on_upstream_head(&mut self, result: Result<Upstream, UpstreamFailure>) {
        let upstream = match result {
            Ok(upstream) => {
                let addresses = upstream.addresses;
                self.contexts.update_info(|info| {
                    info.response_code_details = Some("via_upstream".into());
                    info.upstream_request_attempt_count = Some(1);
                    info.upstream_transport_failure_reason = Some(String::new());
                    if let Some((remote, local)) = addresses {
                        info.upstream_address = Some(remote);
                        info.upstream_local_address = Some(local);
                    }
                });
                upstream
            }
            Err(failure) => {
                self.upstream = UpstreamState::Done;
                self.upstream_tx = None;
                self.to_upstream.clear();
                self.route_deadline = None;
                self.local_reply(0, failure.local_reply());
                return;
            }
        };
        match upstream.body {
            UpstreamBody::Stream { body, http2 } => {
                let end = body.is_end_stream();
                self.upstream = if end {
                    UpstreamState::Done
                } else {
                    UpstreamState::Reading { body, http2 }
                };
                if end {
                    self.route_deadline = None;
                    self.contexts.upstream_ended = Some(Instant::now());
                }
                self.response_started = true;
                self.feed_response(0, Frame::Headers(upstream.headers, end));
            }
            UpstreamBody::Whole(body) => {
                // A built-in upstream answers as an HTTP/1.1 content-length response arrives.
                self.upstream = UpstreamState::Done;
                self.route_deadline = None;
                self.contexts.upstream_ended = Some(Instant::now());
                self.response_started = true;
                let replies = self.replies;
                self.feed_response(0, Frame::Headers(upstream.headers, false));
                for frame in [Frame::Data(body, false), Frame::Data(Bytes::new(), true)] {
                    if self.replies != replies || self.reset.is_some() {
                        break;
                    }
                    self.feed_response(0, frame);
                }
            }
        }
    }

    fn on_upstream_frame(&mut self, frame: Option<Result<http_body::Frame<Bytes>, BoxError>>) {
        let UpstreamState::Reading { body, http2 } = &self.upstream else {
            return;
        };
        let frame = match frame {
            None => {
                self.upstream = UpstreamState::Done;
                self.route_deadline = None;
                self.contexts.upstream_ended = Some(Instant::now());
                Frame::Data(Bytes::new(), true)
            }
            Some(Err(error)) => {
                tracing::debug!(%error, "reading the upstream response failed");
                self.reset = Some("the upstream reset the response");
                return;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    let end = *http2 && body.is_end_stream();
                    if end {
                        self.upstream = UpstreamState::Done;
                        self.route_deadline = None;
                        self.contexts.upstream_ended = Some(Instant::now());
                    }
                    Frame::Data(data, end)
                }
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => {
                        self.upstream = UpstreamState::Done;
                        self.route_deadline = None;
                        self.contexts.upstream_ended = Some(Instant::now());
                        Frame::Trailers(messages::from_http_headers(&trailers))
                    }
                    Err(_) => return,
                },
            },
        };
        self.feed_response(0, frame);
    }

    fn feed_response(&mut self, from: usize, frame: Frame) {
        let mut out = Vec::new();
        let result = self.response.run(&self.worker, from, frame, &mut out);
        self.after_response(out, result);
    }

    fn after_response(&mut self, out: Vec<Frame>, result: Result<(), Halt>) {
        for frame in out {
            self.response_emitted(frame);
        }
        if let Err(halt) = result {
            // What a filter does to a response it is handed replaces it for the filters
            // before it (in response order, those after it).
            let (position, reply) = match halt {
                Halt::Reset => {
                    self.reset = Some("a filter reset the stream");
                    return;
                }
                Halt::Reply(position, reply) => (position, reply),
                Halt::Failed(position) => (position, fail_closed_reply()),
                Halt::Overflow(position) => (
                    position,
                    status_reply(500, "response_payload_too_large", "Internal Server Error"),
                ),
            };
            let from = self.response.index_after(position);
            self.local_reply(from, reply);
        }
    }

    /// A response frame passed every filter: it goes to the client.
    fn response_emitted(&mut self, frame: Frame) {
        let item = match frame {
            Frame::Headers(headers, end) => {
                if !messages::valid_status(&headers) {
                    // Envoy's codec refuses to send a response without a valid `:status`:
                    // the client gets its 502 instead (no filter sees it).
                    self.upstream = UpstreamState::Done;
                    let reply = status_reply(
                        502,
                        "missing_required_header",
                        "missing required header: :status",
                    );
                    let headers = local_headers(&reply);
                    self.contexts.response = headers.clone();
                    let data = http_body::Frame::data(Bytes::from(reply.body));
                    self.response_complete = true;
                    self.client = ClientState::Ready {
                        headers,
                        items: vec![Item::Frame(data), Item::End],
                    };
                    return;
                }
                // What on_log sees is the response as the client gets it: the framing is
                // this hop's own.
                let mut sent = headers.clone();
                sent.remove(b"transfer-encoding");
                self.contexts.response = sent;
                self.client_room = declared_length(&headers);
                let items = if end { vec![Item::End] } else { Vec::new() };
                self.response_complete = end;
                self.client = ClientState::Ready { headers, items };
                return;
            }
            Frame::Data(data, end) => {
                let data = within(&mut self.client_room, data);
                self.contexts.response_body_bytes += data.len() as u64;
                if !data.is_empty() {
                    self.send_to_client(Item::Frame(http_body::Frame::data(data)));
                }
                if !end {
                    return;
                }
                Item::End
            }
            Frame::Trailers(trailers) => {
                self.contexts.response_trailers = Some(trailers.clone());
                let trailers = crate::clusters::to_http_headers(&trailers);
                self.send_to_client(Item::Frame(http_body::Frame::trailers(trailers)));
                Item::End
            }
        };
        self.response_complete = true;
        self.send_to_client(item);
    }

    fn send_to_client(&mut self, item: Item) {
        match &mut self.client {
            ClientState::Ready { items, .. } => items.push(item),
            ClientState::Streaming => self.to_client.push_back(item),
            ClientState::Waiting => {
                tracing::debug!("response body before its headers; dropped");
            }
        }
    }

    /// Answers the stream with `reply`, running it through the response filters from
    /// processing index `from`. Once response headers went to the client, a reply can only
    /// reset the stream, as in Envoy.
    fn local_reply(&mut self, from: usize, reply: LocalReply) {
        if !matches!(self.client, ClientState::Waiting) {
            self.reset = Some("a local reply after the response started");
            return;
        }
        // The upstream exchange, if any, is abandoned; so is the rest of the request.
        self.upstream = UpstreamState::Done;
        self.upstream_tx = None;
        self.to_upstream.clear();
        self.route_deadline = None;
        if let Some(incoming) = self.incoming.take() {
            // The rest of the request is read and dropped: closing a socket with unread data
            // would reset it and could destroy the reply on its way to the client.
            tokio::task::spawn_local(drain(incoming));
        }
        let details = reply.details.clone();
        self.contexts
            .update_info(|info| info.response_code_details = Some(details.clone()));
        self.response.reopen(&self.worker, from);
        self.response_started = true;
        self.replies += 1;
        let replies = self.replies;
        let grpc = self
            .contexts
            .request
            .get(b"content-type")
            .is_some_and(|t| t.starts_with(b"application/grpc"));
        let (headers, body) = if grpc {
            (messages::grpc_local_headers(&reply), Bytes::new())
        } else {
            (local_headers(&reply), Bytes::from(reply.body))
        };
        if reply.status == 400 && !grpc {
            // Envoy's HTTP/1 codec closes the connection after its own 400s.
            self.close_connection = true;
        }
        let end = body.is_empty();
        self.feed_response(from, Frame::Headers(headers, end));
        // Unless a filter replaced this reply in turn (or reset the stream), its body follows
        // (waiting in front of a filter that holds the headers, if one does).
        if !end && self.replies == replies && self.reset.is_none() {
            self.feed_response(from, Frame::Data(body, true));
        }
    }

    fn on_woke(&mut self, woke: Woke) {
        let Some(position) = self.contexts.position(woke.filter, woke.context) else {
            return;
        };
        // Whether the filter acts on the response (one was handed to it) or on the request.
        let on_response = self.response_started;
        match woke.wake {
            Wake::Continue(held) => {
                let mut out = Vec::new();
                match woke.direction {
                    Some(Direction::Request) => {
                        let result = self.request.resume(
                            &self.worker,
                            woke.filter,
                            woke.context,
                            held,
                            &mut out,
                        );
                        self.after_request(out, result);
                    }
                    Some(Direction::Response) => {
                        let result = self.response.resume(
                            &self.worker,
                            woke.filter,
                            woke.context,
                            held,
                            &mut out,
                        );
                        self.after_response(out, result);
                    }
                    None => {}
                }
            }
            Wake::LocalReply(reply) => {
                let from = if on_response {
                    self.response.index_after(position)
                } else {
                    self.response.index_of(Some(position))
                };
                self.local_reply(from, reply);
            }
            Wake::Reset => self.reset = Some("a filter reset the stream"),
            Wake::Failed => {
                let from = if on_response {
                    self.response.index_after(position)
                } else {
                    self.response.index_of(position.checked_sub(1))
                };
                self.local_reply(from, fail_closed_reply());
            }
        }
    }

    /// Hands the response head to hyper: whole when the response is complete, otherwise with
    /// a body the rest streams into.
    fn response_head(&mut self) -> http::Response<OutBody> {
        let (headers, items) = match std::mem::replace(&mut self.client, ClientState::Streaming) {
            ClientState::Ready { headers, items } => (headers, items),
            ClientState::Waiting | ClientState::Streaming => {
                // `run(Until::Head)` returns without a head only on reset, handled before.
                let reply = status_reply(500, "internal_error", "");
                (local_headers(&reply), vec![Item::End])
            }
        };
        // Envoy closes an HTTP/1 connection when it answers before the request ended.
        let close = (!self.request_complete || self.close_connection)
            && self.downstream != http::Version::HTTP_2;
        let body = if self.response_complete {
            // Without a declared length HTTP/1.1 chunks the body, however it was produced.
            whole(items, headers.get(b"content-length").is_none())
        } else {
            let (sender, body) = body::channel();
            self.client_tx = Some(sender);
            self.to_client.extend(items);
            body.boxed()
        };
        if self.response_complete {
            self.incoming = None;
        }
        messages::response_head(&headers, body, close)
    }
}

/// The `content-length` a message declares.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get_str("content-length")?.trim().parse().ok()
}

/// `data` cut to the room left under a declared length.
fn within(room: &mut Option<u64>, data: Bytes) -> Bytes {
    let Some(left) = room else {
        return data;
    };
    let keep = data.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
    *left -= keep as u64;
    if keep < data.len() {
        tracing::debug!(
            dropped = data.len() - keep,
            "body longer than its content-length; the excess is not sent"
        );
    }
    data.slice(..keep)
}

/// A complete response body from its items; `chunked` hides its size from hyper, which
/// would otherwise declare it.
fn whole(items: Vec<Item>, chunked: bool) -> OutBody {
    let mut data = BytesMut::new();
    let mut trailers = None;
    for item in items {
        if let Item::Frame(frame) = item {
            match frame.into_data() {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(frame) => trailers = frame.into_trailers().ok(),
            }
        }
    }
    match trailers {
        Some(trailers) => body::infallible(
            http_body_util::Full::new(data.freeze())
                .with_trailers(std::future::ready(Some(Ok(trailers)))),
        ),
        None if data.is_empty() => body::empty(),
        None if chunked => body::unsized_full(data.freeze()),
        None => body::full(data.freeze()),
    }
}

/// How long the rest of an answered request is read before the connection is closed anyway.
const DRAIN_FOR: Duration = Duration::from_secs(2);

/// Reads and drops the rest of a request body that will not be forwarded.
async fn drain(mut incoming: InBody) {
    let _ = tokio::time::timeout(DRAIN_FOR, async {
        while let Some(Ok(_)) = incoming.frame().await {}
    })
    .await;
}

async fn upstream_event(upstream: &mut UpstreamState, read_body: bool) -> Event {
    match upstream {
        UpstreamState::Waiting(response) => Event::UpstreamHead(response.as_mut().await),
        UpstreamState::Reading { body, .. } if read_body => {
            Event::UpstreamFrame(body.frame().await)
        }
        _ => std::future::pending().await,
    }
}

async fn next_frame(
    body: &mut Option<InBody>,
) -> Option<Result<http_body::Frame<Bytes>, BoxError>> {
    match body {
        Some(body) => body.frame().await,
        None => std::future::pending().await,
    }
}

/// Moves the first queued item into `sender`'s body once it has room; `false` when the body's
/// reader is gone.
async fn send_next(sender: &Option<body::Sender>, queue: &mut VecDeque<Item>) -> bool {
    let Some(sender) = sender else {
        return std::future::pending().await;
    };
    match sender.reserve().await {
        Ok(permit) => {
            if let Some(item) = queue.pop_front() {
                permit.send(item);
            }
            true
        }
        Err(_) => false,
    }
}

async fn closed(sender: &Option<body::Sender>) {
    match sender {
        Some(sender) => sender.closed().await,
        None => std::future::pending().await,
    }
}

async fn deadline(timer: &mut Option<Pin<Box<tokio::time::Sleep>>>) {
    match timer {
        Some(timer) => timer.as_mut().await,
        None => std::future::pending().await,
    }
}
