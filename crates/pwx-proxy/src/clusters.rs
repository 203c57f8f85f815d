//! Clusters: named upstreams with their endpoints and one pooled client per worker. The proxied
//! requests and the filters' HTTP callouts both go through here, and both fail the way Envoy's
//! router fails (503 on connect failure or reset, 504 on timeout).

use crate::body::{InBody, OutBody};
use crate::config::{ClusterConfig, ClusterKind, UpstreamProtocol};
use crate::tls::UpstreamConnector;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use pwx_host::{HeaderMap, LocalReply};
use std::cell::Cell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A whole request for an upstream: headers with pseudo-headers, body, trailers.
pub(crate) struct OutRequest {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) trailers: Option<HeaderMap>,
}

/// A whole response from an upstream.
pub(crate) struct InResponse {
    /// Headers with `:status`.
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) trailers: Option<HeaderMap>,
}

/// An upstream's response as it starts: its headers, and the body still to come.
pub(crate) struct Upstream {
    /// Headers with `:status`.
    pub(crate) headers: HeaderMap,
    pub(crate) body: UpstreamBody,
    /// The connection's (remote, local) addresses (`upstream.address`,
    /// `upstream.local_address`); `None` for a built-in upstream.
    pub(crate) addresses: Option<(std::net::SocketAddr, std::net::SocketAddr)>,
}

/// The body of an upstream response.
pub(crate) enum UpstreamBody {
    /// Read as it arrives (from the connection, or from the embedded layer's inner service);
    /// `http2` tells how its end is signalled.
    Stream { body: InBody, http2: bool },
    /// Produced whole by a built-in upstream (echo).
    Whole(Bytes),
}

/// Why an upstream request failed, in Envoy's terms.
#[derive(Debug)]
pub(crate) enum UpstreamFailure {
    /// The connection could not be made.
    Connect(String),
    /// The connection was closed or reset before a full response.
    Reset(String),
    /// The route (or callout) timeout fired.
    Timeout,
    /// The cluster has no endpoint.
    NoHealthyUpstream,
    /// The request could not be expressed in HTTP (a filter produced bad headers).
    BadRequest(String),
}

impl UpstreamFailure {
    /// The local reply Envoy's router sends for this failure.
    pub(crate) fn local_reply(&self) -> LocalReply {
        let (status, details, body) = match self {
            UpstreamFailure::Connect(reason) => (
                503,
                "upstream_reset_before_response_started{connection_failure}".to_string(),
                format!(
                    "upstream connect error or disconnect/reset before headers. reset reason: connection failure, transport failure reason: {reason}"
                ),
            ),
            UpstreamFailure::Reset(reason) => (
                503,
                {
                    tracing::debug!(%reason, "upstream reset");
                    "upstream_reset_before_response_started{connection_termination}".to_string()
                },
                "upstream connect error or disconnect/reset before headers. reset reason: connection termination".to_string(),
            ),
            UpstreamFailure::Timeout => (
                504,
                "upstream_response_timeout".to_string(),
                "upstream request timeout".to_string(),
            ),
            UpstreamFailure::NoHealthyUpstream => (
                503,
                "no_healthy_upstream".to_string(),
                "no healthy upstream".to_string(),
            ),
            UpstreamFailure::BadRequest(reason) => (
                503,
                "upstream_reset_before_response_started{protocol_error}".to_string(),
                format!("upstream connect error or disconnect/reset before headers. reset reason: protocol error ({reason})"),
            ),
        };
        LocalReply {
            status,
            details,
            body: body.into_bytes(),
            headers: Vec::new(),
            grpc_status: None,
        }
    }

    /// The failure as a response (what a callout's root context receives).
    pub(crate) fn as_response(&self) -> InResponse {
        let reply = self.local_reply();
        let mut headers = HeaderMap::new();
        headers.add(b":status", reply.status.to_string().as_bytes());
        headers.add(b"content-length", reply.body.len().to_string().as_bytes());
        headers.add(b"content-type", b"text/plain");
        InResponse {
            headers,
            body: Bytes::from(reply.body),
            trailers: None,
        }
    }
}

/// One cluster on one worker.
struct Cluster {
    kind: ClusterKind,
    endpoints: Vec<String>,
    next: Cell<usize>,
    client: Client<UpstreamConnector, OutBody>,
    /// `http` or `https` (the connector does TLS for the latter).
    scheme: &'static str,
    /// gRPC callouts always speak HTTP/2 (h2c), whatever the cluster's protocol for requests:
    /// one client per endpoint, so that `:authority` can name the service, not the address.
    grpc_clients: Vec<GrpcClient>,
}

/// An h2c client whose connections all go to one endpoint.
pub(crate) type GrpcClient = Client<crate::grpc::EndpointConnector, OutBody>;

