//! Hostcall statuses and data returned to the module, checked with hand-written WAT probes.
//! Each probe logs a status as one character: '0' Ok, '1' NotFound, '2' BadArgument,
//! '6' InvalidMemoryAccess, …
#![allow(clippy::unwrap_used)] // test code

mod support;

use pwx_host::{Direction, Flow, HeaderMap, StreamInfo};
use support::data::*;

fn request_headers() -> HeaderMap {
    HeaderMap::from_pairs([
        (":method", "GET"),
        (":path", "/p?q=1"),
        (":authority", "example"),
        ("x-present", "value"),
    ])
}

/// A probe VM with its plugin started and one stream whose request headers have been run.
fn started(
    on_request_headers: &str,
    extra: &str,
    limits: &pwx_host::Limits,
) -> (support::TestVm, u32, pwx_host::Step<HeaderMap>) {
    let module =
        support::load_wat(&support::probe(on_request_headers, extra)).expect("probe loads");
    let mut t = support::vm_with(&module, Default::default(), limits);
    let root = t.vm.start_plugin(support::plugin("probe", "")).unwrap();
    let stream = t.vm.create_stream(root, StreamInfo::default()).unwrap();
    let step =
        t.vm.on_headers(stream, Direction::Request, request_headers(), false)
            .unwrap();
    (t, stream, step)
}

/// Runs `on_request_headers` of a probe once and returns its log messages.
fn run(on_request_headers: &str) -> (Vec<String>, Flow<HeaderMap>) {
    let (t, _, step) = started(on_request_headers, "", &support::test_limits());
    (t.log.messages(), step.flow)
}

#[test]
fn header_value_found_missing_and_bad_map() {
    let body = format!(
        "(call $report (call $get_value (i32.const 0) (i32.const {}) (i32.const {}) (i32.const 200) (i32.const 204)))
         (call $say (i32.load (i32.const 200)) (i32.load (i32.const 204)))
         (call $report (call $get_value (i32.const 0) (i32.const {}) (i32.const {}) (i32.const 200) (i32.const 204)))
         (call $report (call $get_value (i32.const 9) (i32.const {}) (i32.const {}) (i32.const 200) (i32.const 204)))
         (call $report (call $get_value (i32.const 2) (i32.const {}) (i32.const {}) (i32.const 200) (i32.const 204)))
         (i32.const 0)",
        PRESENT.0, PRESENT.1, MISSING.0, MISSING.1, PRESENT.0, PRESENT.1, PRESENT.0, PRESENT.1
    );
    let (log, flow) = run(&body);
    // present → Ok + value; missing → NotFound; map type 9 → BadArgument; response headers in
    // the request phase → BadArgument.
    assert_eq!(log, ["0", "value", "1", "2", "2"]);
    assert!(matches!(flow, Flow::Continue(_)));
}

#[test]
fn out_of_bounds_pointers_are_invalid_memory_access() {
    let body = "(call $report (call $log (i32.const 2) (i32.const 0x7fffff00) (i32.const 400)))
         (call $report (call $get_value (i32.const 0) (i32.const 16) (i32.const 9) (i32.const 0x7ffffff0) (i32.const 204)))
         (call $report (call $get_value (i32.const 0) (i32.const -1) (i32.const 9) (i32.const 200) (i32.const 204)))
         (i32.const 0)";
    let (log, _) = run(body);
    assert_eq!(log, ["6", "6", "6"]);
}

#[test]
fn empty_results_do_not_call_the_allocator() {
    // Request body in the header phase is empty: Ok with ptr 0 / len 0 and no allocation.
    let body = "(i32.store (i32.const 200) (i32.const 77))
         (call $report (call $get_buffer (i32.const 0) (i32.const 0) (i32.const -1) (i32.const 200) (i32.const 204)))
         (call $report (i32.load (i32.const 200)))
         (call $say_allocs)
         (call $report (call $get_value (i32.const 0) (i32.const 16) (i32.const 9) (i32.const 200) (i32.const 204)))
         (call $say_allocs)
         (call $report (i32.load (i32.const 204)))
         (i32.const 0)";
    let (log, _) = run(body);
    // Ok, pointer 0, no allocation; then one allocation of exactly 5 bytes for "value".
    assert_eq!(log, ["0", "0", "0", "0", "1", "5"]);
}

#[test]
fn properties_from_the_stream_and_the_plugin() {
    let body = format!(
        "(call $report (call $get_property (i32.const {}) (i32.const {}) (i32.const 200) (i32.const 204)))
         (call $say (i32.load (i32.const 200)) (i32.load (i32.const 204)))
         (call $report (call $get_property (i32.const {}) (i32.const {}) (i32.const 200) (i32.const 204)))
         (call $say (i32.load (i32.const 200)) (i32.load (i32.const 204)))
         (call $report (call $get_property (i32.const {}) (i32.const 7) (i32.const 200) (i32.const 204)))
         (i32.const 0)",
        REQUEST_PATH.0, REQUEST_PATH.1, PLUGIN_NAME.0, PLUGIN_NAME.1, REQUEST_PATH.0
    );
    let (log, _) = run(&body);
    // request.path, plugin_name, and the group "request" alone → SerializationFailure (3).
    assert_eq!(log, ["0", "/p?q=1", "0", "probe", "3"]);
}

