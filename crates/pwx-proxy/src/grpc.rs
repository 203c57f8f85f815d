//! The client side of the filters' gRPC callouts, as Envoy's gRPC client behaves: an h2c
//! `POST /<service>/<method>` to a cluster, length-prefixed messages both ways (a stream's
//! request body is fed by `proxy_grpc_send` through a channel), and every outcome turned into
//! the events the module receives: initial metadata, messages, trailing metadata, close with a
//! status. Transport failures become what Envoy's router answers a gRPC request with (a
//! trailers-only reply, `UNAVAILABLE`), status messages carry Envoy's response-code details in
//! braces, and a unary call reports only its message or its failure.

use crate::body::OutBody;
use crate::clusters::{ClusterSet, UpstreamFailure, connect_reason};
use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use pwx_abi::GrpcStatus;
use pwx_abi::grpc::{http_to_grpc_status, parse_grpc_status};
use pwx_host::{GrpcCalloutRequest, GrpcEvent, HeaderMap};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Connects every request of a client to one endpoint, whatever its URI names: gRPC requests
/// carry the service's authority (the cluster name, or the `GrpcService`'s `authority`) in
/// their URI, as `:authority`, while the connection goes to the endpoint.
#[derive(Clone)]
pub(crate) struct EndpointConnector {
    inner: HttpConnector,
    endpoint: http::Uri,
}

impl EndpointConnector {
    pub(crate) fn new(inner: HttpConnector, endpoint: &str) -> Self {
        // An endpoint that is not a valid authority fails each connection attempt instead.
        let endpoint = format!("http://{endpoint}")
            .parse()
            .unwrap_or_else(|_| http::Uri::from_static("http://invalid.endpoint.invalid:1"));
        EndpointConnector { inner, endpoint }
    }
}

type ConnectFuture = Pin<
    Box<
        dyn std::future::Future<
                Output = Result<
                    <HttpConnector as tower_service::Service<http::Uri>>::Response,
                    BoxError,
                >,
            > + Send,
    >,
>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<http::Uri> for EndpointConnector {
    type Response = <HttpConnector as tower_service::Service<http::Uri>>::Response;
    type Error = BoxError;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, _authority: http::Uri) -> ConnectFuture {
        let connecting = self.inner.call(self.endpoint.clone());
        Box::pin(async move { connecting.await.map_err(Into::into) })
    }
}

/// Frames one message: a zero compression flag, the big-endian length, the bytes.
pub(crate) fn frame(message: &[u8]) -> Bytes {
    let mut framed = BytesMut::with_capacity(message.len() + 5);
    framed.extend_from_slice(&[0]);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    framed.freeze()
}

/// Reassembles length-prefixed messages from response data, however it is split.
#[derive(Default)]
pub(crate) struct Deframer {
    buffer: BytesMut,
}

/// A response frame that Envoy's decoder refuses (compressed without negotiation).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadFrame;

impl Deframer {
    /// Adds data; returns the messages it completes.
    pub(crate) fn push(&mut self, data: &[u8]) -> Result<Vec<Vec<u8>>, BadFrame> {
        self.buffer.extend_from_slice(data);
        let mut messages = Vec::new();
        while self.buffer.len() >= 5 {
            let flags = self.buffer[0];
            let len = u32::from_be_bytes([
                self.buffer[1],
                self.buffer[2],
                self.buffer[3],
                self.buffer[4],
            ]) as usize;
            if self.buffer.len() < 5 + len {
                break;
            }
            if flags != 0 && len > 0 {
                return Err(BadFrame);
            }
            self.buffer.advance(5);
            messages.push(self.buffer.split_to(len).to_vec());
        }
        Ok(messages)
    }
}

