//! gRPC callouts in the host, without a network: the statuses Envoy returns for bad input
//! (unknown cluster, bad pointers, wrong or unknown tokens, send on a call, close twice), the
//! deferred actions a module's calls produce, and event delivery to the probe (message in
//! buffer 5, metadata in maps 4/5, `get_status` during `on_grpc_close`, nothing after cancel).
#![allow(clippy::unwrap_used)]

mod support;

use pwx_host::{
    Deferred, DeferredAction, Direction, GrpcEvent, HeaderMap, MemoryLog, Services, StreamInfo, Vm,
    VmConfig,
};
use std::collections::HashSet;
use std::sync::Arc;

struct Probe {
    vm: Vm,
    log: Arc<MemoryLog>,
    root: u32,
}

/// A probe VM whose process knows the cluster `grpc`, with `script` as its configuration.
fn probe(script: &str) -> Probe {
    let module = support::fixture_module("probe");
    let log = Arc::new(MemoryLog::default());
    let mut services = Services::new(log.clone());
    services.clusters = Arc::new(HashSet::from(["grpc".to_string()]));
    let mut vm = Vm::new(
        &module,
        VmConfig::default(),
        Arc::new(services),
        &support::test_limits(),
    )
    .unwrap();
    let root = vm.start_plugin(support::plugin("probe", script)).unwrap();
    Probe { vm, log, root }
}

fn request() -> HeaderMap {
    HeaderMap::from_pairs([(":method", "GET"), (":path", "/"), (":authority", "test")])
}

impl Probe {
    /// Runs `on_request_headers` of a new stream; returns what it deferred.
    fn request_headers(&mut self) -> Vec<Deferred> {
        let stream = self
            .vm
            .create_stream(self.root, StreamInfo::default())
            .unwrap();
        self.vm
            .on_headers(stream, Direction::Request, request(), true)
            .unwrap()
            .deferred
    }

    /// The result part (after ` -> `) of every op line logged so far, in order.
    fn results(&self) -> Vec<String> {
        self.log
            .messages()
            .iter()
            .filter_map(|l| l.rsplit_once(" -> ").map(|(_, r)| r.to_string()))
            .collect()
    }

    fn logged(&self, needle: &str) -> bool {
        self.log.messages().iter().any(|m| m.contains(needle))
    }
}

fn script(ops: &str, extra: &str) -> String {
    format!(r#"{{"trace": true, "on_request_headers": {{"ops": {ops}, "ret": "pause"}}{extra}}}"#)
}

#[test]
fn bad_input_gets_envoys_statuses() {
    let mut p = probe(&script(
        r#"[{"op": "grpc_call", "cluster": "nowhere", "raw": true},
            {"op": "grpc_stream", "cluster": "nowhere", "raw": true},
            {"op": "grpc_call", "cluster": "grpc", "bad_ptr": true},
            {"op": "grpc_stream", "cluster": "grpc", "bad_ptr": true},
            {"op": "grpc_call", "upstream_hex": "", "raw": true},
            {"op": "grpc_call", "grpc_service": {"cluster": "unconfigured"}, "raw": true},
            {"op": "grpc_send", "token": 6, "message": "x"},
            {"op": "grpc_send", "token": 5, "message": "x"},
            {"op": "grpc_send", "token": 4, "message": "x"},
            {"op": "grpc_close", "token": 5},
            {"op": "grpc_close", "token": 6},
            {"op": "grpc_close", "token": 4},
            {"op": "grpc_close", "token": 7},
            {"op": "grpc_cancel", "token": 9},
            {"op": "grpc_cancel", "token": 8}]"#,
        "",
    ));
    let deferred = p.request_headers();
    assert_eq!(
        p.results(),
        [
            "status=4", // unknown cluster name: ParseFailure
            "status=4",
            "status=6", // InvalidMemoryAccess
            "status=6",
            "status=2",  // an empty GrpcService has no target: BadArgument
            "status=10", // a GrpcService naming no configured cluster: InternalFailure
            "status=1",  // send on an unknown stream: NotFound
            "status=2",  // send on a call token: BadArgument
            "status=2",  // send on an HTTP token
            "status=1",  // close of an unknown call
            "status=1",  // close of an unknown stream
            "status=2",  // close of an HTTP token
            "status=2",  // close of a token of no kind
            "status=1",  // cancel of an unknown call
            "status=2",  // cancel of an HTTP token
        ]
    );
    assert!(
        deferred
            .iter()
            .all(|d| !matches!(d.action, DeferredAction::GrpcStart(_))),
        "nothing started: {deferred:?}"
    );
}

