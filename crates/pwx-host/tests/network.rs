//! Network (TCP) filters through the host: the tcp-guard example (Rust SDK) and the probe's
//! network context, driven callback by callback as the data plane drives them, checked against
//! what Envoy 1.40 does (conformance/cases/tcp/).
#![allow(clippy::unwrap_used)] // test code

mod support;

use pwx_abi::PeerType;
use pwx_host::{DeferredAction, Flow, NetDirection, StreamInfo};

fn info() -> StreamInfo {
    StreamInfo {
        source: Some("127.0.0.1:40000".parse().unwrap()),
        destination: Some("127.0.0.1:10000".parse().unwrap()),
        connection_id: Some(7),
        ..StreamInfo::default()
    }
}

#[test]
fn tcp_guard_counts_bytes_and_logs_in_envoys_close_order() {
    let module = support::fixture_module("tcp-guard");
    let mut t = support::vm(&module);
    let root =
        t.vm.start_plugin(support::plugin("tcp-guard", r#"{"pattern":"DROP TABLE"}"#))
            .unwrap();
    let conn = t.vm.create_connection(root, info()).unwrap();
    assert_eq!(
        t.vm.on_new_connection(conn).unwrap().flow,
        Flow::Continue(())
    );
    let step =
        t.vm.on_connection_data(conn, NetDirection::Downstream, b"select 1;".to_vec(), false)
            .unwrap();
    assert_eq!(step.flow, Flow::Continue(b"select 1;".to_vec()));
    let step =
        t.vm.on_connection_data(conn, NetDirection::Upstream, b"ok\n".to_vec(), true)
            .unwrap();
    assert_eq!(step.flow, Flow::Continue(b"ok\n".to_vec()));
    t.vm.on_connection_close(conn, NetDirection::Upstream, PeerType::Unknown)
        .unwrap();
    t.vm.on_connection_close(conn, NetDirection::Downstream, PeerType::Remote)
        .unwrap();
    t.vm.finish_connection(conn).unwrap();
    assert_eq!(t.vm.context_count(), 1, "only the root is left");
    let logs = t.log.messages();
    let tail: Vec<&str> = logs
        .iter()
        .rev()
        .take(2)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "tcp-guard: connection closed by the client",
            "tcp-guard: client 127.0.0.1:40000: 9 bytes from the client, 3 bytes from the upstream",
        ]
    );
}

