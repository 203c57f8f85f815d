//! What a test sends and what it gets back: the request, the upstream's and callouts' answers,
//! and the outcome of one exchange as the client, the upstream and the logs saw it.

use pwx_host::HeaderMap;

/// A request the test sends through the filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `:method`.
    pub method: String,
    /// `:path` (with the query string).
    pub path: String,
    /// `:authority`.
    pub authority: String,
    /// Headers after the pseudo-headers, in order (names are lower-cased when sent).
    pub headers: Vec<(String, String)>,
    /// Body; empty means a header-only request.
    pub body: Vec<u8>,
    /// Trailers; empty means none.
    pub trailers: Vec<(String, String)>,
}

impl Request {
    /// A request with `method` and `path`, authority `example.com`, no headers, no body.
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            authority: "example.com".into(),
            headers: Vec::new(),
            body: Vec::new(),
            trailers: Vec::new(),
        }
    }

    /// `GET path`.
    pub fn get(path: impl Into<String>) -> Request {
        Request::new("GET", path)
    }

    /// `POST path` with a body.
    pub fn post(path: impl Into<String>, body: impl Into<Vec<u8>>) -> Request {
        Request::new("POST", path).body(body)
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets `:authority`.
    pub fn authority(mut self, authority: impl Into<String>) -> Request {
        self.authority = authority.into();
        self
    }

    /// Sets the body (a `content-length` header is added when sent, as a client would).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// Adds a trailer.
    pub fn trailer(mut self, name: impl Into<String>, value: impl Into<String>) -> Request {
        self.trailers.push((name.into(), value.into()));
        self
    }

    /// The header map Envoy hands the filter: pseudo-headers first, then the headers, then
    /// `content-length` for a body the headers do not size, then what Envoy's connection manager
    /// adds before any filter runs (`x-forwarded-proto`, a random `x-request-id`) unless given.
    pub(crate) fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.add(b":authority", self.authority.as_bytes());
        map.add(b":path", self.path.as_bytes());
        map.add(b":method", self.method.as_bytes());
        map.add(b":scheme", b"http");
        for (name, value) in &self.headers {
            map.add(name.to_ascii_lowercase().as_bytes(), value.as_bytes());
        }
        if !self.body.is_empty() && map.get(b"content-length").is_none() {
            map.add(b"content-length", self.body.len().to_string().as_bytes());
        }
        if map.get(b"x-forwarded-proto").is_none() {
            map.add(b"x-forwarded-proto", b"http");
        }
        if map.get(b"x-request-id").is_none() {
            map.add(b"x-request-id", request_id().as_bytes());
        }
        map
    }
}

/// A random UUID v4, as Envoy's connection manager generates for `x-request-id`.
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

/// A response the upstream or a callout's cluster answers with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with `status`, no headers and no body.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body (`content-length` is added when sent).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    pub(crate) fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.add(b":status", self.status.to_string().as_bytes());
        for (name, value) in &self.headers {
            map.add(name.to_ascii_lowercase().as_bytes(), value.as_bytes());
        }
        if !self.body.is_empty() && map.get(b"content-length").is_none() {
            map.add(b"content-length", self.body.len().to_string().as_bytes());
        }
        map
    }
}

/// What the upstream does with a request that reaches it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Upstream {
    /// 200 with the request body it received as its body, and the request's `content-type`.
    #[default]
    Echo,
    /// A fixed response.
    Respond(Response),
}

impl Upstream {
    pub(crate) fn answer(&self, request: &UpstreamRequest) -> Response {
        match self {
            Upstream::Respond(response) => response.clone(),
            Upstream::Echo => {
                let mut response = Response::new(200).body(request.body.clone());
                if let Some(kind) = request.header("content-type") {
                    response = response.header("content-type", kind);
                }
                response
            }
        }
    }
}

/// How the test answers an HTTP callout (`proxy_http_call`) to a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalloutAnswer {
    /// The cluster the callout names.
    pub cluster: String,
    /// Only callouts with exactly this `:path` (query included); `None` matches any path.
    pub path: Option<String>,
    /// The answer; `None` is a transport failure (the module sees zero headers, status reset).
    pub response: Option<Response>,
}

impl CalloutAnswer {
    /// Answers callouts to `cluster` with `response`.
    pub fn new(cluster: impl Into<String>, response: Response) -> CalloutAnswer {
        CalloutAnswer {
            cluster: cluster.into(),
            path: None,
            response: Some(response),
        }
    }

    /// Fails callouts to `cluster` as a reset connection would.
    pub fn failure(cluster: impl Into<String>) -> CalloutAnswer {
        CalloutAnswer {
            cluster: cluster.into(),
            path: None,
            response: None,
        }
    }

    /// Restricts the answer to callouts with this `:path`.
    pub fn path(mut self, path: impl Into<String>) -> CalloutAnswer {
        self.path = Some(path.into());
        self
    }

    pub(crate) fn matches(&self, cluster: &str, path: &str) -> bool {
        self.cluster == cluster && self.path.as_deref().is_none_or(|p| p == path)
    }
}

/// A header list with a case-insensitive lookup.
fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Converts a host header map into text pairs (invalid UTF-8 is replaced, not dropped).
pub(crate) fn pairs(map: &HeaderMap) -> Vec<(String, String)> {
    map.iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

/// The request as it reached the upstream, after the filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamRequest {
    /// Headers, pseudo-headers included.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Trailers.
    pub trailers: Vec<(String, String)>,
}

impl UpstreamRequest {
    /// A header's value (the first one; names are case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }
}

/// A callout the filter made during the exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Callout {
    /// Cluster.
    pub cluster: String,
    /// Headers (`:method`, `:path`, `:authority` included).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// A log line the filter wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// `trace`, `debug`, `info`, `warn`, `error` or `critical`.
    pub level: &'static str,
    /// The message.
    pub message: String,
}

/// How one exchange ended, as the client, the upstream and the logs saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Status the client got (0 when the stream was reset).
    pub status: u16,
    /// Response headers the client got (without `:status`).
    pub headers: Vec<(String, String)>,
    /// Response body the client got.
    pub body: Vec<u8>,
    /// The request as it reached the upstream; `None` when it never did.
    pub upstream_request: Option<UpstreamRequest>,
    /// The local reply the filter sent, if it sent one.
    pub local_reply: Option<pwx_host::LocalReply>,
    /// Callouts the filter made, in order.
    pub callouts: Vec<Callout>,
    /// Log lines written during the exchange.
    pub logs: Vec<LogLine>,
    /// The filter reset the stream (the client saw the connection close).
    pub reset: bool,
    /// Why the VM failed, when it did (the client then got Envoy's fail-closed 503).
    pub vm_failure: Option<String>,
}

impl Outcome {
    /// A response header's value (the first one; names are case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether any log line contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.logs.iter().any(|l| l.message.contains(text))
    }
}