#[test]
fn calls_and_streams_are_numbered_and_deferred_as_envoy_does() {
    let mut p = probe(&script(
        r#"[{"op": "grpc_call", "cluster": "grpc", "service": "pkg.Svc", "method": "Get",
             "metadata": [["X-Md", "1"]], "message": "hi", "timeout_ms": 250},
            {"op": "grpc_stream", "grpc_service": {"cluster": "grpc", "authority": "api.example",
             "metadata": [["x-svc", "2"]]}, "metadata": [["x-md", "3"]], "save": "s"},
            {"op": "grpc_call", "cluster": "grpc", "timeout_ms": 0},
            {"op": "grpc_send", "token": "s", "message": "one"},
            {"op": "grpc_send", "token": "s", "message": "two", "end_stream": true},
            {"op": "grpc_close", "token": "s"},
            {"op": "grpc_close", "token": "s"},
            {"op": "grpc_send", "token": "s", "message": "late"},
            {"op": "grpc_cancel", "token": 9},
            {"op": "grpc_close", "token": 9}]"#,
        "",
    ));
    let deferred = p.request_headers();
    assert_eq!(
        p.results()
            .iter()
            .filter(|r| r.starts_with("status="))
            .map(String::as_str)
            .collect::<Vec<_>>(),
        [
            "status=0 value=5",
            "status=0 value=6",
            "status=0 value=9",
            "status=0",
            "status=0",
            "status=0",
            "status=0", // closing a half-closed stream again is Ok, as in Envoy
            "status=0", // a send after close is accepted and sends nothing
            "status=0",
            "status=1", // the call was cancelled: gone
        ]
    );
    let actions: Vec<DeferredAction> = deferred.into_iter().map(|d| d.action).collect();
    let DeferredAction::GrpcStart(call) = &actions[0] else {
        panic!("{actions:?}")
    };
    assert_eq!(
        (call.token, call.cluster.as_str(), call.authority.as_str()),
        (5, "grpc", "grpc")
    );
    assert_eq!(call.path(), b"/pkg.Svc/Get");
    assert_eq!(
        call.initial_metadata,
        vec![(b"x-md".to_vec(), b"1".to_vec())]
    );
    assert_eq!(call.message.as_deref(), Some(&b"hi"[..]));
    assert_eq!(call.timeout, Some(std::time::Duration::from_millis(250)));
    let DeferredAction::GrpcStart(stream) = &actions[1] else {
        panic!("{actions:?}")
    };
    assert_eq!(
        (stream.token, stream.authority.as_str()),
        (6, "api.example")
    );
    assert_eq!(
        stream.initial_metadata,
        vec![
            (b"x-svc".to_vec(), b"2".to_vec()),
            (b"x-md".to_vec(), b"3".to_vec())
        ]
    );
    assert_eq!((stream.message.clone(), stream.timeout), (None, None));
    let DeferredAction::GrpcStart(untimed) = &actions[2] else {
        panic!("{actions:?}")
    };
    assert_eq!(untimed.timeout, Some(std::time::Duration::ZERO));
    assert_eq!(
        actions[3..],
        [
            DeferredAction::GrpcSend {
                token: 6,
                message: b"one".to_vec(),
                end_stream: false
            },
            DeferredAction::GrpcSend {
                token: 6,
                message: b"two".to_vec(),
                end_stream: true
            },
            DeferredAction::GrpcHalfClose { token: 6 },
            DeferredAction::GrpcCancel { token: 9 },
        ]
    );
}

