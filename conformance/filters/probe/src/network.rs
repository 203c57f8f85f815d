//! The probe's network (TCP) stream context: every network callback traced and scriptable.

use crate::{Runner, eos};
use proxy_wasm::traits::{Context, StreamContext};
use proxy_wasm::types::{Action, PeerType};

/// A connection's context under a root whose script says `"network": true`.
pub struct NetStream {
    pub runner: Runner,
}

impl Drop for NetStream {
    fn drop(&mut self) {
        self.runner.call("on_delete", "");
    }
}

impl Context for NetStream {
    fn on_http_call_response(&mut self, token: u32, headers: usize, body: usize, trailers: usize) {
        self.runner.call(
            "on_http_call_response",
            &format!("token={token} headers={headers} body_size={body} trailers={trailers}"),
        );
    }

    fn on_done(&mut self) -> bool {
        self.runner.boolean("on_done", "")
    }
}

impl StreamContext for NetStream {
    fn on_new_connection(&mut self) -> Action {
        self.runner.action("on_new_connection", "")
    }

    fn on_downstream_data(&mut self, size: usize, end: bool) -> Action {
        self.runner.action(
            "on_downstream_data",
            &format!("data_size={size} end_of_stream={}", eos(end)),
        )
    }

    fn on_downstream_close(&mut self, peer: PeerType) {
        self.runner.call(
            "on_downstream_connection_close",
            &format!("peer_type={}", peer as u32),
        );
    }

    fn on_upstream_data(&mut self, size: usize, end: bool) -> Action {
        self.runner.action(
            "on_upstream_data",
            &format!("data_size={size} end_of_stream={}", eos(end)),
        )
    }

    fn on_upstream_close(&mut self, peer: PeerType) {
        self.runner.call(
            "on_upstream_connection_close",
            &format!("peer_type={}", peer as u32),
        );
    }

    fn on_log(&mut self) {
        self.runner.call("on_log", "");
    }
}