#[test]
fn tcp_guard_closes_on_a_pattern_split_across_reads() {
    let module = support::fixture_module("tcp-guard");
    let mut t = support::vm(&module);
    let root =
        t.vm.start_plugin(support::plugin("tcp-guard", r#"{"pattern":"DROP TABLE"}"#))
            .unwrap();
    let conn = t.vm.create_connection(root, info()).unwrap();
    t.vm.on_new_connection(conn).unwrap();
    let first =
        t.vm.on_connection_data(conn, NetDirection::Downstream, b"x; DROP".to_vec(), false)
            .unwrap();
    assert!(first.deferred.is_empty());
    let second =
        t.vm.on_connection_data(conn, NetDirection::Downstream, b" TABLE t".to_vec(), false)
            .unwrap();
    assert_eq!(
        second.flow,
        Flow::Stop,
        "the bytes with the pattern are held"
    );
    assert!(
        second
            .deferred
            .iter()
            .any(|d| d.context_id == conn && d.action == DeferredAction::CloseDownstream),
        "{:?}",
        second.deferred
    );
    // The held bytes are what the data plane would drop when it closes.
    assert_eq!(
        t.vm.take_held(conn, NetDirection::Downstream),
        b" TABLE t".to_vec()
    );
}

/// A probe script run on one connection; returns the probe's log lines.
fn probe_connection(script: &str, drive: impl FnOnce(&mut pwx_host::Vm, u32)) -> Vec<String> {
    let module = support::fixture_module("probe");
    let mut t = support::vm(&module);
    let root = t.vm.start_plugin(support::plugin("probe", script)).unwrap();
    let conn = t.vm.create_connection(root, info()).unwrap();
    drive(&mut t.vm, conn);
    t.log.messages()
}

#[test]
fn network_buffers_follow_envoy() {
    let script = r#"{"network": true, "trace": false,
      "on_downstream_data": [
        {"op":"set_buffer_bytes","buffer":"downstream_data","start":0,"size":0,"value":"<"},
        {"op":"set_buffer_bytes","buffer":"downstream_data","start":100,"size":0,"value":">"},
        {"op":"set_buffer_bytes","buffer":"downstream_data","start":2,"size":1,"value":"m"},
        {"op":"set_buffer_bytes","buffer":"downstream_data","start":0,"size":2,"value":"R"},
        {"op":"get_buffer_bytes","buffer":"downstream_data"},
        {"op":"get_buffer_bytes","buffer":"upstream_data"},
        {"op":"set_buffer_bytes","buffer":"upstream_data","start":0,"size":0,"value":"x"},
        {"op":"set_buffer_bytes","buffer":"request_body","start":0,"size":0,"value":"x"},
        {"op":"get_header_map_size","map":"request_headers"},
        {"op":"continue_stream","stream":"upstream"}]}"#;
    let mut forwarded = Vec::new();
    let logs = probe_connection(script, |vm, conn| {
        vm.on_new_connection(conn).unwrap();
        let step = vm
            .on_connection_data(conn, NetDirection::Downstream, b"abcdef".to_vec(), false)
            .unwrap();
        if let Flow::Continue(data) = step.flow {
            forwarded = data;
        }
    });
    let statuses: Vec<&str> = logs.iter().filter_map(|l| l.split(" -> ").nth(1)).collect();
    assert_eq!(
        statuses,
        [
            "status=0",
            "status=0",
            "status=2",
            "status=0",
            "status=0 value=\"cdef\"",
            "status=0 value=\"\"",
            "status=2",
            "status=2",
            "status=2",
            "status=12"
        ],
        "{logs:#?}"
    );
    assert_eq!(forwarded, b"cdef", "only the drained prefix took effect");
}

#[test]
fn properties_and_filter_state_in_a_network_context() {
    let script = r#"{"network": true, "trace": false,
      "on_new_connection": [
        {"op":"get_property","path":["source","address"]},
        {"op":"get_property","path":["upstream","address"]},
        {"op":"call_foreign_function","name":"set_envoy_filter_state",
         "args_hex":"0a17656e766f792e7463705f70726f78792e636c75737465721201621802"}],
      "on_downstream_data": [{"op":"get_property","path":["upstream","address"]}]}"#;
    let mut chosen = None;
    let logs = probe_connection(script, |vm, conn| {
        vm.on_new_connection(conn).unwrap();
        chosen = vm.connection_filter_state(conn, b"envoy.tcp_proxy.cluster");
        vm.set_connection_upstream(conn, "b", Some("127.0.0.1:9000".parse().unwrap()), None);
        vm.on_connection_data(conn, NetDirection::Downstream, b"x".to_vec(), false)
            .unwrap();
    });
    assert_eq!(chosen.as_deref(), Some(&b"b"[..]));
    let statuses: Vec<&str> = logs.iter().filter_map(|l| l.split(" -> ").nth(1)).collect();
    assert_eq!(
        statuses,
        [
            "status=0 value=\"127.0.0.1:40000\"",
            "status=1",
            "status=0 value=\"\"",
            "status=0 value=\"127.0.0.1:9000\""
        ],
        "{logs:#?}"
    );
}

#[test]
fn pause_holds_the_bytes_until_taken_and_a_trap_fails_the_vm() {
    let script = r#"{"network": true, "trace": false,
      "on_downstream_data#1": {"ops": [], "ret": "pause"},
      "on_downstream_data#2": ["trap"]}"#;
    probe_connection(script, |vm, conn| {
        vm.on_new_connection(conn).unwrap();
        let step = vm
            .on_connection_data(conn, NetDirection::Downstream, b"wait".to_vec(), false)
            .unwrap();
        assert_eq!(step.flow, Flow::Stop);
        let mut held = vm.take_held(conn, NetDirection::Downstream);
        assert_eq!(held, b"wait");
        held.extend_from_slice(b"more");
        assert!(
            vm.on_connection_data(conn, NetDirection::Downstream, held, false)
                .is_err()
        );
        assert!(vm.failure().is_some());
        assert!(
            vm.finish_connection(conn).is_err(),
            "a failed VM gets no more calls"
        );
    });
}