#[test]
fn a_unary_message_arrives_in_buffer_5_and_ends_the_call() {
    let mut p = probe(&script(
        r#"[{"op": "grpc_call", "cluster": "grpc", "message": "hi"}]"#,
        r#", "on_grpc_receive": [
              {"op": "get_buffer_bytes", "buffer": "grpc_receive_buffer"},
              {"op": "get_header_map_pairs", "map": "grpc_receive_initial_metadata"}]"#,
    ));
    p.request_headers();
    let root = p.root;
    p.vm.on_grpc_event(root, 5, GrpcEvent::Message(b"echo:hi".to_vec()))
        .unwrap();
    assert!(p.logged("on_grpc_receive ctx=2 token=5 size=7"));
    assert!(p.logged(r#"-> status=0 value="echo:hi""#));
    // Metadata maps are not readable while a message is delivered.
    assert!(p.logged(
        "get_header_map_pairs({\"map\":\"grpc_receive_initial_metadata\"}) -> status=0 value=[]"
    ));
    // The call is over: a late event reaches nobody.
    assert!(!p.vm.grpc_open(5));
    let before = p.log.messages().len();
    p.vm.on_grpc_event(
        root,
        5,
        GrpcEvent::Close {
            status: 14,
            message: b"late".to_vec(),
        },
    )
    .unwrap();
    assert_eq!(p.log.messages().len(), before);
}

#[test]
fn a_stream_delivers_metadata_messages_and_its_close_status() {
    let mut p = probe(&script(
        r#"[{"op": "grpc_stream", "cluster": "grpc", "save": "s"}]"#,
        r#", "on_grpc_receive_initial_metadata": [
              {"op": "get_header_map_value", "map": "grpc_receive_initial_metadata", "key": "x-server"},
              {"op": "get_header_map_value", "map": "grpc_receive_trailing_metadata", "key": "x-server"}],
            "on_grpc_receive_trailing_metadata": [
              {"op": "get_header_map_value", "map": "grpc_receive_trailing_metadata", "key": "x-trailer"}],
            "on_grpc_close": [{"op": "get_status"}, {"op": "grpc_close", "token": "s"}],
            "on_tick": [{"op": "get_status"}]"#,
    ));
    p.request_headers();
    let root = p.root;
    let metadata = |k: &str, v: &str| HeaderMap::from_pairs([(k, v)]);
    p.vm.on_grpc_event(
        root,
        6,
        GrpcEvent::InitialMetadata(metadata("x-server", "s1")),
    )
    .unwrap();
    p.vm.on_grpc_event(root, 6, GrpcEvent::Message(b"m".to_vec()))
        .unwrap();
    p.vm.on_grpc_event(
        root,
        6,
        GrpcEvent::TrailingMetadata(metadata("x-trailer", "t1")),
    )
    .unwrap();
    p.vm.on_grpc_event(
        root,
        6,
        GrpcEvent::Close {
            status: 5,
            message: b"gone".to_vec(),
        },
    )
    .unwrap();
    let results = p.results();
    assert_eq!(
        results,
        [
            "status=0 value=6",
            "status=0 value=\"s1\"",
            "status=2", // the trailing map does not exist yet
            "status=0 value=\"t1\"",
            "status=0 value=code=5,message=\"gone\"",
            "status=0", // close after the remote close: the stream is forgotten
        ]
    );
    assert!(p.logged("on_grpc_receive_initial_metadata ctx=2 token=6 headers=1"));
    assert!(p.logged("on_grpc_receive ctx=2 token=6 size=1"));
    assert!(p.logged("on_grpc_receive_trailing_metadata ctx=2 token=6 trailers=1"));
    assert!(p.logged("on_grpc_close ctx=2 token=6 status=5"));
    assert!(!p.vm.grpc_open(6));
    // After the callback the code stays, the message does not (Envoy clears it).
    p.vm.on_tick(root).unwrap();
    assert!(p.logged("on_tick get_status() -> status=0 value=code=5,message=\"\""));
}

#[test]
fn nothing_arrives_after_cancel_or_root_deletion() {
    let mut p = probe(&script(
        r#"[{"op": "grpc_stream", "cluster": "grpc"}, {"op": "grpc_call", "cluster": "grpc"},
            {"op": "grpc_cancel", "token": 6}]"#,
        "",
    ));
    p.request_headers();
    let root = p.root;
    let before = p.log.messages().len();
    p.vm.on_grpc_event(root, 6, GrpcEvent::Message(b"x".to_vec()))
        .unwrap();
    assert_eq!(p.log.messages().len(), before, "cancelled stream");
    assert!(p.vm.grpc_open(5));
    // Events for another root's token are not delivered either.
    p.vm.on_grpc_event(root + 100, 5, GrpcEvent::Message(b"x".to_vec()))
        .unwrap();
    assert_eq!(p.log.messages().len(), before);
    p.vm.delete_root(root).unwrap();
    assert!(
        !p.vm.grpc_open(5),
        "a deleted root's callouts are cancelled"
    );
}
