//! gRPC callouts: `proxy_grpc_call`, `proxy_grpc_stream`, `proxy_grpc_send`,
//! `proxy_grpc_close` and `proxy_grpc_cancel`, validated as Envoy validates them. The host does
//! no I/O: starting, sending, half-closing and cancelling are deferred actions for the embedder,
//! and what arrives comes back through [`Vm::on_grpc_event`](crate::Vm::on_grpc_event).

use super::enter;
use crate::memory::{self, HostResult};
use crate::services::GrpcCalloutRequest;
use crate::state::{DeferredAction, GrpcCallout, HostState};
use pwx_abi::grpc::{GrpcService, GrpcTarget, TokenKind};
use pwx_abi::{HostCall, Status};
use std::time::Duration;
use wasmtime::Caller;

/// Where a callout goes, resolved from the `upstream` argument.
struct Upstream {
    cluster: String,
    authority: String,
    initial_metadata: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Envoy's resolution of `upstream`: a serialized `GrpcService`, or else a cluster name (an
/// unknown one is `ParseFailure`). A `GrpcService` without a target cannot make a client
/// (`BadArgument`, where Envoy itself aborts); Google gRPC does not exist in pwx and a cluster
/// that is not configured cannot be reached: both are refused as Envoy refuses a call it cannot
/// start (`InternalFailure`).
fn resolve(state: &HostState, upstream: &[u8]) -> Result<Upstream, Status> {
    let Ok(service) = GrpcService::decode(upstream) else {
        let cluster = String::from_utf8_lossy(upstream).into_owned();
        if !state.services.clusters.has_cluster(&cluster) {
            return Err(Status::ParseFailure);
        }
        return Ok(Upstream {
            authority: cluster.clone(),
            cluster,
            initial_metadata: Vec::new(),
        });
    };
    match service.target {
        GrpcTarget::Unset => Err(Status::BadArgument),
        GrpcTarget::GoogleGrpc => {
            tracing::warn!(
                "proxy_grpc_call/stream: a GrpcService with google_grpc cannot be served (pwx \
                 has no Google gRPC client); use envoy_grpc with a cluster name"
            );
            Err(Status::InternalFailure)
        }
        GrpcTarget::EnvoyGrpc {
            cluster_name,
            authority,
        } => {
            if !state.services.clusters.has_cluster(&cluster_name) {
                tracing::warn!(
                    cluster = %cluster_name,
                    "proxy_grpc_call/stream: the GrpcService names a cluster that is not configured"
                );
                return Err(Status::InternalFailure);
            }
            Ok(Upstream {
                authority: if authority.is_empty() {
                    cluster_name.clone()
                } else {
                    authority
                },
                cluster: cluster_name,
                initial_metadata: service
                    .initial_metadata
                    .into_iter()
                    .map(|(k, v)| (k.to_ascii_lowercase().into_bytes(), v))
                    .collect(),
            })
        }
    }
}

/// The next token of `kind` for this VM (per VM, as the C++ host counts), skipping any still in
/// use after the counter wraps.
fn next_token(state: &mut HostState, kind: TokenKind) -> u32 {
    let last = match kind {
        TokenKind::GrpcCall => &mut state.last_grpc_call_token,
        _ => &mut state.last_grpc_stream_token,
    };
    loop {
        *last = last.wrapping_add(4);
        if !state.grpc_callouts.contains_key(last) {
            return *last;
        }
    }
}

/// The arguments common to calls and streams, read from guest memory.
struct StartArgs {
    upstream: Vec<u8>,
    service: Vec<u8>,
    method: Vec<u8>,
    metadata: Vec<u8>,
}

/// Validates and registers a call or stream; defers its start. Envoy's order: memory, then the
/// upstream, then the token is written (a token that cannot be written starts nothing here,
/// where Envoy would start a callout the module cannot know).
fn start(
    caller: &mut Caller<'_, HostState>,
    kind: TokenKind,
    args: StartArgs,
    message: Option<Vec<u8>>,
    timeout: Option<Duration>,
    ret_token: i32,
) -> HostResult {
    let state = caller.data();
    let upstream = match resolve(state, &args.upstream) {
        Ok(upstream) => upstream,
        Err(status) => return Ok(status.as_i32()),
    };
    let Some(root) = state.root_of(state.effective) else {
        return Ok(Status::InternalFailure.as_i32());
    };
    let token = next_token(caller.data_mut(), kind);
    if let Err(status) = memory::write_u32(caller, ret_token, token) {
        return Ok(status.as_i32());
    }
    // Malformed pairs are an empty list, as Envoy parses them.
    let module_metadata = pwx_abi::pairs::decode(&args.metadata).unwrap_or_default();
    let mut initial_metadata = upstream.initial_metadata;
    initial_metadata.extend(
        module_metadata
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_vec())),
    );
    let request = GrpcCalloutRequest {
        token,
        root_context_id: root,
        cluster: upstream.cluster,
        authority: upstream.authority,
        service: args.service,
        method: args.method,
        initial_metadata,
        message,
        timeout,
    };
    let state = caller.data_mut();
    state.grpc_callouts.insert(
        token,
        GrpcCallout {
            root,
            local_closed: false,
            remote_closed: false,
        },
    );
    state.defer(root, DeferredAction::GrpcStart(request));
    Ok(Status::Ok.as_i32())
}

