//! probe: a proxy-wasm filter whose plugin configuration is a script of raw ABI calls.

mod abi;
mod grpc_ops;
mod network;
mod ops;
mod render;
mod script;

use proxy_wasm::traits::{Context, HttpContext, RootContext, StreamContext};
use proxy_wasm::types::{Action, ContextType};
use script::Script;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ptr::null_mut;
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> {
        Box::new(Root::new(context_id))
    });
}}

/// Reads a whole buffer through the raw ABI: `None` unless the host answers `Ok`.
fn read_buffer(buffer_type: u32) -> Option<Vec<u8>> {
    let mut p: *mut u8 = null_mut();
    let mut l: usize = 0;
    // SAFETY: out-pointers are live locals; the host hands over ownership of `l` bytes.
    let status = unsafe { abi::proxy_get_buffer_bytes(buffer_type, 0, u32::MAX, &mut p, &mut l) };
    let bytes = abi::take_bytes(p, l);
    (status == 0).then_some(bytes)
}

/// Callback bookkeeping shared by root and stream contexts.
struct Runner {
    id: u32,
    root_id: u32,
    script: Rc<Script>,
    calls: BTreeMap<String, u32>,
}

impl Runner {
    fn prefix(&self) -> String {
        match &self.script.tag {
            Some(t) => format!("probe:{t}"),
            None => "probe".to_string(),
        }
    }

    /// Logs the entry line, runs the step's ops and returns its `ret` value.
    fn call(&mut self, callback: &str, args: &str) -> Option<Value> {
        let n = {
            let c = self.calls.entry(callback.to_string()).or_insert(0);
            *c += 1;
            *c
        };
        let prefix = self.prefix();
        if self.script.trace {
            let sep = if args.is_empty() { "" } else { " " };
            abi::log_info(&format!("{prefix} {callback} ctx={}{sep}{args}", self.id));
        }
        let script = Rc::clone(&self.script);
        let step = script.step(callback, n)?;
        let env = ops::Env {
            prefix: &prefix,
            callback,
            context_id: self.id,
            root_id: self.root_id,
        };
        for op in &step.ops {
            ops::run(&env, op);
        }
        step.ret.clone()
    }

    fn action(&mut self, callback: &str, args: &str) -> Action {
        to_action(self.call(callback, args))
    }

    fn boolean(&mut self, callback: &str, args: &str) -> bool {
        match self.call(callback, args) {
            Some(Value::Bool(b)) => b,
            Some(Value::Number(n)) => n.as_u64() != Some(0),
            Some(Value::String(s)) => s != "false",
            _ => true,
        }
    }
}

/// Maps a step's `ret` to the value returned to the host.
fn to_action(ret: Option<Value>) -> Action {
    let raw: u32 = match ret {
        None => 0,
        Some(Value::String(s)) => match s.as_str() {
            "pause" | "stop" => 1,
            _ => 0,
        },
        Some(Value::Number(n)) => n.as_u64().map_or(0, |n| n as u32),
        Some(Value::Bool(b)) => u32::from(!b),
        Some(_) => 0,
    };
    match raw {
        0 => Action::Continue,
        1 => Action::Pause,
        // SAFETY: not sound in Rust's model (Action has only 0 and 1), but on wasm32 an
        // Action is returned to the host as a plain i32 and nothing in the SDK inspects it;
        // this is the only way to return the extended filter statuses (2, 3, 4, ...) that the
        // C++ and AssemblyScript SDKs can return. The `returns/` cases check it end to end.
        other => unsafe { std::mem::transmute::<u32, Action>(other) },
    }
}

/// The SDK reports both ends of a unary call through `on_grpc_call_response`: a message with
/// status 0 (`proxy_on_grpc_receive`) or a failure with its status (`proxy_on_grpc_close`).
fn grpc_call_response(prefix: &str, token: u32, status: u32, size: usize) -> (String, String) {
    if status == 0 {
        (
            format!("{prefix}on_grpc_receive"),
            format!("token={token} size={size}"),
        )
    } else {
        (
            format!("{prefix}on_grpc_close"),
            format!("token={token} status={status}"),
        )
    }
}