/// A stream's request body: each item is one framed message from `proxy_grpc_send`; the body
/// ends (the stream is half-closed) when the sender is dropped.
pub(crate) struct ChannelBody {
    pub(crate) messages: tokio::sync::mpsc::UnboundedReceiver<Bytes>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.messages
            .poll_recv(cx)
            .map(|message| message.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// Envoy's response-code details for a response that came from the upstream.
const VIA_UPSTREAM: &str = "via_upstream";

/// Envoy's gRPC client appends the stream's response-code details to the status message.
fn with_details(message: &[u8], details: &str) -> Vec<u8> {
    match (message.is_empty(), details.is_empty()) {
        (true, _) => details.as_bytes().to_vec(),
        (false, true) => message.to_vec(),
        (false, false) => [message, b"{", details.as_bytes(), b"}"].concat(),
    }
}

/// Receives the events of one callout; `false` stops the exchange (the module is gone).
pub(crate) type Deliver<'a> = dyn FnMut(GrpcEvent) -> bool + 'a;

/// A stream's events; a unary call keeps only the last message and reports it, or the failure,
/// when the call ends (Envoy's unary client never reports metadata).
struct Events<'a, 'b> {
    deliver: &'a mut Deliver<'b>,
    unary: bool,
    last_message: Option<Vec<u8>>,
}

impl Events<'_, '_> {
    fn emit(&mut self, event: GrpcEvent) -> bool {
        if !self.unary {
            return (self.deliver)(event);
        }
        match event {
            GrpcEvent::Message(message) => {
                self.last_message = Some(message);
                true
            }
            GrpcEvent::Close { status: 0, .. } => {
                let event = match self.last_message.take() {
                    Some(message) => GrpcEvent::Message(message),
                    // OK without a message: Envoy reports INTERNAL.
                    None => GrpcEvent::Close {
                        status: GrpcStatus::Internal as u32,
                        message: Vec::new(),
                    },
                };
                (self.deliver)(event)
            }
            close @ GrpcEvent::Close { .. } => (self.deliver)(close),
            GrpcEvent::InitialMetadata(_) | GrpcEvent::TrailingMetadata(_) => true,
        }
    }

    /// A response that ends in its headers: empty initial metadata, the headers as trailing
    /// metadata, the close they carry.
    fn trailers_only(&mut self, headers: HeaderMap, details: &str) {
        let status = headers
            .get(b"grpc-status")
            .map_or(GrpcStatus::Unknown as u32, parse_grpc_status);
        let message = with_details(headers.get(b"grpc-message").unwrap_or(b""), details);
        let _ = self.emit(GrpcEvent::InitialMetadata(HeaderMap::new()))
            && self.emit(GrpcEvent::TrailingMetadata(headers))
            && self.emit(GrpcEvent::Close { status, message });
    }

    /// Envoy's `streamError`: empty trailing metadata, then the close.
    fn stream_error(&mut self, status: u32, details: &str) {
        let _ = self.emit(GrpcEvent::TrailingMetadata(HeaderMap::new()))
            && self.emit(GrpcEvent::Close {
                status,
                message: with_details(b"", details),
            });
    }

    /// What Envoy's router answers a gRPC request it could not forward with: a trailers-only
    /// reply with the HTTP status mapped to a gRPC status and the reply body as `grpc-message`.
    fn local_reply(&mut self, failure: &UpstreamFailure) {
        let (http_status, body, details) = router_reply(failure);
        let status = http_to_grpc_status(http_status);
        let mut headers = HeaderMap::new();
        headers.add(b":status", b"200");
        headers.add(b"content-type", b"application/grpc");
        headers.add(b"grpc-status", status.to_string().as_bytes());
        headers.add(b"grpc-message", body.as_bytes());
        self.trailers_only(headers, &details);
    }
}

/// The router's reply to a request it could not forward: HTTP status, body, response-code
/// details, worded as Envoy 1.40 words them for its async (callout) streams.
fn router_reply(failure: &UpstreamFailure) -> (u16, String, String) {
    const BEFORE_HEADERS: &str =
        "upstream connect error or disconnect/reset before headers. reset reason:";
    match failure {
        UpstreamFailure::Connect(reason) => (
            503,
            format!("{BEFORE_HEADERS} remote connection failure"),
            format!(
                "upstream_reset_before_response_started{{remote_connection_failure|{}}}",
                reason.replace(' ', "_")
            ),
        ),
        UpstreamFailure::Reset(_) => (
            503,
            format!("{BEFORE_HEADERS} connection termination"),
            "upstream_reset_before_response_started{connection_termination}".to_string(),
        ),
        UpstreamFailure::Timeout => (
            504,
            "upstream request timeout".to_string(),
            "response_timeout".to_string(),
        ),
        other => {
            let reply = other.local_reply();
            (
                reply.status as u16,
                String::from_utf8_lossy(&reply.body).into_owned(),
                reply.details,
            )
        }
    }
}

/// Runs a callout to its end. `outgoing` feeds a stream's request body (`None` for a unary
/// call, whose message is in the request).
pub(crate) async fn exchange(
    clusters: &ClusterSet,
    request: &GrpcCalloutRequest,
    outgoing: Option<tokio::sync::mpsc::UnboundedReceiver<Bytes>>,
    deliver: &mut Deliver<'_>,
) {
    let mut events = Events {
        deliver,
        unary: request.message.is_some(),
        last_message: None,
    };
    let run = run(clusters, request, outgoing, &mut events);
    match request.timeout.filter(|t| !t.is_zero()) {
        Some(timeout) => {
            if tokio::time::timeout(timeout, run).await.is_err() {
                events.local_reply(&UpstreamFailure::Timeout);
            }
        }
        None => run.await,
    }
}

async fn run(
    clusters: &ClusterSet,
    request: &GrpcCalloutRequest,
    outgoing: Option<tokio::sync::mpsc::UnboundedReceiver<Bytes>>,
    events: &mut Events<'_, '_>,
) {
    let client = match clusters.grpc_client(&request.cluster) {
        Ok(client) => client,
        Err(failure) => return events.local_reply(&failure),
    };
    let body: OutBody = match (&request.message, outgoing) {
        (Some(message), _) => crate::body::full(frame(message)),
        (None, Some(messages)) => crate::body::infallible(ChannelBody { messages }),
        (None, None) => crate::body::empty(),
    };
    let http_request = match build(request, body) {
        Ok(http_request) => http_request,
        // Metadata that is not a valid header: Envoy's codec resets the stream.
        Err(reason) => {
            tracing::debug!(%reason, "gRPC callout metadata is not valid HTTP");
            return events.stream_error(
                GrpcStatus::Internal as u32,
                "upstream_reset_before_response_started{protocol_error}",
            );
        }
    };
    let response = match client.request(http_request).await {
        Ok(response) => response,
        Err(error) if error.is_connect() => {
            return events.local_reply(&UpstreamFailure::Connect(connect_reason(&error)));
        }
        Err(error) => {
            return events.local_reply(&UpstreamFailure::Reset(error.to_string()));
        }
    };
    let (parts, mut body) = response.into_parts();
    let mut headers = HeaderMap::new();
    headers.add(b":status", parts.status.as_str().as_bytes());
    for (name, value) in &parts.headers {
        headers.add(name.as_str().as_bytes(), value.as_bytes());
    }
    let end_stream = body.is_end_stream();
    if parts.status != http::StatusCode::OK {
        if end_stream && headers.get(b"grpc-status").is_some() {
            return events.trailers_only(headers, VIA_UPSTREAM);
        }
        let _ = events.emit(GrpcEvent::InitialMetadata(HeaderMap::new()));
        return events.stream_error(http_to_grpc_status(parts.status.as_u16()), VIA_UPSTREAM);
    }
    if end_stream {
        return events.trailers_only(headers, VIA_UPSTREAM);
    }
    if !events.emit(GrpcEvent::InitialMetadata(headers)) {
        return;
    }
    let mut deframer = Deframer::default();
    loop {
        let frame = match body.frame().await {
            Some(Ok(frame)) => frame,
            Some(Err(error)) => {
                tracing::debug!(%error, "gRPC callout response reset");
                return events.stream_error(
                    GrpcStatus::Internal as u32,
                    "upstream_reset_after_response_started{remote_reset}",
                );
            }
            // The body ended without trailers.
            None => return events.stream_error(GrpcStatus::Unknown as u32, VIA_UPSTREAM),
        };
        let frame = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                let mut trailers = HeaderMap::new();
                if let Some(map) = frame.trailers_ref() {
                    for (name, value) in map {
                        trailers.add(name.as_str().as_bytes(), value.as_bytes());
                    }
                }
                let status = trailers
                    .get(b"grpc-status")
                    .map_or(GrpcStatus::Unknown as u32, parse_grpc_status);
                let message =
                    with_details(trailers.get(b"grpc-message").unwrap_or(b""), VIA_UPSTREAM);
                let _ = events.emit(GrpcEvent::TrailingMetadata(trailers))
                    && events.emit(GrpcEvent::Close { status, message });
                return;
            }
        };
        match deframer.push(&frame) {
            Ok(messages) => {
                for message in messages {
                    if !events.emit(GrpcEvent::Message(message)) {
                        return;
                    }
                }
            }
            Err(BadFrame) => {
                return events.stream_error(GrpcStatus::Internal as u32, VIA_UPSTREAM);
            }
        }
    }
}

