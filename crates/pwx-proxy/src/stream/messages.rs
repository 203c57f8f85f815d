//! Between hyper's messages and the maps filters see: the request headers as Envoy presents
//! them to the chain, local replies as Envoy builds them, and the response head sent to the
//! client.

use crate::body::OutBody;
use crate::clusters::is_hop_by_hop;
use crate::routes::{Route, RouteAction, VirtualHost};
use pwx_host::{HeaderMap, LocalReply, StreamInfo};

/// Envoy's request headers as filters see them: pseudo-headers first, `host` as `:authority`,
/// plus what the connection manager adds before the filter chain.
pub(crate) fn request_map(parts: &http::request::Parts) -> HeaderMap {
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
    let mut bytes = random_16();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            id.push('-');
        }
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    id
}

/// 16 random bytes from a per-thread pool the OS fills 1 KiB at a time: one `getrandom` call
/// per 64 requests instead of one per request. A failing OS random source leaves zeros: the
/// id is a correlation tag, not a secret.
fn random_16() -> [u8; 16] {
    const POOL: usize = 1024;
    thread_local! {
        static RANDOM: std::cell::RefCell<([u8; POOL], usize)> =
            const { std::cell::RefCell::new(([0; POOL], POOL)) };
    }
    RANDOM.with_borrow_mut(|(pool, used)| {
        if *used + 16 > POOL {
            if getrandom::fill(pool).is_err() {
                pool.fill(0);
            }
            *used = 0;
        }
        let mut out = [0u8; 16];
        out.copy_from_slice(&pool[*used..*used + 16]);
        *used += 16;
        out
    })
}

/// One of Envoy's own replies (404, 408, 413, 500, …).
pub(crate) fn status_reply(status: u32, details: &str, body: &str) -> LocalReply {
    LocalReply {
        status,
        details: details.into(),
        body: body.as_bytes().to_vec(),
        headers: Vec::new(),
        grpc_status: None,
    }
}

/// A local reply's headers as Envoy builds them: `:status`, the filter's headers, then
/// `content-length` and `content-type` when there is a body.
pub(crate) fn local_headers(reply: &LocalReply) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.add(b":status", reply.status.to_string().as_bytes());
    for (k, v) in &reply.headers {
        headers.add(k, v);
    }
    if !reply.body.is_empty() {
        if headers.get(b"content-length").is_none() {
            headers.add(b"content-length", reply.body.len().to_string().as_bytes());
        }
        if headers.get(b"content-type").is_none() {
            headers.add(b"content-type", b"text/plain");
        }
    }
    headers
}

/// Whether the headers carry a `:status` an HTTP response can have.
pub(crate) fn valid_status(headers: &HeaderMap) -> bool {
    headers
        .get_str(":status")
        .and_then(|s| s.parse::<u16>().ok())
        .is_some_and(|s| (100..=999).contains(&s))
}

/// A local reply to a gRPC request as Envoy sends it: a trailers-only response (HTTP 200,
/// `grpc-status` and `grpc-message` in the headers, no body).
pub(crate) fn grpc_local_headers(reply: &LocalReply) -> HeaderMap {
    let status = match reply.grpc_status {
        Some(status) if status <= 16 => status,
        Some(_) => 2,
        None => grpc_status_of_http(reply.status),
    };
    let mut headers = HeaderMap::new();
    headers.add(b":status", b"200");
    for (k, v) in &reply.headers {
        headers.add(k, v);
    }
    headers.replace(b"content-type", b"application/grpc");
    headers.add(b"grpc-status", status.to_string().as_bytes());
    if !reply.body.is_empty() {
        headers.add(b"grpc-message", &reply.body);
    }
    headers.add(b"content-length", b"0");
    headers
}

/// Envoy's mapping of an HTTP status to a gRPC status (`Grpc::Utility::httpToGrpcStatus`).
fn grpc_status_of_http(status: u32) -> u32 {
    match status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

pub(crate) fn protocol_name(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        _ => "HTTP/1.1",
    }
}

pub(crate) fn from_http_headers(headers: &http::HeaderMap) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.add(name.as_str().as_bytes(), value.as_bytes());
    }
    map
}

/// The response head for the client, from the headers the chain ended with; `close` asks hyper
/// to close the connection after it (Envoy does when it answers before the request ended).
pub(crate) fn response_head(
    headers: &HeaderMap,
    body: OutBody,
    close: bool,
) -> http::Response<OutBody> {
    let status = headers
        .get_str(":status")
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|s| http::StatusCode::from_u16(s).ok())
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = http::Response::new(body);
    *response.status_mut() = status;
    let map = response.headers_mut();
    for (name, value) in headers.iter() {
        if name.starts_with(b":") || is_hop_by_hop(name) {
            continue;
        }
        match (
            http::HeaderName::from_bytes(name),
            http::HeaderValue::from_bytes(value),
        ) {
            (Ok(name), Ok(value)) => {
                map.append(name, value);
            }
            _ => tracing::debug!(
                name = %String::from_utf8_lossy(name),
                "a response header hyper cannot send was dropped"
            ),
        }
    }
    if close {
        map.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    response
}

/// Envoy's `xds.*` facts of the route `headers` select on `hosts` (nothing when none does).
pub(super) fn route_facts(info: &mut StreamInfo, hosts: &[VirtualHost], headers: &HeaderMap) {
    if let Some((host, route)) = crate::routes::select(hosts, headers) {
        set_route(info, host, route);
    }
}

/// Records `route` of `host` as the stream's route.
pub(super) fn set_route(info: &mut StreamInfo, host: &VirtualHost, route: &Route) {
    info.virtual_host_name = Some(host.name.clone());
    info.route_name = Some(route.name.clone());
    info.cluster_name = match &route.action {
        RouteAction::Cluster { cluster, .. } => Some(cluster.clone()),
        RouteAction::DirectResponse { .. } => None,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_distinct_uuid_v4s() {
        let ids: Vec<String> = (0..200).map(|_| request_id()).collect();
        for id in &ids {
            let groups: Vec<&str> = id.split('-').collect();
            assert_eq!(
                groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12],
                "{id}"
            );
            assert!(
                id.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()),
                "{id}"
            );
            assert!(groups[2].starts_with('4'), "version 4: {id}");
            assert!(
                matches!(&groups[3][..1], "8" | "9" | "a" | "b"),
                "variant: {id}"
            );
        }
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len(), "ids repeat");
    }
}