/// The clusters of one worker.
pub(crate) struct ClusterSet {
    by_name: HashMap<String, Cluster>,
}

impl ClusterSet {
    pub(crate) fn new(configs: &[ClusterConfig]) -> Self {
        let by_name = configs
            .iter()
            .map(|config| {
                let mut connector = HttpConnector::new();
                connector.set_connect_timeout(Some(config.connect_timeout));
                connector.set_nodelay(true);
                let mut builder = Client::builder(TokioExecutor::new());
                builder.pool_idle_timeout(Duration::from_secs(60));
                let grpc_clients =
                    config
                        .endpoints
                        .iter()
                        .map(|endpoint| {
                            builder.clone().http2_only(true).build(
                                crate::grpc::EndpointConnector::new(connector.clone(), endpoint),
                            )
                        })
                        .collect();
                if config.protocol == UpstreamProtocol::Http2 {
                    builder.http2_only(true);
                }
                let connector =
                    UpstreamConnector::new(connector, config.tls.as_ref(), config.protocol);
                let cluster = Cluster {
                    kind: config.kind,
                    endpoints: config.endpoints.clone(),
                    next: Cell::new(0),
                    scheme: connector.scheme(),
                    client: builder.build(connector),
                    grpc_clients,
                };
                (config.name.clone(), cluster)
            })
            .collect();
        ClusterSet { by_name }
    }

    /// The h2c client of the next endpoint of `cluster` (round robin), for a gRPC callout.
    pub(crate) fn grpc_client(&self, cluster: &str) -> Result<GrpcClient, UpstreamFailure> {
        let cluster = self
            .by_name
            .get(cluster)
            .filter(|c| !c.grpc_clients.is_empty())
            .ok_or(UpstreamFailure::NoHealthyUpstream)?;
        let index = cluster.next.get() % cluster.grpc_clients.len();
        cluster.next.set(index.wrapping_add(1));
        Ok(cluster.grpc_clients[index].clone())
    }

    /// Sends a whole request to `cluster` (round robin over its endpoints) and reads the whole
    /// response, within `timeout` (the callouts' exchange).
    pub(crate) async fn send(
        &self,
        cluster: &str,
        request: OutRequest,
        timeout: Option<Duration>,
        service_time: bool,
    ) -> Result<InResponse, UpstreamFailure> {
        let exchange = async {
            let OutRequest {
                mut headers,
                body,
                trailers,
            } = request;
            // The body is whole: a length that disagrees with it would break the framing.
            if headers.get(b"content-length").is_some() {
                headers.replace(b"content-length", body.len().to_string().as_bytes());
            }
            let body = match trailers {
                Some(trailers) if !trailers.is_empty() => crate::body::infallible(
                    http_body_util::Full::new(body)
                        .with_trailers(std::future::ready(Some(Ok(to_http_headers(&trailers))))),
                ),
                _ => crate::body::full(body),
            };
            let upstream = self.open(cluster, headers, body, service_time).await?;
            let (body, trailers) = match upstream.body {
                UpstreamBody::Whole(body) => (body, None),
                UpstreamBody::Stream { body, .. } => {
                    let collected = body.collect().await.map_err(|e| {
                        UpstreamFailure::Reset(format!("reading the response body: {e}"))
                    })?;
                    let trailers = collected.trailers().map(from_http_headers);
                    (collected.to_bytes(), trailers)
                }
            };
            Ok(InResponse {
                headers: upstream.headers,
                body,
                trailers,
            })
        };
        match timeout {
            Some(timeout) => tokio::time::timeout(timeout, exchange)
                .await
                .unwrap_or(Err(UpstreamFailure::Timeout)),
            None => exchange.await,
        }
    }