#[test]
fn local_reply_forces_a_stop_and_is_deferred() {
    let body = "(call $report (call $local_response (i32.const 403) (i32.const 16) (i32.const 9) (i32.const 67) (i32.const 8) (i32.const 0) (i32.const 0) (i32.const -1)))
         (i32.const 0)";
    let (t, stream, step) = started(body, "", &support::test_limits());
    // The module returned Continue, but a local reply forces a stop.
    assert_eq!(step.flow, Flow::Stop);
    let reply = step.local_reply(stream).expect("local reply deferred");
    assert_eq!(reply.status, 403);
    assert_eq!(reply.body, b"bodytext");
    assert_eq!(reply.details, "x-present");
    assert_eq!(reply.grpc_status, None);
    assert_eq!(t.log.messages(), ["0"]);
}

#[test]
fn header_map_is_unavailable_after_continue() {
    // on_request_body asks for a request header: Envoy has dropped its pointer → BadArgument.
    let extra = "(func (export \"proxy_on_request_body\") (param $ctx i32) (param $size i32) (param $eos i32) (result i32)
        (call $report (call $get_value (i32.const 0) (i32.const 16) (i32.const 9) (i32.const 200) (i32.const 204)))
        (call $report (call $get_buffer (i32.const 0) (i32.const 2) (i32.const 3) (i32.const 200) (i32.const 204)))
        (call $say (i32.load (i32.const 200)) (i32.load (i32.const 204)))
        (i32.const 1))";
    let (mut t, stream, _) = started("(i32.const 0)", extra, &support::test_limits());
    // Pause buffers the body: the second callback sees both chunks.
    let first =
        t.vm.on_body(stream, Direction::Request, b"abcdef", false)
            .unwrap();
    assert_eq!(first.flow, Flow::Stop);
    t.vm.on_body(stream, Direction::Request, b"ghi", true)
        .unwrap();
    assert_eq!(t.log.messages(), ["2", "0", "cde", "2", "0", "cde"]);
}

#[test]
fn body_buffer_limit_overflows() {
    let extra =
        "(func (export \"proxy_on_request_body\") (param i32 i32 i32) (result i32) (i32.const 1))";
    let limits = pwx_host::Limits {
        request_buffer_bytes: 10,
        ..support::test_limits()
    };
    let (mut t, stream, _) = started("(i32.const 0)", extra, &limits);
    assert_eq!(
        t.vm.on_body(stream, Direction::Request, b"123456", false)
            .unwrap()
            .flow,
        Flow::Stop
    );
    assert_eq!(
        t.vm.on_body(stream, Direction::Request, b"123456", false)
            .unwrap()
            .flow,
        Flow::BufferOverflow
    );
}

#[test]
fn set_buffer_bytes_edits_the_body() {
    // Replace everything with "bodytext", then append "value".
    let extra = "(func (export \"proxy_on_request_body\") (param i32 i32 i32) (result i32)
        (call $report (call $set_buffer (i32.const 0) (i32.const 0) (i32.const -1) (i32.const 67) (i32.const 8)))
        (call $report (call $set_buffer (i32.const 0) (i32.const -1) (i32.const 0) (i32.const 26) (i32.const 5)))
        (call $report (call $set_buffer (i32.const 0) (i32.const 3) (i32.const 1) (i32.const 26) (i32.const 5)))
        (call $report (call $set_buffer (i32.const 6) (i32.const 0) (i32.const 0) (i32.const 26) (i32.const 5)))
        (i32.const 0))";
    let (mut t, stream, _) = started("(i32.const 0)", extra, &support::test_limits());
    let step =
        t.vm.on_body(stream, Direction::Request, b"original", true)
            .unwrap();
    assert_eq!(step.flow, Flow::Continue(b"bodytextvalue".to_vec()));
    // middle splice → BadArgument; the buffer type 6 (VM configuration) is read-only → BadArgument.
    assert_eq!(t.log.messages(), ["0", "0", "2", "2"]);
}

#[test]
fn header_edits_reach_the_embedder() {
    let body = "(call $report (call $add_value (i32.const 0) (i32.const 32) (i32.const 9) (i32.const 26) (i32.const 5)))
         (call $report (call $replace_value (i32.const 0) (i32.const 16) (i32.const 9) (i32.const 67) (i32.const 8)))
         (i32.const 0)";
    let (log, flow) = run(body);
    assert_eq!(log, ["0", "0"]);
    let Flow::Continue(headers) = flow else {
        panic!("continues")
    };
    assert_eq!(headers.get_str("x-missing"), Some("value"));
    assert_eq!(headers.get_str("x-present"), Some("bodytext"));
}
