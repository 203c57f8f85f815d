//! The built-in echo upstream: answers with the request it received (method, path, headers,
//! body) as JSON, so a filter's request-side effects can be seen with curl alone.

use bytes::Bytes;
use pwx_host::HeaderMap;

/// The echo response for a request: status 200, `content-type: application/json`.
pub(crate) fn respond(request_headers: &HeaderMap, body: &[u8]) -> (HeaderMap, Bytes) {
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    let headers: serde_json::Map<String, serde_json::Value> = request_headers
        .iter()
        .filter(|(k, _)| !k.starts_with(b":"))
        .fold(serde_json::Map::new(), |mut map, (k, v)| {
            // Repeated headers are joined with a comma, as HTTP allows.
            let entry = map
                .entry(text(k))
                .or_insert_with(|| serde_json::Value::String(String::new()));
            if let serde_json::Value::String(s) = entry {
                if !s.is_empty() {
                    s.push(',');
                }
                s.push_str(&text(v));
            }
            map
        });
    let echo = serde_json::json!({
        "method": request_headers.get(b":method").map(text),
        "path": request_headers.get(b":path").map(text),
        "authority": request_headers.get(b":authority").map(text),
        "headers": headers,
        "body": text(body),
    });
    let mut body = serde_json::to_vec_pretty(&echo).unwrap_or_default();
    body.push(b'\n');
    let length = body.len().to_string();
    let response = HeaderMap::from_pairs([
        (":status", "200"),
        ("content-type", "application/json"),
        ("content-length", length.as_str()),
    ]);
    (response, Bytes::from(body))
}