#[allow(clippy::too_many_arguments)] // the ABI's signature
pub(crate) fn proxy_grpc_call(
    mut caller: Caller<'_, HostState>,
    upstream_ptr: i32,
    upstream_len: i32,
    service_ptr: i32,
    service_len: i32,
    method_ptr: i32,
    method_len: i32,
    metadata_ptr: i32,
    metadata_len: i32,
    message_ptr: i32,
    message_len: i32,
    timeout_ms: i32,
    ret_token: i32,
) -> HostResult {
    enter(&caller, HostCall::GrpcCall)?;
    let read = |ptr, len| memory::read(&caller, ptr, len);
    let (args, message) = match (
        read(upstream_ptr, upstream_len),
        read(service_ptr, service_len),
        read(method_ptr, method_len),
        read(metadata_ptr, metadata_len),
        read(message_ptr, message_len),
    ) {
        (Ok(upstream), Ok(service), Ok(method), Ok(metadata), Ok(message)) => (
            StartArgs {
                upstream,
                service,
                method,
                metadata,
            },
            message,
        ),
        _ => return Ok(Status::InvalidMemoryAccess.as_i32()),
    };
    // Envoy takes the timeout as unsigned milliseconds; 0 sends `grpc-timeout: 0m` and
    // enforces nothing.
    let timeout = Duration::from_millis(u64::from(timeout_ms as u32));
    start(
        &mut caller,
        TokenKind::GrpcCall,
        args,
        Some(message),
        Some(timeout),
        ret_token,
    )
}

#[allow(clippy::too_many_arguments)] // the ABI's signature
pub(crate) fn proxy_grpc_stream(
    mut caller: Caller<'_, HostState>,
    upstream_ptr: i32,
    upstream_len: i32,
    service_ptr: i32,
    service_len: i32,
    method_ptr: i32,
    method_len: i32,
    metadata_ptr: i32,
    metadata_len: i32,
    ret_token: i32,
) -> HostResult {
    enter(&caller, HostCall::GrpcStream)?;
    let read = |ptr, len| memory::read(&caller, ptr, len);
    let args = match (
        read(upstream_ptr, upstream_len),
        read(service_ptr, service_len),
        read(method_ptr, method_len),
        read(metadata_ptr, metadata_len),
    ) {
        (Ok(upstream), Ok(service), Ok(method), Ok(metadata)) => StartArgs {
            upstream,
            service,
            method,
            metadata,
        },
        _ => return Ok(Status::InvalidMemoryAccess.as_i32()),
    };
    start(
        &mut caller,
        TokenKind::GrpcStream,
        args,
        None,
        None,
        ret_token,
    )
}

/// The callout `token` names for the effective context's root, if it is still open.
fn lookup(state: &HostState, token: u32) -> Option<GrpcCallout> {
    let root = state.root_of(state.effective)?;
    state
        .grpc_callouts
        .get(&token)
        .filter(|callout| callout.root == root)
        .copied()
}

pub(crate) fn proxy_grpc_send(
    mut caller: Caller<'_, HostState>,
    token: i32,
    msg_ptr: i32,
    msg_len: i32,
    end_stream: i32,
) -> HostResult {
    enter(&caller, HostCall::GrpcSend)?;
    let message = match memory::read(&caller, msg_ptr, msg_len) {
        Ok(message) => message,
        Err(status) => return Ok(status.as_i32()),
    };
    let token = token as u32;
    if TokenKind::of(token) != TokenKind::GrpcStream {
        return Ok(Status::BadArgument.as_i32());
    }
    let state = caller.data_mut();
    let Some(stream) = lookup(state, token) else {
        return Ok(Status::NotFound.as_i32());
    };
    // Envoy accepts a send on a stream that is closed on either side and sends nothing.
    if !stream.local_closed && !stream.remote_closed {
        state.defer(
            stream.root,
            DeferredAction::GrpcSend {
                token,
                message,
                end_stream: end_stream != 0,
            },
        );
    }
    Ok(Status::Ok.as_i32())
}

pub(crate) fn proxy_grpc_cancel(mut caller: Caller<'_, HostState>, token: i32) -> HostResult {
    enter(&caller, HostCall::GrpcCancel)?;
    let token = token as u32;
    if !matches!(
        TokenKind::of(token),
        TokenKind::GrpcCall | TokenKind::GrpcStream
    ) {
        return Ok(Status::BadArgument.as_i32());
    }
    let state = caller.data_mut();
    let Some(callout) = lookup(state, token) else {
        return Ok(Status::NotFound.as_i32());
    };
    state.grpc_callouts.remove(&token);
    state.defer(callout.root, DeferredAction::GrpcCancel { token });
    Ok(Status::Ok.as_i32())
}

/// On a call: cancel it. On a stream: half-close the local side; the stream is forgotten once
/// the remote side has closed too.
pub(crate) fn proxy_grpc_close(mut caller: Caller<'_, HostState>, token: i32) -> HostResult {
    enter(&caller, HostCall::GrpcClose)?;
    let token = token as u32;
    let kind = TokenKind::of(token);
    if !matches!(kind, TokenKind::GrpcCall | TokenKind::GrpcStream) {
        return Ok(Status::BadArgument.as_i32());
    }
    let state = caller.data_mut();
    let Some(callout) = lookup(state, token) else {
        return Ok(Status::NotFound.as_i32());
    };
    if kind == TokenKind::GrpcCall {
        state.grpc_callouts.remove(&token);
        state.defer(callout.root, DeferredAction::GrpcCancel { token });
        return Ok(Status::Ok.as_i32());
    }
    if callout.remote_closed {
        state.grpc_callouts.remove(&token);
    } else if let Some(stream) = state.grpc_callouts.get_mut(&token) {
        if !stream.local_closed {
            state.deferred.push(crate::state::Deferred {
                context_id: callout.root,
                action: DeferredAction::GrpcHalfClose { token },
            });
        }
        stream.local_closed = true;
    }
    Ok(Status::Ok.as_i32())
}