fn eos(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

struct Root {
    runner: RefCell<Runner>,
}

impl Root {
    fn new(id: u32) -> Self {
        // The C++ host answers plugin configuration during the root's creation; fall back to
        // the VM configuration, then to the empty script.
        let vm = read_buffer(6).and_then(|b| Script::parse(&b).ok());
        let plugin = read_buffer(7).and_then(|b| Script::parse(&b).ok());
        let script = match (vm, plugin) {
            (Some(v), Some(p)) => v.overlay(&p),
            (Some(s), None) | (None, Some(s)) => s,
            (None, None) => Script::empty(),
        };
        ops::save_label("root", id);
        let mut runner = Runner {
            id,
            root_id: id,
            script: Rc::new(script),
            calls: BTreeMap::new(),
        };
        runner.call("root_on_context_create", "");
        Root {
            runner: RefCell::new(runner),
        }
    }

    fn run(&self, callback: &str, args: &str) {
        self.runner.borrow_mut().call(callback, args);
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        self.runner.get_mut().call("root_on_delete", "");
    }
}

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        self.run(
            "root_on_http_call_response",
            &format!("token={token} headers={headers} body_size={body} trailers={trailers}"),
        );
    }

    fn on_done(&mut self) -> bool {
        self.runner.get_mut().boolean("root_on_done", "")
    }

    fn on_grpc_call_response(&mut self, token: u32, status: u32, size: usize) {
        let (key, args) = grpc_call_response("root_", token, status, size);
        self.run(&key, &args);
    }

    fn on_grpc_stream_initial_metadata(&mut self, token: u32, headers: u32) {
        self.run(
            "root_on_grpc_receive_initial_metadata",
            &format!("token={token} headers={headers}"),
        );
    }

    fn on_grpc_stream_message(&mut self, token: u32, size: usize) {
        self.run(
            "root_on_grpc_receive",
            &format!("token={token} size={size}"),
        );
    }

    fn on_grpc_stream_trailing_metadata(&mut self, token: u32, trailers: u32) {
        self.run(
            "root_on_grpc_receive_trailing_metadata",
            &format!("token={token} trailers={trailers}"),
        );
    }

    fn on_grpc_stream_close(&mut self, token: u32, status: u32) {
        self.run(
            "root_on_grpc_close",
            &format!("token={token} status={status}"),
        );
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, size: usize) -> bool {
        self.runner
            .get_mut()
            .boolean("on_vm_start", &format!("vm_configuration_size={size}"))
    }

    fn on_configure(&mut self, size: usize) -> bool {
        let runner = self.runner.get_mut();
        let vm = read_buffer(6).and_then(|b| Script::parse(&b).ok());
        match read_buffer(7).map(|b| Script::parse(&b)) {
            Some(Ok(p)) => {
                let s = match vm {
                    Some(v) => v.overlay(&p),
                    None => p,
                };
                runner.script = Rc::new(s);
            }
            Some(Err(e)) => {
                let msg = format!("{} configuration error: {e}", runner.prefix());
                // SAFETY: live byte range.
                unsafe { abi::proxy_log(4, msg.as_ptr(), msg.len()) };
                return false;
            }
            None => {}
        }
        runner.boolean("on_configure", &format!("plugin_configuration_size={size}"))
    }

    fn on_tick(&mut self) {
        self.run("on_tick", "");
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        self.run("on_queue_ready", &format!("queue={queue_id}"));
    }

    fn on_log(&mut self) {
        self.run("root_on_log", "");
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let (script, root_id) = {
            let r = self.runner.borrow();
            (Rc::clone(&r.script), r.id)
        };
        ops::save_label("stream", context_id);
        let mut runner = Runner {
            id: context_id,
            root_id,
            script,
            calls: BTreeMap::new(),
        };
        runner.call("on_context_create", &format!("root={root_id}"));
        Some(Box::new(Stream { runner }))
    }

    fn create_stream_context(&self, context_id: u32) -> Option<Box<dyn StreamContext>> {
        let (script, root_id) = {
            let r = self.runner.borrow();
            (Rc::clone(&r.script), r.id)
        };
        ops::save_label("stream", context_id);
        let mut runner = Runner {
            id: context_id,
            root_id,
            script,
            calls: BTreeMap::new(),
        };
        runner.call("on_context_create", &format!("root={root_id}"));
        Some(Box::new(network::NetStream { runner }))
    }

    fn get_type(&self) -> Option<ContextType> {
        if self.runner.borrow().script.network {
            Some(ContextType::StreamContext)
        } else {
            Some(ContextType::HttpContext)
        }
    }
}

struct Stream {
    runner: Runner,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.runner.call("on_delete", "");
    }
}

impl Context for Stream {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        self.runner.call(
            "on_http_call_response",
            &format!("token={token} headers={headers} body_size={body} trailers={trailers}"),
        );
    }

    fn on_done(&mut self) -> bool {
        self.runner.boolean("on_done", "")
    }

    fn on_grpc_call_response(&mut self, token: u32, status: u32, size: usize) {
        let (key, args) = grpc_call_response("", token, status, size);
        self.runner.call(&key, &args);
    }

    fn on_grpc_stream_initial_metadata(&mut self, token: u32, headers: u32) {
        self.runner.call(
            "on_grpc_receive_initial_metadata",
            &format!("token={token} headers={headers}"),
        );
    }

    fn on_grpc_stream_message(&mut self, token: u32, size: usize) {
        self.runner
            .call("on_grpc_receive", &format!("token={token} size={size}"));
    }

    fn on_grpc_stream_trailing_metadata(&mut self, token: u32, trailers: u32) {
        self.runner.call(
            "on_grpc_receive_trailing_metadata",
            &format!("token={token} trailers={trailers}"),
        );
    }

    fn on_grpc_stream_close(&mut self, token: u32, status: u32) {
        self.runner
            .call("on_grpc_close", &format!("token={token} status={status}"));
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, n: usize, end: bool) -> Action {
        self.runner.action(
            "on_request_headers",
            &format!("headers={n} end_of_stream={}", eos(end)),
        )
    }

    fn on_http_request_body(&mut self, size: usize, end: bool) -> Action {
        self.runner.action(
            "on_request_body",
            &format!("body_size={size} end_of_stream={}", eos(end)),
        )
    }

    fn on_http_request_trailers(&mut self, n: usize) -> Action {
        self.runner
            .action("on_request_trailers", &format!("trailers={n}"))
    }

    fn on_http_response_headers(&mut self, n: usize, end: bool) -> Action {
        self.runner.action(
            "on_response_headers",
            &format!("headers={n} end_of_stream={}", eos(end)),
        )
    }

    fn on_http_response_body(&mut self, size: usize, end: bool) -> Action {
        self.runner.action(
            "on_response_body",
            &format!("body_size={size} end_of_stream={}", eos(end)),
        )
    }

    fn on_http_response_trailers(&mut self, n: usize) -> Action {
        self.runner
            .action("on_response_trailers", &format!("trailers={n}"))
    }

    fn on_log(&mut self) {
        self.runner.call("on_log", "");
    }
}
