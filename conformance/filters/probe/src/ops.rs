//! Runs script operations against the raw ABI and logs one line per operation.

use crate::abi::{self, take_bytes};
use crate::render;
use crate::script::Op;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ptr::{null, null_mut};
use std::time::Duration;

/// Where an op runs: log prefix, callback key, own and root context ids.
pub struct Env<'a> {
    pub prefix: &'a str,
    pub callback: &'a str,
    pub context_id: u32,
    pub root_id: u32,
}

#[derive(Default)]
struct State {
    /// Ids saved by name: metrics, queues, callout tokens, contexts.
    labels: BTreeMap<String, u32>,
    /// CAS returned by the last successful `get_shared_data`.
    last_cas: u32,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

pub(crate) fn save(name: &str, id: u32) {
    STATE.with(|s| s.borrow_mut().labels.insert(name.to_string(), id));
}

fn label(name: &str) -> Option<u32> {
    STATE.with(|s| s.borrow().labels.get(name).copied())
}

/// Records an id under a name (used for context ids by the dispatcher side).
pub fn save_label(name: &str, id: u32) {
    save(name, id);
}

/// An input range that points outside linear memory, to provoke `InvalidMemoryAccess`.
pub(crate) const BAD_PTR: usize = 0xFFFF_FFF0;

pub(crate) type R = Result<(u32, Option<String>), String>;

/// Runs one op and logs its result line.
pub fn run(env: &Env, op: &Op) {
    let name = op.get("op").and_then(Value::as_str).unwrap_or("");
    let mut args = op.clone();
    args.remove("op");
    let shown = if args.is_empty() {
        String::new()
    } else {
        Value::Object(args).to_string()
    };
    let head = format!("{} {} {}({})", env.prefix, env.callback, name, shown);
    match name {
        "trap" => {
            abi::log_info(&format!("{head} -> trapping"));
            trap()
        }
        "panic" => {
            abi::log_info(&format!("{head} -> panicking"));
            panic!("probe panic: {}", str_arg(op, "msg", "boom"));
        }
        "loop" => {
            abi::log_info(&format!("{head} -> looping"));
            let mut n: u64 = 0;
            loop {
                // SAFETY: a volatile write to a live local keeps the loop from being removed.
                unsafe { std::ptr::write_volatile(&mut n, n.wrapping_add(1)) };
            }
        }
        _ => {}
    }
    let line = match dispatch(env, name, op) {
        Ok((status, Some(value))) => format!("{head} -> status={status} value={value}"),
        Ok((status, None)) => format!("{head} -> status={status}"),
        Err(e) => format!("{head} -> error={e}"),
    };
    abi::log_info(&line);
}

fn dispatch(env: &Env, name: &str, op: &Op) -> R {
    let bad = op.get("bad_ptr").and_then(Value::as_bool).unwrap_or(false);
    let inp = |b: &[u8]| -> (*const u8, usize) {
        if bad {
            (BAD_PTR as *const u8, b.len().max(8))
        } else if b.is_empty() {
            (null(), 0)
        } else {
            (b.as_ptr(), b.len())
        }
    };
    let how = str_arg(op, "as", "auto");
    let mut rp: *mut u8 = null_mut();
    let mut rl: usize = 0;
    // SAFETY (all blocks below): every pointer passed to the host is either a live local,
    // a live byte range of at least the given length, null with length 0, or BAD_PTR,
    // which the host must bounds-check and reject.
    match name {
        "log" => {
            let level = level_arg(op)?;
            let msg = bytes_arg(op, "msg")?;
            let (p, l) = inp(&msg);
            Ok((unsafe { abi::proxy_log(level, p, l) }, None))
        }
        "get_log_level" => {
            let mut v: u32 = 0;
            let s = unsafe { abi::proxy_get_log_level(&mut v) };
            Ok((s, ok_then(s, || v.to_string())))
        }
        "get_current_time" => {
            let mut v: u64 = 0;
            let s = unsafe { abi::proxy_get_current_time_nanoseconds(&mut v) };
            Ok((
                s,
                ok_then(s, || if v > 0 { "nonzero" } else { "zero" }.to_string()),
            ))
        }
        "set_tick_period" => {
            let ms = u32_arg(op, "ms", 0)?;
            Ok((unsafe { abi::proxy_set_tick_period_milliseconds(ms) }, None))
        }
        "get_buffer_bytes" => {
            let t = enum_arg(op, "buffer", BUFFERS)?;
            let start = u32_arg(op, "start", 0)?;
            let max = u32_arg(op, "max_size", u32::MAX)?;
            let s = unsafe { abi::proxy_get_buffer_bytes(t, start, max, &mut rp, &mut rl) };
            let b = take_bytes(rp, rl);
            Ok((s, ok_then(s, || render::value_as(&b, &how))))
        }
        "get_buffer_status" => {
            let t = enum_arg(op, "buffer", BUFFERS)?;
            let mut flags: u32 = 0;
            let s = unsafe { abi::proxy_get_buffer_status(t, &mut rl, &mut flags) };
            Ok((s, ok_then(s, || format!("len={rl},flags={flags}"))))
        }
        "set_buffer_bytes" => {
            let t = enum_arg(op, "buffer", BUFFERS)?;
            let start = u32_arg(op, "start", 0)?;
            let size = u32_arg(op, "size", u32::MAX)?;
            let data = bytes_arg(op, "data")?;
            let (p, l) = inp(&data);
            Ok((
                unsafe { abi::proxy_set_buffer_bytes(t, start, size, p, l) },
                None,
            ))
        }
        "get_header_map_pairs" => {
            let m = enum_arg(op, "map", MAPS)?;
            let s = unsafe { abi::proxy_get_header_map_pairs(m, &mut rp, &mut rl) };
            let b = take_bytes(rp, rl);
            let how = if how == "auto" { "pairs" } else { how.as_str() };
            Ok((s, ok_then(s, || render::value_as(&b, how))))
        }
        "set_header_map_pairs" => {
            let m = enum_arg(op, "map", MAPS)?;
            let data = match op.get("raw_hex") {
                Some(_) => bytes_arg(op, "raw")?,
                None => render::encode_pairs(&pairs_arg(op, "pairs")?),
            };
            let (p, l) = inp(&data);
            Ok((unsafe { abi::proxy_set_header_map_pairs(m, p, l) }, None))
        }
        "get_header_map_size" => {
            let m = enum_arg(op, "map", MAPS)?;
            let s = unsafe { abi::proxy_get_header_map_size(m, &mut rl) };
            Ok((s, ok_then(s, || rl.to_string())))
        }
        "get_header_map_value" => {
            let m = enum_arg(op, "map", MAPS)?;
            let key = bytes_arg(op, "key")?;
            let (kp, kl) = inp(&key);
            let s = unsafe { abi::proxy_get_header_map_value(m, kp, kl, &mut rp, &mut rl) };
            let b = take_bytes(rp, rl);
            Ok((s, ok_then(s, || render::value_as(&b, &how))))
        }
        "add_header_map_value" | "replace_header_map_value" => {
            let m = enum_arg(op, "map", MAPS)?;
            let key = bytes_arg(op, "key")?;
            let val = bytes_arg(op, "value")?;
            let (kp, kl) = inp(&key);
            let (vp, vl) = (val.as_ptr(), val.len());
            let s = unsafe {
                if name == "add_header_map_value" {
                    abi::proxy_add_header_map_value(m, kp, kl, vp, vl)
                } else {
                    abi::proxy_replace_header_map_value(m, kp, kl, vp, vl)
                }
            };
            Ok((s, None))
        }
        "remove_header_map_value" => {
            let m = enum_arg(op, "map", MAPS)?;
            let key = bytes_arg(op, "key")?;
            let (kp, kl) = inp(&key);
            Ok((
                unsafe { abi::proxy_remove_header_map_value(m, kp, kl) },
                None,
            ))
        }
        "get_property" => {
            let path = path_arg(op)?;
            let (pp, pl) = inp(&path);
            let s = unsafe { abi::proxy_get_property(pp, pl, &mut rp, &mut rl) };
            let b = take_bytes(rp, rl);
            Ok((s, ok_then(s, || render::value_as(&b, &how))))
        }
        "set_property" => {
            let path = path_arg(op)?;
            let val = bytes_arg(op, "value")?;
            let (pp, pl) = inp(&path);
            let s = unsafe { abi::proxy_set_property(pp, pl, val.as_ptr(), val.len()) };
            Ok((s, None))
        }
        "send_local_response" => {
            let status = u32_arg(op, "status", 200)?;
            let details = bytes_arg(op, "details")?;
            let body = bytes_arg(op, "body")?;
            let headers = render::encode_pairs(&pairs_arg(op, "headers")?);
            let grpc = i64_arg(op, "grpc_status", -1)? as i32;
            let (dp, dl) = inp(&details);
            let s = unsafe {
                abi::proxy_send_local_response(
                    status,
                    dp,
                    dl,
                    body.as_ptr(),
                    body.len(),
                    headers.as_ptr(),
                    headers.len(),
                    grpc,
                )
            };
            Ok((s, None))
        }
        "continue_stream" => {
            let t = enum_arg(op, "stream", STREAMS)?;
            Ok((unsafe { abi::proxy_continue_stream(t) }, None))
        }
        "close_stream" => {
            let t = enum_arg(op, "stream", STREAMS)?;
            Ok((unsafe { abi::proxy_close_stream(t) }, None))
        }
        "set_effective_context" => {
            let id = match op.get("context") {
                Some(Value::String(s)) if s == "root" => env.root_id,
                Some(Value::String(s)) if s == "self" => env.context_id,
                Some(Value::String(s)) => label(s).ok_or(format!("no saved context {s}"))?,
                Some(v) => v.as_u64().ok_or("context: id, root, self or a name")? as u32,
                None => env.context_id,
            };
            Ok((unsafe { abi::proxy_set_effective_context(id) }, None))
        }
        "done" => Ok((unsafe { abi::proxy_done() }, None)),
        "define_metric" => {
            let kind = enum_arg(op, "type", METRICS)?;
            let mname = bytes_arg(op, "name")?;
            let mut id: u32 = 0;
            let (np, nl) = inp(&mname);
            let s = unsafe { abi::proxy_define_metric(kind, np, nl, &mut id) };
            if s == 0 {
                let key = str_arg(op, "save", &String::from_utf8_lossy(&mname));
                save(&key, id);
            }
            Ok((s, ok_then(s, || id.to_string())))
        }
        "increment_metric" => {
            let id = id_arg(op, "metric")?;
            let d = i64_arg(op, "delta", 1)?;
            Ok((unsafe { abi::proxy_increment_metric(id, d) }, None))
        }
        "record_metric" => {
            let id = id_arg(op, "metric")?;
            let v = i64_arg(op, "value", 0)? as u64;
            Ok((unsafe { abi::proxy_record_metric(id, v) }, None))
        }
        "get_metric" => {
            let id = id_arg(op, "metric")?;
            let mut v: u64 = 0;
            let s = unsafe { abi::proxy_get_metric(id, &mut v) };
            Ok((s, ok_then(s, || v.to_string())))
        }
        "get_shared_data" => {
            let key = bytes_arg(op, "key")?;
            let mut cas: u32 = 0;
            let (kp, kl) = inp(&key);
            let s = unsafe { abi::proxy_get_shared_data(kp, kl, &mut rp, &mut rl, &mut cas) };
            let b = take_bytes(rp, rl);
            if s == 0 {
                STATE.with(|st| st.borrow_mut().last_cas = cas);
            }
            let shown_cas = if op.get("show_cas").and_then(Value::as_bool) == Some(false) {
                String::new()
            } else {
                format!(" cas={cas}")
            };
            Ok((
                s,
                ok_then(s, || format!("{}{shown_cas}", render::value_as(&b, &how))),
            ))
        }
        "set_shared_data" => {
            let key = bytes_arg(op, "key")?;
            let val = bytes_arg(op, "value")?;
            let cas = match op.get("cas") {
                Some(Value::String(s)) if s == "last" => STATE.with(|st| st.borrow().last_cas),
                Some(Value::String(s)) if s == "last+1" => {
                    STATE.with(|st| st.borrow().last_cas.wrapping_add(1))
                }
                _ => u32_arg(op, "cas", 0)?,
            };
            let (kp, kl) = inp(&key);
            let s = unsafe { abi::proxy_set_shared_data(kp, kl, val.as_ptr(), val.len(), cas) };
            Ok((s, None))
        }
        "register_shared_queue" => {
            let qname = bytes_arg(op, "name")?;
            let mut id: u32 = 0;
            let (np, nl) = inp(&qname);
            let s = unsafe { abi::proxy_register_shared_queue(np, nl, &mut id) };
            if s == 0 {
                save(&str_arg(op, "save", &String::from_utf8_lossy(&qname)), id);
            }
            Ok((s, ok_then(s, || id.to_string())))
        }
        "resolve_shared_queue" => {
            let vm = bytes_arg(op, "vm_id")?;
            let qname = bytes_arg(op, "name")?;
            let mut id: u32 = 0;
            let (np, nl) = inp(&qname);
            let s =
                unsafe { abi::proxy_resolve_shared_queue(vm.as_ptr(), vm.len(), np, nl, &mut id) };
            if s == 0 {
                save(&str_arg(op, "save", &String::from_utf8_lossy(&qname)), id);
            }
            Ok((s, ok_then(s, || id.to_string())))
        }
        "enqueue_shared_queue" => {
            let id = id_arg(op, "queue")?;
            let val = bytes_arg(op, "value")?;
            let (vp, vl) = inp(&val);
            Ok((unsafe { abi::proxy_enqueue_shared_queue(id, vp, vl) }, None))
        }
        "dequeue_shared_queue" => {
            let id = id_arg(op, "queue")?;
            let s = unsafe { abi::proxy_dequeue_shared_queue(id, &mut rp, &mut rl) };
            let b = take_bytes(rp, rl);
            Ok((s, ok_then(s, || render::value_as(&b, &how))))
        }
        "call_foreign_function" => {
            let fname = bytes_arg(op, "name")?;
            let fargs = bytes_arg(op, "args")?;
            let (np, nl) = inp(&fname);
            let s = unsafe {
                abi::proxy_call_foreign_function(
                    np,
                    nl,
                    fargs.as_ptr(),
                    fargs.len(),
                    &mut rp,
                    &mut rl,
                )
            };
            let b = take_bytes(rp, rl);
            Ok((s, ok_then(s, || render::value_as(&b, &how))))
        }
        "get_status" => {
            let mut code: u32 = 0;
            let s = unsafe { abi::proxy_get_status(&mut code, &mut rp, &mut rl) };
            let b = take_bytes(rp, rl);
            Ok((
                s,
                ok_then(s, || format!("code={code},message={}", render::bytes(&b))),
            ))
        }
        "http_call" => http_call(op),
        "grpc_call" | "grpc_stream" | "grpc_send" | "grpc_close" | "grpc_cancel" => {
            crate::grpc_ops::run(name, op, bad)
        }
        "grow" => {
            let pages = u32_arg(op, "pages", 1)? as usize;
            let old = memory_grow(pages);
            let shown = if old == usize::MAX {
                "-1".to_string()
            } else {
                "ok".to_string()
            };
            Ok((0, Some(shown)))
        }
        "print" => {
            // WASI fd_write to stdout (fd 1).
            println!("{}", str_arg(op, "msg", ""));
            Ok((0, None))
        }
        "eprint" => {
            // WASI fd_write to stderr (fd 2).
            eprintln!("{}", str_arg(op, "msg", ""));
            Ok((0, None))
        }
        "" => Err("missing op".to_string()),
        other => Err(format!("unknown op {other}")),
    }
}

/// `http_call` goes through the SDK so that the dispatcher knows the token and routes
/// `proxy_on_http_call_response` to the calling context.
fn http_call(op: &Op) -> R {
    let cluster = str_arg(op, "cluster", "upstream");
    let headers = pairs_arg(op, "headers")?;
    let trailers = pairs_arg(op, "trailers")?;
    let body = bytes_arg(op, "body")?;
    let timeout = u32_arg(op, "timeout_ms", 5000)?;
    let h: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect();
    let t: Vec<(String, String)> = trailers
        .iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect();
    let result = proxy_wasm::hostcalls::dispatch_http_call(
        &cluster,
        h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
        (!body.is_empty()).then_some(body.as_slice()),
        t.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
        Duration::from_millis(u64::from(timeout)),
    );
    match result {
        Ok(token) => {
            if let Some(name) = op.get("save").and_then(Value::as_str) {
                save(name, token);
            }
            Ok((0, Some(token.to_string())))
        }
        Err(status) => Ok((status as u32, None)),
    }
}

pub(crate) fn ok_then(status: u32, f: impl FnOnce() -> String) -> Option<String> {
    (status == 0).then(f)
}

const BUFFERS: &[&str] = &[
    "request_body",
    "response_body",
    "downstream_data",
    "upstream_data",
    "http_call_response_body",
    "grpc_receive_buffer",
    "vm_configuration",
    "plugin_configuration",
    "call_data",
];
const MAPS: &[&str] = &[
    "request_headers",
    "request_trailers",
    "response_headers",
    "response_trailers",
    "grpc_receive_initial_metadata",
    "grpc_receive_trailing_metadata",
    "http_call_response_headers",
    "http_call_response_trailers",
];
const STREAMS: &[&str] = &["request", "response", "downstream", "upstream"];
const METRICS: &[&str] = &["counter", "gauge", "histogram"];
const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "critical"];

