//! TCP listeners (Envoy's `envoy.filters.network.wasm` filters followed by `tcp_proxy`): per
//! connection, a context in every filter, `on_new_connection` in order, the upstream connection
//! (the tcp_proxy cluster, or the one a filter chose with
//! `set_envoy_filter_state("envoy.tcp_proxy.cluster", …)`), bytes pumped both ways through the
//! filters (downstream data in chain order, upstream data in reverse), half-closes passed on as
//! end_of_stream, and at the end each filter's close callback, `on_done`, `on_log`,
//! `on_delete`. Everything runs on the worker's `LocalSet`; nothing blocks the thread.
//!
//! As Envoy: a filter that returns Pause keeps the bytes; reading goes on, and the next read
//! runs the chain again from the first filter with everything held plus the new bytes (up to
//! the buffer limit, after which reading stops); `continue_stream(Downstream)` (from a tick,
//! a callout, …) hands what it held to the next filter. Upstream data cannot be resumed
//! (`Unimplemented`), only re-run by more data. `close_stream` in either direction closes the
//! client connection (Local), dropping the bytes of the callback in progress.

use crate::config::ClusterConfig;
use crate::worker::Worker;
use pwx_abi::PeerType;
use pwx_host::failure::{FailureAction, stream_action};
use pwx_host::{DeferredAction, Flow, NetDirection, StreamInfo};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What a TCP listener does after its network filters (Envoy's `tcp_proxy`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpProxyConfig {
    /// `stat_prefix` (kept for messages).
    pub stat_prefix: String,
    /// The cluster connections go to, unless a filter chose another one.
    pub cluster: String,
    /// Close a connection with no traffic either way for this long (`None`: never). Envoy's
    /// default is one hour.
    pub idle_timeout: Option<Duration>,
}

/// Bytes buffered for a direction before reading from its source stops (Envoy's default
/// per-connection buffer limit).
const BUFFER_LIMIT: usize = 1 << 20;

/// The filter state key Envoy's tcp_proxy reads its cluster from.
const CLUSTER_KEY: &[u8] = b"envoy.tcp_proxy.cluster";

/// What a filter asked of its connection from outside the connection's own callbacks.
#[derive(Debug)]
enum Signal {
    Continue,
    Close,
}

thread_local! {
    /// Open connections of this worker, by (generation, filter index, context id): where
    /// actions deferred in other contexts (ticks, callouts via `set_effective_context`) are
    /// delivered.
    static CONNECTIONS: RefCell<HashMap<(u64, usize, u32), mpsc::UnboundedSender<Signal>>> =
        RefCell::default();
    /// Round-robin position per cluster.
    static NEXT_ENDPOINT: RefCell<HashMap<String, usize>> = RefCell::default();
}

/// Delivers a connection action a callback of another context deferred; `false` when no open
/// connection has that context.
pub(crate) fn deliver(
    generation: u64,
    index: usize,
    context: u32,
    action: &DeferredAction,
) -> bool {
    let signal = match action {
        DeferredAction::ContinueDownstream => Signal::Continue,
        DeferredAction::CloseDownstream | DeferredAction::CloseUpstream => Signal::Close,
        _ => return false,
    };
    CONNECTIONS.with(|c| {
        c.borrow()
            .get(&(generation, index, context))
            .is_some_and(|tx| tx.send(signal).is_ok())
    })
}

/// How a connection ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// pwx closes it (filter, timeout, upstream failure, both halves done with pwx last).
    Local,
    /// The client closed or reset it.
    Remote,
}

/// What running the chain over some bytes decided.
enum Outcome {
    /// Every filter passed the bytes on.
    Forward(Vec<u8>),
    /// A filter holds them.
    Held,
    /// A filter closed the connection, or failed closed.
    Close,
}

