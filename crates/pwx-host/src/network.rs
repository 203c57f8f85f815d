//! Network (TCP) stream callbacks with Envoy's semantics: a connection context under a root,
//! `on_new_connection`, data each way (the buffer of a direction is live only in its callback
//! or while that direction is paused after it), close callbacks with Envoy's peer types, and
//! `on_done` → `on_log` → `on_delete` when the connection ends (HTTP streams log first).

use crate::http::{Flow, Step};
use crate::state::{Context, NetStreamState};
use crate::stream_info::StreamInfo;
use crate::vm::{Vm, VmFailed};
use pwx_abi::PeerType;
use std::net::SocketAddr;

/// Which way bytes travel on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetDirection {
    /// Read from the client, on their way to the upstream (`DownstreamData`, buffer 2).
    Downstream,
    /// Read from the upstream, on their way to the client (`UpstreamData`, buffer 3).
    Upstream,
}

impl Vm {
    fn net_mut(&mut self, context_id: u32) -> Option<&mut NetStreamState> {
        match self.store.data_mut().contexts.get_mut(&context_id)? {
            Context::Stream(stream) => stream.net.as_mut(),
            Context::Root(_) => None,
        }
    }

    fn net_created(&self, context_id: u32) -> bool {
        matches!(
            self.store.data().contexts.get(&context_id),
            Some(Context::Stream(s)) if s.created && s.net.is_some()
        )
    }

    /// Creates a host-side connection context under `root_id`; the module hears of it at
    /// [`on_new_connection`](Vm::on_new_connection). Returns its id.
    pub fn create_connection(&mut self, root_id: u32, info: StreamInfo) -> Option<u32> {
        let id = self.create_stream(root_id, info)?;
        if let Some(Context::Stream(stream)) = self.store.data_mut().contexts.get_mut(&id) {
            stream.net = Some(NetStreamState::default());
        }
        Some(id)
    }

    /// Records the upstream connection once it is established (`upstream.address`,
    /// `upstream.local_address`, `xds.cluster_name`).
    pub fn set_connection_upstream(
        &mut self,
        context_id: u32,
        cluster: &str,
        address: Option<SocketAddr>,
        local_address: Option<SocketAddr>,
    ) {
        if let Some(Context::Stream(stream)) = self.store.data_mut().contexts.get_mut(&context_id) {
            let info = &mut stream.http.info;
            info.cluster_name = Some(cluster.to_string());
            info.upstream_address = address;
            info.upstream_local_address = local_address;
        }
    }

    /// A filter-state value a connection's module set (`set_envoy_filter_state`,
    /// `proxy_set_property`), by key: how the embedder reads `envoy.tcp_proxy.cluster`.
    pub fn connection_filter_state(&self, context_id: u32, key: &[u8]) -> Option<Vec<u8>> {
        match self.store.data().contexts.get(&context_id)? {
            Context::Stream(stream) => stream.http.info.filter_state.get(key),
            Context::Root(_) => None,
        }
    }

    /// `proxy_on_context_create(connection, root)` then `proxy_on_new_connection`. `Stop` means
    /// the filter paused the connection: nothing after it runs until it continues the
    /// downstream direction.
    pub fn on_new_connection(&mut self, context_id: u32) -> Result<Step<()>, VmFailed> {
        if !self.ensure_created(context_id)? {
            return Ok(Step {
                flow: Flow::Continue(()),
                deferred: Vec::new(),
            });
        }
        let raw = self.call(
            "proxy_on_new_connection",
            |c| c.on_new_connection.as_ref(),
            context_id,
            context_id as i32,
        )?;
        let deferred = self.take_deferred();
        let flow = if raw.unwrap_or(0) == 0 {
            Flow::Continue(())
        } else {
            Flow::Stop
        };
        Ok(Step { flow, deferred })
    }