fn enum_arg(op: &Op, key: &str, names: &[&str]) -> Result<u32, String> {
    match op.get(key) {
        Some(Value::String(s)) => names
            .iter()
            .position(|n| n == s)
            .map(|i| i as u32)
            .ok_or(format!("{key}: unknown name {s}")),
        Some(v) => v
            .as_u64()
            .map(|n| n as u32)
            .ok_or(format!("{key}: name or number")),
        None => Err(format!("{key}: required")),
    }
}

fn level_arg(op: &Op) -> Result<u32, String> {
    match op.get("level") {
        None => Ok(2),
        Some(_) => enum_arg(op, "level", LEVELS),
    }
}

pub(crate) fn u32_arg(op: &Op, key: &str, default: u32) -> Result<u32, String> {
    match op.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_u64()
            .map(|n| n as u32)
            .or_else(|| v.as_i64().map(|n| n as u32))
            .ok_or(format!("{key}: number")),
    }
}

fn i64_arg(op: &Op, key: &str, default: i64) -> Result<i64, String> {
    match op.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_u64().map(|n| n as i64))
            .ok_or(format!("{key}: number")),
    }
}

pub(crate) fn str_arg(op: &Op, key: &str, default: &str) -> String {
    op.get(key)
        .and_then(Value::as_str)
        .unwrap_or(default)
        .to_string()
}