    /// Starts a request to `cluster` (round robin over its endpoints) and returns when the
    /// response headers arrived; the body streams on. `service_time` adds Envoy's
    /// `x-envoy-upstream-service-time` to the response headers.
    pub(crate) async fn open(
        &self,
        cluster: &str,
        headers: HeaderMap,
        body: OutBody,
        service_time: bool,
    ) -> Result<Upstream, UpstreamFailure> {
        let Some(cluster) = self.by_name.get(cluster) else {
            return Err(UpstreamFailure::NoHealthyUpstream);
        };
        if cluster.kind == ClusterKind::Echo {
            let body = body
                .collect()
                .await
                .map_err(|e| UpstreamFailure::Reset(e.to_string()))?
                .to_bytes();
            let (headers, body) = crate::echo::respond(&headers, &body);
            return Ok(Upstream {
                headers,
                body: UpstreamBody::Whole(body),
                addresses: None,
            });
        }
        if cluster.endpoints.is_empty() {
            return Err(UpstreamFailure::NoHealthyUpstream);
        }
        let index = cluster.next.get() % cluster.endpoints.len();
        cluster.next.set(index.wrapping_add(1));
        let endpoint = &cluster.endpoints[index];
        let request = to_hyper(cluster.scheme, endpoint, &headers, body)?;
        let started = Instant::now();
        let response = cluster.client.request(request).await.map_err(|e| {
            if e.is_connect() {
                UpstreamFailure::Connect(connect_reason(&e))
            } else {
                UpstreamFailure::Reset(format!("{e}"))
            }
        })?;
        let http2 = response.version() == http::Version::HTTP_2;
        let (parts, body) = response.into_parts();
        let addresses = parts
            .extensions
            .get::<hyper_util::client::legacy::connect::HttpInfo>()
            .map(|info| (info.remote_addr(), info.local_addr()));
        let mut headers = HeaderMap::new();
        headers.add(b":status", parts.status.as_str().as_bytes());
        for (name, value) in &parts.headers {
            // Envoy's HTTP/1 codec leaves `transfer-encoding` in the response headers filters
            // see (the downstream codec frames the body again anyway).
            if !is_hop_by_hop(name.as_str().as_bytes()) || name == http::header::TRANSFER_ENCODING {
                headers.add(name.as_str().as_bytes(), value.as_bytes());
            }
        }
        if service_time {
            headers.add(
                b"x-envoy-upstream-service-time",
                started.elapsed().as_millis().to_string().as_bytes(),
            );
        }
        Ok(Upstream {
            headers,
            body: UpstreamBody::Stream {
                body: InBody::Hyper(body),
                http2,
            },
            addresses,
        })
    }
}

/// Envoy's wording for connect failures.
pub(crate) fn connect_reason(error: &hyper_util::client::legacy::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    while let Some(inner) = source {
        if let Some(tls) = inner.downcast_ref::<crate::tls::HandshakeFailed>() {
            return tls.to_string();
        }
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    "delayed connect error: Connection refused".to_string()
                }
                std::io::ErrorKind::TimedOut => "connect timeout".to_string(),
                _ => format!("delayed connect error: {io}"),
            };
        }
        source = inner.source();
    }
    format!("{error}")
}

fn from_http_headers(headers: &http::HeaderMap) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.add(name.as_str().as_bytes(), value.as_bytes());
    }
    map
}

/// Header pairs as hyper's map (pairs hyper refuses are dropped: they cannot be sent).
pub(crate) fn to_http_headers(map: &HeaderMap) -> http::HeaderMap {
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

/// A request head from a filtered header map: `:method` and `uri` make the request line,
/// `:authority` the `host` header, then the other headers as the filters left them, less the
/// hop-by-hop ones.
pub(crate) fn request_head(headers: &HeaderMap, uri: Vec<u8>) -> http::request::Builder {
    let mut builder = http::Request::builder()
        .method(headers.get(b":method").unwrap_or(b"GET"))
        .uri(uri);
    // `:authority` comes first in the map, so `host` leads the request as in Envoy.
    if let Some(host) = headers.get(b":authority") {
        builder = builder.header(http::header::HOST, host);
    }
    for (name, value) in headers.iter() {
        // `te: trailers` is end to end (gRPC requires it); every other `te` is hop by hop.
        let te_trailers =
            name.eq_ignore_ascii_case(b"te") && value.eq_ignore_ascii_case(b"trailers");
        if name.starts_with(b":") || (is_hop_by_hop(name) && !te_trailers) {
            continue;
        }
        builder = builder.header(name, value);
    }
    builder
}

/// Builds the hyper request: `:path`/`:method` become the request line, `:authority` the
/// `host` header; `content-length` goes as the filters left it (as Envoy forwards it).
fn to_hyper(
    scheme: &str,
    endpoint: &str,
    headers: &HeaderMap,
    body: OutBody,
) -> Result<http::Request<OutBody>, UpstreamFailure> {
    let path = headers.get_str(":path").unwrap_or("/");
    let mut builder = request_head(headers, format!("{scheme}://{endpoint}{path}").into_bytes());
    // Envoy's HTTP/1 codec announces an empty body on requests whose method may carry one.
    let method = headers.get(b":method").unwrap_or(b"GET");
    if http_body::Body::is_end_stream(&body)
        && headers.get(b"content-length").is_none()
        && matches!(method, b"POST" | b"PUT" | b"PATCH")
    {
        builder = builder.header(http::header::CONTENT_LENGTH, "0");
    }
    builder
        .body(body)
        .map_err(|e| UpstreamFailure::BadRequest(e.to_string()))
}

/// Connection-level headers are not forwarded (each hop frames the body itself; a
/// `content-length` is end to end and is kept).
pub(crate) fn is_hop_by_hop(name: &[u8]) -> bool {
    const HOP_BY_HOP: [&[u8]; 7] = [
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-connection",
        b"te",
        b"host",
    ];
    // Compared in place: this runs for every header of every request and response.
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}