/// One connection's filter contexts.
struct Filters {
    worker: Rc<Worker>,
    /// Worker filter index of each position of the chain.
    index: Vec<usize>,
    /// Context in each filter; `None` once a fail-open filter is bypassed.
    ids: Vec<Option<u32>>,
    /// Position where downstream data (or the new-connection callback) is held.
    down_paused: Option<usize>,
    /// The chain stopped in `on_new_connection` at this position.
    new_paused: Option<usize>,
    /// Position where upstream data is held.
    up_paused: Option<usize>,
    /// Keeps the connection's generation serving until the filters are closed.
    _active: crate::worker::Active,
}

impl Filters {
    fn open(worker: Rc<Worker>, index: Vec<usize>, info: &StreamInfo) -> Filters {
        let ids = {
            let mut chain = worker.chain.borrow_mut();
            index
                .iter()
                .map(|&f| {
                    let root = chain.filters[f].root;
                    chain.vm_mut(f).create_connection(root, info.clone())
                })
                .collect()
        };
        Filters {
            _active: worker.enter(),
            worker,
            index,
            ids,
            down_paused: None,
            new_paused: None,
            up_paused: None,
        }
    }

    fn register(&self, tx: &mpsc::UnboundedSender<Signal>) {
        CONNECTIONS.with(|c| {
            let mut c = c.borrow_mut();
            for (&f, id) in self.index.iter().zip(&self.ids) {
                if let Some(id) = *id {
                    c.insert((self.worker.generation, f, id), tx.clone());
                }
            }
        });
    }

    /// Filters whose VM failed before this connection: FAIL_RELOAD rebuilds (after its
    /// backoff), FAIL_OPEN bypasses; otherwise the connection is refused (`false`).
    fn skip_failed(&mut self, info: &StreamInfo) -> bool {
        let worker = self.worker.clone();
        for i in 0..self.ids.len() {
            let f = self.index[i];
            if worker.chain.borrow().vm(f).failure().is_none() {
                continue;
            }
            let restarted = worker.rebuild_failed(f);
            for (j, &g) in self.index.iter().enumerate() {
                if restarted.contains(&g) {
                    let mut chain = worker.chain.borrow_mut();
                    let root = chain.filters[g].root;
                    self.ids[j] = chain.vm_mut(g).create_connection(root, info.clone());
                }
            }
            if !restarted.is_empty() {
                continue;
            }
            if !self.bypass_after_failure(i) {
                return false;
            }
        }
        true
    }

    /// A filter's VM failed: under FAIL_OPEN it is bypassed from now on (`true`); otherwise
    /// the connection closes.
    fn bypass_after_failure(&mut self, i: usize) -> bool {
        let f = self.index[i];
        let policy = self.worker.chain.borrow().filters[f].plugin.failure_policy;
        self.worker.fail_waiters(f);
        match stream_action(policy) {
            FailureAction::Bypass => {
                self.ids[i] = None;
                true
            }
            FailureAction::Reply(_) => false,
        }
    }

    fn fail_open(&self, i: usize) -> bool {
        let policy = self.worker.chain.borrow().filters[self.index[i]]
            .plugin
            .failure_policy;
        matches!(stream_action(policy), FailureAction::Bypass)
    }

    /// Applies a callback's deferred actions; `true` if the filter closed its own connection.
    fn settle(&self, i: usize, context: u32, deferred: Vec<pwx_host::Deferred>) -> bool {
        let closed = deferred.iter().any(|d| {
            d.context_id == context
                && matches!(
                    d.action,
                    DeferredAction::CloseDownstream | DeferredAction::CloseUpstream
                )
        });
        self.worker.apply(self.index[i], deferred, Some(context));
        closed
    }

