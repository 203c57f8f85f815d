//! Forwarding to an HTTP/1.1 upstream with a pooled client per worker.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use pwx_host::HeaderMap;

/// One worker's connection pool to the upstream.
pub(crate) struct Upstream {
    client: Client<HttpConnector, Full<Bytes>>,
    base: http::Uri,
}

/// The upstream could not be reached or answered badly: Envoy's 503 / 502 territory.
#[derive(Debug)]
pub(crate) struct UpstreamFailure(pub(crate) String);

impl Upstream {
    pub(crate) fn new(base: http::Uri) -> Self {
        Upstream {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base,
        }
    }

    /// Sends the request the chain produced; returns response headers (with `:status`) and body.
    pub(crate) async fn send(
        &self,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<(HeaderMap, Bytes), UpstreamFailure> {
        let path = headers.get_str(":path").unwrap_or("/");
        let authority = self
            .base
            .authority()
            .map(|a| a.as_str())
            .unwrap_or("localhost");
        let uri = format!("http://{authority}{path}");
        let mut request = http::Request::builder()
            .method(headers.get(b":method").unwrap_or(b"GET"))
            .uri(uri);
        for (name, value) in headers.iter().filter(|(k, _)| !k.starts_with(b":")) {
            if is_hop_by_hop(name) {
                continue;
            }
            request = request.header(name, value);
        }
        if let Some(host) = headers.get(b":authority") {
            request = request.header(http::header::HOST, host);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| UpstreamFailure(format!("bad request for the upstream: {e}")))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| UpstreamFailure(format!("{e}")))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| UpstreamFailure(format!("reading the response body: {e}")))?
            .to_bytes();
        let mut map = HeaderMap::new();
        map.add(b":status", parts.status.as_str().as_bytes());
        for (name, value) in &parts.headers {
            if !is_hop_by_hop(name.as_str().as_bytes()) {
                map.add(name.as_str().as_bytes(), value.as_bytes());
            }
        }
        Ok((map, body))
    }
}

/// Connection-level headers are not forwarded (the body is re-framed by this hop).
pub(crate) fn is_hop_by_hop(name: &[u8]) -> bool {
    matches!(
        name.to_ascii_lowercase().as_slice(),
        b"connection"
            | b"keep-alive"
            | b"transfer-encoding"
            | b"upgrade"
            | b"proxy-connection"
            | b"te"
            | b"host"
            | b"content-length"
    )
}