/// The HTTP/2 request Envoy's gRPC client sends (the URI's authority is `:authority`).
fn build(
    request: &GrpcCalloutRequest,
    body: OutBody,
) -> Result<http::Request<OutBody>, http::Error> {
    let path = String::from_utf8_lossy(&request.path()).into_owned();
    let mut builder = http::Request::builder()
        .method(http::Method::POST)
        .version(http::Version::HTTP_2)
        .uri(format!("http://{}{path}", request.authority))
        .header(http::header::TE, "trailers");
    // A unary call always states its deadline, `0m` included (then none is enforced).
    if let Some(timeout) = request.timeout {
        builder = builder.header("grpc-timeout", format!("{}m", timeout.as_millis()));
    }
    builder = builder.header(http::header::CONTENT_TYPE, "application/grpc");
    for (name, value) in &request.initial_metadata {
        // Binary metadata travels base64-encoded, as Envoy's gRPC client sends it.
        if name.ends_with(b"-bin") {
            use base64::Engine as _;
            let encoded = base64::engine::general_purpose::STANDARD.encode(value);
            builder = builder.header(name.as_slice(), encoded);
        } else {
            builder = builder.header(name.as_slice(), value.as_slice());
        }
    }
    builder = builder.header("x-envoy-internal", "true");
    if let Some(timeout) = request.timeout.filter(|t| !t.is_zero()) {
        builder = builder.header(
            "x-envoy-expected-rq-timeout-ms",
            timeout.as_millis().to_string(),
        );
    }
    builder.body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_however_split() {
        let mut wire = frame(b"hello").to_vec();
        wire.extend_from_slice(&frame(b""));
        wire.extend_from_slice(&frame(b"world"));
        let mut deframer = Deframer::default();
        let mut got = Vec::new();
        for byte in wire {
            got.extend(deframer.push(&[byte]).unwrap());
        }
        assert_eq!(got, vec![b"hello".to_vec(), Vec::new(), b"world".to_vec()]);
    }

    #[test]
    fn compressed_frames_are_refused() {
        let mut deframer = Deframer::default();
        assert_eq!(deframer.push(&[1, 0, 0, 0, 1, b'x']), Err(BadFrame));
    }

    #[test]
    fn details_follow_the_message_in_braces() {
        assert_eq!(with_details(b"gone", "via_upstream"), b"gone{via_upstream}");
        assert_eq!(with_details(b"", "via_upstream"), b"via_upstream");
        assert_eq!(with_details(b"gone", ""), b"gone");
    }
}