    /// `proxy_on_downstream_data` / `proxy_on_upstream_data` with `data` (everything the
    /// connection holds for this filter: bytes a paused call kept come first). `Continue` hands
    /// the data on, as the module left it; `Stop` keeps it here, readable and writable, until
    /// [`take_held`](Vm::take_held).
    pub fn on_connection_data(
        &mut self,
        context_id: u32,
        direction: NetDirection,
        data: Vec<u8>,
        end_of_stream: bool,
    ) -> Result<Step<Vec<u8>>, VmFailed> {
        if !self.net_created(context_id) {
            return Ok(Step {
                flow: Flow::Continue(data),
                deferred: Vec::new(),
            });
        }
        let size = data.len() as i32;
        if let Some(net) = self.net_mut(context_id) {
            *slot(net, direction) = Some(data);
        }
        let args = (context_id as i32, size, i32::from(end_of_stream));
        let result = match direction {
            NetDirection::Downstream => self.call(
                "proxy_on_downstream_data",
                |c| c.on_downstream_data.as_ref(),
                context_id,
                args,
            ),
            NetDirection::Upstream => self.call(
                "proxy_on_upstream_data",
                |c| c.on_upstream_data.as_ref(),
                context_id,
                args,
            ),
        };
        let raw = match result {
            Ok(raw) => raw,
            Err(failed) => {
                if let Some(net) = self.net_mut(context_id) {
                    *slot(net, direction) = None;
                }
                return Err(failed);
            }
        };
        let deferred = self.take_deferred();
        let Some(net) = self.net_mut(context_id) else {
            return Ok(Step {
                flow: Flow::Stop,
                deferred,
            });
        };
        // A network callback's result is Continue (0) or StopIteration (anything else); a
        // local reply means nothing on a connection and does not force a stop.
        let flow = if raw.unwrap_or(0) == 0 {
            Flow::Continue(slot(net, direction).take().unwrap_or_default())
        } else {
            Flow::Stop
        };
        Ok(Step { flow, deferred })
    }

    /// The bytes a paused direction kept (as the module left them); the buffer is no longer
    /// the module's to touch. Called when the filter continues, or when more data arrives and
    /// the chain runs again with everything.
    pub fn take_held(&mut self, context_id: u32, direction: NetDirection) -> Vec<u8> {
        self.net_mut(context_id)
            .and_then(|net| slot(net, direction).take())
            .unwrap_or_default()
    }

    /// `proxy_on_downstream_connection_close` / `proxy_on_upstream_connection_close`.
    pub fn on_connection_close(
        &mut self,
        context_id: u32,
        direction: NetDirection,
        peer: PeerType,
    ) -> Result<Vec<crate::Deferred>, VmFailed> {
        if !self.net_created(context_id) {
            return Ok(Vec::new());
        }
        let args = (context_id as i32, peer as i32);
        match direction {
            NetDirection::Downstream => self.call(
                "proxy_on_downstream_connection_close",
                |c| c.on_downstream_connection_close.as_ref(),
                context_id,
                args,
            ),
            NetDirection::Upstream => self.call(
                "proxy_on_upstream_connection_close",
                |c| c.on_upstream_connection_close.as_ref(),
                context_id,
                args,
            ),
        }?;
        Ok(self.take_deferred())
    }

    /// Ends a connection: `on_done` (result ignored), `on_log`, `on_delete` — Envoy's order for
    /// network filters — if the module ever heard of it, and forgets it.
    pub fn finish_connection(&mut self, context_id: u32) -> Result<Vec<crate::Deferred>, VmFailed> {
        let result = if self.net_created(context_id) {
            let id = context_id as i32;
            self.call("proxy_on_done", |c| c.on_done.as_ref(), context_id, id)
                .and_then(|_| self.call("proxy_on_log", |c| c.on_log.as_ref(), context_id, id))
                .and_then(|_| {
                    self.call("proxy_on_delete", |c| c.on_delete.as_ref(), context_id, id)
                })
                .map(|_| self.take_deferred())
        } else {
            Ok(Vec::new())
        };
        self.store.data_mut().contexts.remove(&context_id);
        result
    }
}

fn slot(net: &mut NetStreamState, direction: NetDirection) -> &mut Option<Vec<u8>> {
    match direction {
        NetDirection::Downstream => &mut net.downstream,
        NetDirection::Upstream => &mut net.upstream,
    }
}
