//! Delivering gRPC callout events to the module with Envoy's semantics: initial metadata
//! (map 4), messages (buffer 5) and trailing metadata (map 5) readable only during their
//! callback; `proxy_get_status` answering the close status and message during
//! `proxy_on_grpc_close` (the code stays afterwards, the message does not); a unary call ends
//! with its message or its close; nothing is delivered for a callout the module cancelled or
//! closed, or whose root context is gone.

use crate::services::GrpcEvent;
use crate::state::Deferred;
use crate::vm::{Vm, VmFailed};
use pwx_abi::grpc::TokenKind;
use pwx_abi::{BufferType, MapType};

impl Vm {
    /// Whether events for `token` would still reach the module (the embedder can stop reading
    /// a callout the module has abandoned).
    pub fn grpc_open(&self, token: u32) -> bool {
        self.store.data().grpc_callouts.contains_key(&token)
    }

    /// Delivers what arrived for gRPC callout `token` of root `root_id`.
    pub fn on_grpc_event(
        &mut self,
        root_id: u32,
        token: u32,
        event: GrpcEvent,
    ) -> Result<Vec<Deferred>, VmFailed> {
        let state = self.store.data_mut();
        let open = state
            .grpc_callouts
            .get(&token)
            .is_some_and(|c| c.root == root_id);
        if !open || state.root(root_id).is_none() {
            return Ok(Vec::new());
        }
        let is_call = TokenKind::of(token) == TokenKind::GrpcCall;
        let args = |n: usize| (root_id as i32, token as i32, n as i32);
        match event {
            // Envoy's unary client never reports metadata.
            GrpcEvent::InitialMetadata(_) | GrpcEvent::TrailingMetadata(_) if is_call => {}
            GrpcEvent::InitialMetadata(metadata) => {
                self.deliver_metadata(
                    root_id,
                    token,
                    MapType::GrpcReceiveInitialMetadata,
                    metadata,
                )?;
            }
            GrpcEvent::TrailingMetadata(metadata) => {
                self.deliver_metadata(
                    root_id,
                    token,
                    MapType::GrpcReceiveTrailingMetadata,
                    metadata,
                )?;
            }
            GrpcEvent::Message(message) => {
                let n = message.len();
                state.call_data = Some(message);
                state.call_data_kind = Some(BufferType::GrpcReceiveBuffer);
                let result = self.call(
                    "proxy_on_grpc_receive",
                    |c| c.on_grpc_receive.as_ref(),
                    root_id,
                    args(n),
                );
                let state = self.store.data_mut();
                state.call_data = None;
                state.call_data_kind = None;
                if is_call {
                    state.grpc_callouts.remove(&token);
                }
                result?;
            }
            GrpcEvent::Close { status, message } => {
                // Like Envoy, the stream counts as remotely closed during its close callback.
                if let Some(stream) = state.grpc_callouts.get_mut(&token) {
                    stream.remote_closed = true;
                }
                let exported = self.callbacks.on_grpc_close.is_some();
                if let (true, Some(root)) = (exported, state.root_mut(root_id)) {
                    root.status = (status, message);
                }
                let result = self.call(
                    "proxy_on_grpc_close",
                    |c| c.on_grpc_close.as_ref(),
                    root_id,
                    args(status as usize),
                );
                let state = self.store.data_mut();
                if let Some(root) = state.root_mut(root_id) {
                    root.status.1.clear();
                }
                // A call is over; a stream is forgotten once its local side is closed too.
                let forget = is_call
                    || state
                        .grpc_callouts
                        .get(&token)
                        .is_some_and(|stream| stream.local_closed);
                if forget {
                    state.grpc_callouts.remove(&token);
                }
                result?;
            }
        }
        Ok(self.take_deferred())
    }

    /// Calls the metadata callback of `map` (4 initial, 5 trailing) with the map readable.
    fn deliver_metadata(
        &mut self,
        root_id: u32,
        token: u32,
        map: MapType,
        metadata: crate::headers::HeaderMap,
    ) -> Result<(), VmFailed> {
        type Pick = fn(&crate::vm::Callbacks) -> Option<&crate::vm::F3>;
        let (name, callback): (_, Pick) = if map == MapType::GrpcReceiveInitialMetadata {
            ("proxy_on_grpc_receive_initial_metadata", |c| {
                c.on_grpc_receive_initial_metadata.as_ref()
            })
        } else {
            ("proxy_on_grpc_receive_trailing_metadata", |c| {
                c.on_grpc_receive_trailing_metadata.as_ref()
            })
        };
        let n = metadata.len() as i32;
        self.store.data_mut().grpc_metadata = Some((map, metadata));
        let result = self.call(name, callback, root_id, (root_id as i32, token as i32, n));
        self.store.data_mut().grpc_metadata = None;
        result.map(drop)
    }
}
