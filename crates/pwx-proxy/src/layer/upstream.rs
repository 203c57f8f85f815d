//! The inner service as the stream's upstream: "opening" it hands the filtered request to the
//! tower future that owns the call (on the caller's runtime), and the inner service's response
//! comes back as an upstream response would over HTTP/1.1.

use super::service::FilteredBody;
use crate::body::{BoxError, InBody, OutBody};
use crate::clusters::{Upstream, UpstreamBody, UpstreamFailure, is_hop_by_hop};
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use pwx_host::HeaderMap;
use std::future::Future;
use std::time::Instant;
use tokio::sync::oneshot;

/// What the inner service answered: its response (head now, body streaming) or its error.
pub(crate) type Answer = Result<http::Response<UnsyncBoxBody<Bytes, BoxError>>, BoxError>;

/// The filtered request, on its way to the inner service.
pub(crate) struct Outbound {
    pub(crate) request: http::Request<FilteredBody>,
    pub(crate) answer: oneshot::Sender<Answer>,
}

/// One stream's way to the inner service (used once).
pub(crate) struct InnerUpstream {
    pub(crate) outbound: oneshot::Sender<Outbound>,
    /// The client's HTTP version, given to the inner service's request.
    pub(crate) version: http::Version,
}

impl InnerUpstream {
    /// Sends the request (headers as the filters left them, body streaming) to the inner
    /// service and waits for its response head. The inner service's error, or a call that
    /// never answers (the caller went away), fails as an upstream reset does in Envoy: a 503.
    pub(crate) fn open(
        self,
        headers: HeaderMap,
        body: OutBody,
        service_time: bool,
    ) -> impl Future<Output = Result<Upstream, UpstreamFailure>> + 'static {
        let request = to_request(&headers, body, self.version);
        async move {
            let (answer, answered) = oneshot::channel();
            let started = Instant::now();
            self.outbound
                .send(Outbound {
                    request: request?,
                    answer,
                })
                .map_err(|_| UpstreamFailure::Reset("the layer's caller went away".into()))?;
            let response = answered
                .await
                .map_err(|_| UpstreamFailure::Reset("the inner service's call was dropped".into()))?
                .map_err(|e| UpstreamFailure::Reset(format!("the inner service failed: {e}")))?;
            let (parts, body) = response.into_parts();
            let mut headers = HeaderMap::new();
            headers.add(b":status", parts.status.as_str().as_bytes());
            for (name, value) in &parts.headers {
                if !is_hop_by_hop(name.as_str().as_bytes()) {
                    headers.add(name.as_str().as_bytes(), value.as_bytes());
                }
            }
            // Over a socket the service's server would declare a body of known size: filters
            // see the `content-length` they would see from an HTTP/1.1 upstream.
            let exact = http_body::Body::size_hint(&body).exact();
            if let Some(length) = exact
                && headers.get(b"content-length").is_none()
                && body_allowed(parts.status)
            {
                headers.add(b"content-length", length.to_string().as_bytes());
            }
            if service_time {
                headers.add(
                    b"x-envoy-upstream-service-time",
                    started.elapsed().as_millis().to_string().as_bytes(),
                );
            }
            Ok(Upstream {
                addresses: None,
                headers,
                body: UpstreamBody::Stream {
                    body: InBody::Boxed(body),
                    // Ends as an HTTP/1.1 response does: the last data, then the end.
                    http2: false,
                },
            })
        }
    }
}

/// Statuses whose responses carry no body (no `content-length` is made up for them).
fn body_allowed(status: http::StatusCode) -> bool {
    !(status.is_informational()
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED)
}

/// The request the inner service gets, as a server would hand it over: `:method` and `:path`
/// as method and (origin-form) URI, `:authority` as `host`, the other headers as the filters
/// left them minus the hop-by-hop ones (`te: trailers` stays, as gRPC needs it).
fn to_request(
    headers: &HeaderMap,
    body: OutBody,
    version: http::Version,
) -> Result<http::Request<FilteredBody>, UpstreamFailure> {
    crate::clusters::request_head(headers, headers.get(b":path").unwrap_or(b"/").to_vec())
        .version(version)
        .body(FilteredBody::new(body))
        .map_err(|e| UpstreamFailure::BadRequest(e.to_string()))
}
