//! gRPC callout ops: `grpc_call` and `grpc_stream` go through the SDK (so that its dispatcher
//! knows the token and routes the gRPC callbacks to the calling context) unless `raw` is set;
//! `grpc_send`, `grpc_close` and `grpc_cancel` call the raw imports, so every status is seen.

use crate::abi;
use crate::ops::{BAD_PTR, R, bytes_arg, id_arg, ok_then, pairs_arg, save, str_arg, u32_arg};
use crate::render;
use crate::script::Op;
use serde_json::Value;
use std::ptr::null;
use std::time::Duration;

/// Runs one gRPC op; `bad` replaces the first input pointer with one outside memory.
pub fn run(name: &str, op: &Op, bad: bool) -> R {
    match name {
        "grpc_call" | "grpc_stream" => start(name == "grpc_call", op, bad),
        "grpc_send" => {
            let token = id_arg(op, "token")?;
            let message = bytes_arg(op, "message")?;
            let end = op
                .get("end_stream")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let (p, l) = input(&message, bad);
            // SAFETY: a live byte range, null with length 0, or BAD_PTR (the host checks it).
            let status = unsafe { abi::proxy_grpc_send(token, p, l, u32::from(end)) };
            Ok((status, None))
        }
        "grpc_close" => {
            let token = id_arg(op, "token")?;
            // SAFETY: no pointers.
            Ok((unsafe { abi::proxy_grpc_close(token) }, None))
        }
        _ => {
            let token = id_arg(op, "token")?;
            // SAFETY: no pointers.
            Ok((unsafe { abi::proxy_grpc_cancel(token) }, None))
        }
    }
}

fn input(bytes: &[u8], bad: bool) -> (*const u8, usize) {
    if bad {
        (BAD_PTR as *const u8, bytes.len().max(8))
    } else if bytes.is_empty() {
        (null(), 0)
    } else {
        (bytes.as_ptr(), bytes.len())
    }
}

/// The `upstream` argument: `grpc_service` {cluster, authority, metadata} serialized as an
/// `envoy.config.core.v3.GrpcService`, or `upstream_hex`, or the `cluster` name.
fn upstream(op: &Op) -> Result<Vec<u8>, String> {
    if let Some(service) = op.get("grpc_service") {
        let service = service
            .as_object()
            .ok_or("grpc_service: {cluster, authority, metadata}")?;
        let text = |key: &str| service.get(key).and_then(Value::as_str).unwrap_or("");
        let mut envoy_grpc = field(1, text("cluster").as_bytes());
        if !text("authority").is_empty() {
            envoy_grpc.extend(field(2, text("authority").as_bytes()));
        }
        let mut out = field(1, &envoy_grpc);
        let metadata = pairs_arg(service, "metadata")?;
        for (key, value) in metadata {
            let mut header = field(1, &key);
            header.extend(field(2, &value));
            out.extend(field(5, &header));
        }
        return Ok(out);
    }
    if op.contains_key("upstream_hex") {
        return bytes_arg(op, "upstream");
    }
    Ok(str_arg(op, "cluster", "upstream").into_bytes())
}

/// One length-delimited protobuf field.
fn field(number: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(number << 3) | 2];
    let mut len = payload.len();
    while len >= 0x80 {
        out.push((len as u8) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.extend_from_slice(payload);
    out
}

fn start(call: bool, op: &Op, bad: bool) -> R {
    let upstream = upstream(op)?;
    let service = str_arg(op, "service", "probe.Echo");
    let method = str_arg(op, "method", if call { "Unary" } else { "Bidi" });
    let metadata = pairs_arg(op, "metadata")?;
    let message = bytes_arg(op, "message")?;
    let timeout = u32_arg(op, "timeout_ms", 5000)?;
    let raw = bad || op.get("raw").and_then(Value::as_bool).unwrap_or(false);
    let result = if raw {
        raw_start(
            call, &upstream, &service, &method, &metadata, &message, timeout, bad,
        )
    } else {
        let upstream = std::str::from_utf8(&upstream)
            .map_err(|_| "upstream is not UTF-8: the SDK takes a &str (use raw)".to_string())?;
        let metadata: Vec<(&str, &[u8])> = metadata
            .iter()
            .map(|(k, v)| (std::str::from_utf8(k).unwrap_or(""), v.as_slice()))
            .collect();
        let started = if call {
            proxy_wasm::hostcalls::dispatch_grpc_call(
                upstream,
                &service,
                &method,
                metadata,
                Some(message.as_slice()),
                Duration::from_millis(u64::from(timeout)),
            )
        } else {
            proxy_wasm::hostcalls::open_grpc_stream(upstream, &service, &method, metadata)
        };
        match started {
            Ok(token) => (0, token),
            Err(status) => (status as u32, 0),
        }
    };
    let (status, token) = result;
    if status == 0
        && let Some(name) = op.get("save").and_then(Value::as_str)
    {
        save(name, token);
    }
    Ok((status, ok_then(status, || token.to_string())))
}

/// The raw imports: statuses the SDK would panic on are returned; the SDK's dispatcher does
/// not know the token, so it drops the callbacks for it.
#[allow(clippy::too_many_arguments)]
fn raw_start(
    call: bool,
    upstream: &[u8],
    service: &str,
    method: &str,
    metadata: &render::Pairs,
    message: &[u8],
    timeout: u32,
    bad: bool,
) -> (u32, u32) {
    let metadata = render::encode_pairs(metadata);
    let (up, ul) = input(upstream, bad);
    let mut token: u32 = 0;
    // SAFETY: every pointer is a live byte range of the given length, null with length 0, or
    // BAD_PTR, which the host must bounds-check.
    let status = unsafe {
        if call {
            abi::proxy_grpc_call(
                up,
                ul,
                service.as_ptr(),
                service.len(),
                method.as_ptr(),
                method.len(),
                metadata.as_ptr(),
                metadata.len(),
                message.as_ptr(),
                message.len(),
                timeout,
                &mut token,
            )
        } else {
            abi::proxy_grpc_stream(
                up,
                ul,
                service.as_ptr(),
                service.len(),
                method.as_ptr(),
                method.len(),
                metadata.as_ptr(),
                metadata.len(),
                &mut token,
            )
        }
    };
    (status, token)
}