    /// `on_new_connection` from position `from`; `false` if the connection must close.
    fn new_connection(&mut self, from: usize) -> bool {
        for i in from..self.ids.len() {
            let Some(context) = self.ids[i] else { continue };
            let result = self
                .worker
                .chain
                .borrow_mut()
                .vm_mut(self.index[i])
                .on_new_connection(context);
            match result {
                Ok(step) => {
                    if self.settle(i, context, step.deferred) {
                        return false;
                    }
                    if step.flow == Flow::Stop {
                        self.new_paused = Some(i);
                        return true;
                    }
                }
                Err(_) => {
                    if !self.bypass_after_failure(i) {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// Runs data through the chain: downstream from position `from` on, upstream from
    /// position `from` down to the first filter. Upstream end_of_stream is followed by each
    /// filter's `on_upstream_connection_close(Unknown)`, as Envoy reports it.
    fn run(
        &mut self,
        direction: NetDirection,
        from: usize,
        mut data: Vec<u8>,
        eos: bool,
    ) -> Outcome {
        let order: Vec<usize> = match direction {
            NetDirection::Downstream => (from..self.ids.len()).collect(),
            NetDirection::Upstream => (0..=from.min(self.ids.len().saturating_sub(1)))
                .rev()
                .collect(),
        };
        for i in order {
            let Some(context) = self.ids[i] else { continue };
            let keep = self.fail_open(i).then(|| data.clone());
            let f = self.index[i];
            let result = self
                .worker
                .chain
                .borrow_mut()
                .vm_mut(f)
                .on_connection_data(context, direction, data, eos);
            let step = match result {
                Ok(step) => step,
                Err(_) => {
                    if !self.bypass_after_failure(i) {
                        return Outcome::Close;
                    }
                    data = keep.unwrap_or_default();
                    continue;
                }
            };
            if self.settle(i, context, step.deferred) {
                return Outcome::Close;
            }
            if direction == NetDirection::Upstream && eos {
                let closed = self
                    .worker
                    .chain
                    .borrow_mut()
                    .vm_mut(f)
                    .on_connection_close(context, NetDirection::Upstream, PeerType::Unknown);
                match closed {
                    Ok(deferred) => {
                        if self.settle(i, context, deferred) {
                            return Outcome::Close;
                        }
                    }
                    Err(_) if !self.bypass_after_failure(i) => return Outcome::Close,
                    Err(_) => {}
                }
            }
            match step.flow {
                Flow::Continue(out) => data = out,
                _ => {
                    match direction {
                        NetDirection::Downstream => self.down_paused = Some(i),
                        NetDirection::Upstream => self.up_paused = Some(i),
                    }
                    return Outcome::Held;
                }
            }
        }
        Outcome::Forward(data)
    }

    /// More bytes arrived: everything a paused filter held comes first, and the chain runs
    /// again from its start (Envoy's read buffer is shared by the whole chain).
    fn arrived(&mut self, direction: NetDirection, chunk: &[u8], eos: bool) -> Outcome {
        let paused = match direction {
            NetDirection::Downstream => self.down_paused.take(),
            NetDirection::Upstream => self.up_paused.take(),
        };
        let mut data = Vec::new();
        if let Some(i) = paused
            && let Some(context) = self.ids[i]
        {
            data = self
                .worker
                .chain
                .borrow_mut()
                .vm_mut(self.index[i])
                .take_held(context, direction);
        }
        data.extend_from_slice(chunk);
        let start = match direction {
            NetDirection::Downstream => 0,
            NetDirection::Upstream => self.ids.len().saturating_sub(1),
        };
        self.run(direction, start, data, eos)
    }

    /// The paused filter continued the downstream direction: what it held goes on from the
    /// next filter. `None` when nothing was paused.
    fn resume(&mut self, eos: bool) -> Option<Outcome> {
        let i = self.down_paused.take()?;
        let held = match self.ids[i] {
            Some(context) => self
                .worker
                .chain
                .borrow_mut()
                .vm_mut(self.index[i])
                .take_held(context, NetDirection::Downstream),
            None => Vec::new(),
        };
        Some(self.run(NetDirection::Downstream, i + 1, held, eos))
    }

    /// Each filter in order: `on_downstream_connection_close(peer)`, `on_done`, `on_log`,
    /// `on_delete`.
    fn close(&mut self, peer: PeerType) {
        CONNECTIONS.with(|c| {
            let mut c = c.borrow_mut();
            for (&f, id) in self.index.iter().zip(&self.ids) {
                if let Some(id) = *id {
                    c.remove(&(self.worker.generation, f, id));
                }
            }
        });
        for i in 0..self.ids.len() {
            let Some(context) = self.ids[i].take() else {
                continue;
            };
            let f = self.index[i];
            let (closed, finished) = {
                let mut chain = self.worker.chain.borrow_mut();
                let vm = &mut chain.vm_mut(f);
                let closed = vm.on_connection_close(context, NetDirection::Downstream, peer);
                let finished = vm.finish_connection(context);
                (closed, finished)
            };
            for result in [closed, finished] {
                match result {
                    Ok(deferred) => self.worker.apply(f, deferred, None),
                    Err(_) => self.worker.fail_waiters(f),
                }
            }
        }
    }
}

impl Drop for Filters {
    fn drop(&mut self) {
        // A connection task that is dropped (worker shutdown) still ends its contexts.
        if self.ids.iter().any(Option::is_some) && self.worker.chain.try_borrow_mut().is_ok() {
            self.close(PeerType::Local);
        }
    }
}

/// Picks the next endpoint of `cluster` (round robin) and connects within its timeout.
async fn connect(cluster: &ClusterConfig) -> Result<TcpStream, String> {
    if cluster.endpoints.is_empty() {
        return Err(format!("cluster {:?} has no endpoints", cluster.name));
    }
    let pick = NEXT_ENDPOINT.with(|n| {
        let mut n = n.borrow_mut();
        let next = n.entry(cluster.name.clone()).or_insert(0);
        let pick = *next % cluster.endpoints.len();
        *next = next.wrapping_add(1);
        pick
    });
    let endpoint = &cluster.endpoints[pick];
    match tokio::time::timeout(
        cluster.connect_timeout,
        TcpStream::connect(endpoint.as_str()),
    )
    .await
    {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Ok(Err(e)) => Err(format!(
            "connecting to {endpoint} (cluster {:?}): {e}",
            cluster.name
        )),
        Err(_) => Err(format!(
            "connecting to {endpoint} (cluster {:?}): timed out after {:?}",
            cluster.name, cluster.connect_timeout
        )),
    }
}

/// One direction's bytes on their way out, and whether its end of stream is to be passed on.
#[derive(Default)]
struct Outgoing {
    bytes: Vec<u8>,
    /// The source ended and the chain passed the end on: shut the write side down once the
    /// bytes are written.
    shutdown_pending: bool,
    shut: bool,
}

impl Outgoing {
    fn push(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
    }

    fn ready(&self) -> bool {
        !self.bytes.is_empty()
    }

    /// Writes what the socket takes now; shuts the write side down once empty and ended.
    /// `Err` when the peer is gone.
    fn write(&mut self, socket: &TcpStream) -> std::io::Result<()> {
        while !self.bytes.is_empty() {
            match socket.try_write(&self.bytes) {
                Ok(n) => {
                    self.bytes.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        self.finish(socket)
    }

    fn finish(&mut self, socket: &TcpStream) -> std::io::Result<()> {
        if self.shutdown_pending && !self.shut && self.bytes.is_empty() {
            self.shut = true;
            socket2::SockRef::from(socket).shutdown(Shutdown::Write)?;
        }
        Ok(())
    }
}

/// What one read event yields.
struct Read {
    data: Vec<u8>,
    /// The peer ended its side (found in the same event as the data, as Envoy reads).
    eof: bool,
}

/// Reads everything there is now, up to the buffer limit, as Envoy's socket read does in one
/// event: `Ok(None)` when nothing was ready.
fn try_read(socket: &TcpStream, buf: &mut [u8]) -> std::io::Result<Option<Read>> {
    let mut read = Read {
        data: Vec::new(),
        eof: false,
    };
    while read.data.len() < BUFFER_LIMIT {
        match socket.try_read(buf) {
            Ok(0) => {
                read.eof = true;
                break;
            }
            Ok(n) => read.data.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            // A reset after some data: hand the data on, the error shows at the next read.
            Err(_) if !read.data.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    Ok((!read.data.is_empty() || read.eof).then_some(read))
}

/// Serves one accepted connection on TCP listener `listener`.
pub(crate) async fn serve(worker: Rc<Worker>, listener: usize, down: TcpStream, peer: SocketAddr) {
    let plan = &worker.plan.listeners[listener];
    let Some(proxy) = plan.tcp.clone() else {
        return;
    };
    let _ = down.set_nodelay(true);
    let info = StreamInfo {
        source: Some(peer),
        destination: down.local_addr().ok(),
        connection_id: Some(crate::worker::next_connection_id()),
        start_time: Some(std::time::SystemTime::now()),
        filter_chain_name: Some(String::new()),
        ..StreamInfo::default()
    };
    let mut filters = Filters::open(worker.clone(), plan.filters.clone(), &info);
    let (tx, mut signals) = mpsc::unbounded_channel();
    filters.register(&tx);
    if !filters.skip_failed(&info) {
        filters.close(PeerType::Local);
        return;
    }
    filters.register(&tx);
    if !filters.new_connection(0) {
        filters.close(PeerType::Local);
        return;
    }
    // A filter that paused on_new_connection holds the connection until it continues.
    while let Some(i) = filters.new_paused {
        match signals.recv().await {
            Some(Signal::Continue) => {
                filters.new_paused = None;
                if !filters.new_connection(i + 1) {
                    filters.close(PeerType::Local);
                    return;
                }
            }
            Some(Signal::Close) | None => {
                filters.close(PeerType::Local);
                return;
            }
        }
    }
    let cluster_name = chosen_cluster(&filters).unwrap_or(proxy.cluster.clone());
    let Some(cluster) = worker
        .plan
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .cloned()
    else {
        tracing::warn!(cluster = %cluster_name, listener = %plan.name, "tcp_proxy: unknown cluster; closing the connection");
        filters.close(PeerType::Local);
        return;
    };
    let up = match connect(&cluster).await {
        Ok(up) => up,
        Err(error) => {
            tracing::debug!(%error, "tcp_proxy: upstream connection failed; closing the client connection");
            filters.close(PeerType::Local);
            return;
        }
    };
    {
        let mut chain = worker.chain.borrow_mut();
        for (&f, id) in filters.index.iter().zip(&filters.ids) {
            if let Some(id) = *id {
                chain.vm_mut(f).set_connection_upstream(
                    id,
                    &cluster.name,
                    up.peer_addr().ok(),
                    up.local_addr().ok(),
                );
            }
        }
    }
    let end = pump(&mut filters, &down, &up, &mut signals, proxy.idle_timeout).await;
    if end == End::Local {
        // Flush-write close: what is written goes out, then FIN.
        let _ = socket2::SockRef::from(&down).shutdown(Shutdown::Write);
    }
    drop(up);
    filters.close(match end {
        End::Local => PeerType::Local,
        End::Remote => PeerType::Remote,
    });
}

/// The cluster a filter chose through `set_envoy_filter_state`.
fn chosen_cluster(filters: &Filters) -> Option<String> {
    let chain = filters.worker.chain.borrow();
    filters
        .index
        .iter()
        .zip(&filters.ids)
        .filter_map(|(&f, id)| chain.vm(f).connection_filter_state((*id)?, CLUSTER_KEY))
        .next_back()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// Moves bytes both ways until the connection ends; returns how.
async fn pump(
    filters: &mut Filters,
    down: &TcpStream,
    up: &TcpStream,
    signals: &mut mpsc::UnboundedReceiver<Signal>,
    idle_timeout: Option<Duration>,
) -> End {
    let mut to_up = Outgoing::default();
    let mut to_down = Outgoing::default();
    let mut down_eof = false;
    let mut up_eof = false;
    // Which source ended last decides the peer type once both halves are done.
    let mut last_eof = None;
    let mut buf = vec![0u8; 64 * 1024];
    let far = Instant::now() + Duration::from_secs(86400 * 365);
    let mut deadline = idle_timeout.map_or(far, |t| Instant::now() + t);
    loop {
        if to_up.shut && to_down.shut {
            return match last_eof {
                Some(NetDirection::Downstream) => End::Remote,
                _ => End::Local,
            };
        }
        let read_down = !down_eof && to_up.bytes.len() < BUFFER_LIMIT;
        let read_up = !up_eof && to_down.bytes.len() < BUFFER_LIMIT;
        tokio::select! {
            ready = down.readable(), if read_down => {
                if ready.is_err() {
                    return End::Remote;
                }
                let (chunk, eos) = match try_read(down, &mut buf) {
                    Ok(Some(read)) => (read.data, read.eof),
                    Ok(None) => continue,
                    Err(_) => return End::Remote,
                };
                if eos {
                    down_eof = true;
                    last_eof = Some(NetDirection::Downstream);
                }
                deadline = idle_timeout.map_or(far, |t| Instant::now() + t);
                match filters.arrived(NetDirection::Downstream, &chunk, eos) {
                    Outcome::Forward(data) => {
                        to_up.push(&data);
                        to_up.shutdown_pending |= eos;
                        if to_up.write(up).is_err() {
                            discard(&mut to_up);
                        }
                    }
                    Outcome::Held => {}
                    Outcome::Close => return End::Local,
                }
            }
            ready = up.readable(), if read_up => {
                let (chunk, eos) = match ready.and_then(|()| try_read(up, &mut buf)) {
                    Ok(Some(read)) => (read.data, read.eof),
                    Ok(None) => continue,
                    // An upstream reset ends its side like a close.
                    Err(_) => (Vec::new(), true),
                };
                if eos {
                    up_eof = true;
                    last_eof = Some(NetDirection::Upstream);
                }
                deadline = idle_timeout.map_or(far, |t| Instant::now() + t);
                match filters.arrived(NetDirection::Upstream, &chunk, eos) {
                    Outcome::Forward(data) => {
                        to_down.push(&data);
                        to_down.shutdown_pending |= eos;
                        if to_down.write(down).is_err() {
                            return End::Remote;
                        }
                    }
                    Outcome::Held => {}
                    Outcome::Close => return End::Local,
                }
            }
            ready = up.writable(), if to_up.ready() => {
                if ready.is_err() || to_up.write(up).is_err() {
                    discard(&mut to_up);
                }
            }
            ready = down.writable(), if to_down.ready() => {
                if ready.is_err() || to_down.write(down).is_err() {
                    return End::Remote;
                }
            }
            signal = signals.recv() => match signal {
                Some(Signal::Continue) => {
                    // Envoy ignores a continue when nothing is held.
                    if let Some(outcome) = filters.resume(down_eof) {
                        match outcome {
                            Outcome::Forward(data) => {
                                to_up.push(&data);
                                to_up.shutdown_pending |= down_eof;
                                if to_up.write(up).is_err() {
                                    discard(&mut to_up);
                                }
                            }
                            Outcome::Held => {}
                            Outcome::Close => return End::Local,
                        }
                    }
                }
                Some(Signal::Close) | None => return End::Local,
            },
            () = tokio::time::sleep_until(deadline), if idle_timeout.is_some() => {
                tracing::debug!("tcp_proxy: idle timeout; closing the connection");
                return End::Local;
            }
        }
        // Shut down write sides whose end was passed on with nothing left to write.
        if to_up.finish(up).is_err() {
            discard(&mut to_up);
        }
        if to_down.finish(down).is_err() {
            return End::Remote;
        }
    }
}

/// The upstream is gone: what was on its way there is dropped, and its write side counts as
/// done.
fn discard(out: &mut Outgoing) {
    out.bytes.clear();
    out.shutdown_pending = true;
    out.shut = true;
}