/// A byte argument: `key` as a UTF-8 string, or `key_hex` as hex digits. Absent = empty.
pub(crate) fn bytes_arg(op: &Op, key: &str) -> Result<Vec<u8>, String> {
    if let Some(h) = op.get(&format!("{key}_hex")) {
        let h = h.as_str().ok_or(format!("{key}_hex: string"))?;
        return parse_hex(h).ok_or(format!("{key}_hex: bad hex"));
    }
    if let Some(Value::Object(rep)) = op.get(key) {
        // {"repeat": "ab", "times": 1000}: a large value without a large script.
        let unit = rep.get("repeat").and_then(Value::as_str).unwrap_or("x");
        let times = rep.get("times").and_then(Value::as_u64).unwrap_or(1) as usize;
        return Ok(unit.repeat(times).into_bytes());
    }
    Ok(op
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or("")
        .as_bytes()
        .to_vec())
}

fn parse_hex(h: &str) -> Option<Vec<u8>> {
    let h = h.as_bytes();
    if !h.len().is_multiple_of(2) {
        return None;
    }
    h.chunks(2)
        .map(|c| {
            let s = std::str::from_utf8(c).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}

pub(crate) fn pairs_arg(op: &Op, key: &str) -> Result<render::Pairs, String> {
    let Some(v) = op.get(key) else {
        return Ok(Vec::new());
    };
    let list = v
        .as_array()
        .ok_or(format!("{key}: list of [name, value]"))?;
    list.iter()
        .map(|p| match p.as_array().map(Vec::as_slice) {
            Some([Value::String(k), Value::String(v)]) => {
                Ok((k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            }
            _ => Err(format!("{key}: each entry is [name, value]")),
        })
        .collect()
}

/// A property path: `path` (list of segments, joined with NUL, plus a trailing NUL when
/// `trailing_nul` is true) or `path_raw` (a string used as is; write NUL as `\u0000`).
fn path_arg(op: &Op) -> Result<Vec<u8>, String> {
    if let Some(raw) = op.get("path_raw") {
        return Ok(raw.as_str().ok_or("path_raw: string")?.as_bytes().to_vec());
    }
    let segs = op
        .get("path")
        .and_then(Value::as_array)
        .ok_or("path: list of segments")?;
    let mut out = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(s.as_str().ok_or("path: segments are strings")?.as_bytes());
    }
    if op.get("trailing_nul").and_then(Value::as_bool) == Some(true) {
        out.push(0);
    }
    Ok(out)
}

pub(crate) fn id_arg(op: &Op, key: &str) -> Result<u32, String> {
    match op.get(key) {
        Some(Value::String(s)) => label(s).ok_or(format!("{key}: nothing saved as {s}")),
        Some(v) => v
            .as_u64()
            .map(|n| n as u32)
            .ok_or(format!("{key}: number or name")),
        None => Err(format!("{key}: required")),
    }
}

/// Executes `unreachable` (a trap); natively (for `cargo test --workspace`) aborts.
fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort()
}

/// Grows linear memory by `pages`; the old size in pages, or `usize::MAX` on failure. Natively
/// there is no linear memory: always fails.
fn memory_grow(pages: usize) -> usize {
    #[cfg(target_arch = "wasm32")]
    return core::arch::wasm32::memory_grow::<0>(pages);
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = pages;
        usize::MAX
    }
}
