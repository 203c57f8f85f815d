//! What happens after a callback returns: the actions it deferred (resume or answer a paused
//! stream, start an HTTP or gRPC callout, send on / close / cancel a gRPC stream, set a tick
//! period, delete a root) and the events that call back into a VM later (callout responses, gRPC
//! events, ticks, queue notifications). Envoy never re-enters a module
//! from inside a hostcall; neither does pwx.

use crate::clusters::OutRequest;
use crate::worker::Worker;
use bytes::Bytes;
use pwx_host::vm::CalloutResponse;
use pwx_host::{Deferred, DeferredAction, Direction, Held, LocalReply, VmFailed};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::Duration;

/// How a paused stream is woken.
pub(crate) enum Wake {
    /// The filter resumed the direction; what it held.
    Continue(Held),
    /// The filter answered the stream with a local reply.
    LocalReply(LocalReply),
    /// The filter reset the stream (`close_stream`).
    Reset,
    /// The filter's VM failed while the stream waited.
    Failed,
}

/// A live stream's context in one filter: where that filter's actions on the stream (resume,
/// local reply, reset from a tick or a callout response) are posted, and which directions the
/// filter holds stopped.
pub(crate) struct Waiter {
    /// Stopped directions: `[request, response]`.
    pub(crate) stopped: [bool; 2],
    pub(crate) mailbox: Mailbox,
}

/// Where a stream's driver receives what its filters did from outside its callbacks.
pub(crate) type Mailbox = tokio::sync::mpsc::UnboundedSender<Woke>;

/// A filter acted on a stream from outside the stream's own callbacks.
pub(crate) struct Woke {
    /// The worker's filter index.
    pub(crate) filter: usize,
    pub(crate) context: u32,
    /// The direction resumed (`None` for replies, resets and failures).
    pub(crate) direction: Option<Direction>,
    pub(crate) wake: Wake,
}

pub(crate) fn slot(direction: Direction) -> usize {
    match direction {
        Direction::Request => 0,
        Direction::Response => 1,
    }
}

/// Something another thread asks of this worker.
pub(crate) enum Event {
    /// A queue this worker's VM consumes has a new item.
    QueueReady {
        vm_instance: u64,
        root: u32,
        token: u32,
    },
    /// Build the next generation from `plan` (VMs started and configured) and report; it
    /// serves nothing until `Commit`.
    Prepare {
        generation: u64,
        plan: std::sync::Arc<crate::worker::WorkerPlan>,
        reply: std::sync::mpsc::Sender<Result<(), String>>,
    },
    /// Every worker prepared `generation`: new streams use it from now on.
    Commit { generation: u64 },
    /// Some worker could not prepare `generation`: drop it, keep serving the current one.
    Abort { generation: u64 },
}

/// Which worker owns each VM replica, so queue notifications reach the consumer's thread.
#[derive(Default)]
pub(crate) struct QueueRoutes {
    by_instance: Mutex<HashMap<u64, tokio::sync::mpsc::UnboundedSender<Event>>>,
}

impl QueueRoutes {
    pub(crate) fn register(
        &self,
        vm_instance: u64,
        events: tokio::sync::mpsc::UnboundedSender<Event>,
    ) {
        self.by_instance
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(vm_instance, events);
    }

    pub(crate) fn forget(&self, vm_instance: u64) {
        self.by_instance
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&vm_instance);
    }

    /// Posts `on_queue_ready` to the worker owning `vm_instance`; a VM that is gone (or the
    /// start-up canary, which serves no traffic) is not notified.
    pub(crate) fn notify(&self, vm_instance: u64, root: u32, token: u32) {
        let routes = self.by_instance.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(events) = routes.get(&vm_instance) {
            let _ = events.send(Event::QueueReady {
                vm_instance,
                root,
                token,
            });
        }
    }
}

impl Worker {
    /// A plugin (re)started on filter `index`: route its queue notifications here and apply
    /// what its start-up deferred (e.g. a tick period set in `on_configure`).
    pub(crate) fn plugin_started(self: &Rc<Self>, index: usize) {
        // A replaced VM's callouts and timers died with it (its tokens and root ids will be
        // handed out again by the new one).
        self.callouts.borrow_mut().retain(|&(i, _), (_, task)| {
            if i == index {
                task.abort();
            }
            i != index
        });
        self.grpc_senders
            .borrow_mut()
            .retain(|&(i, _), _| i != index);
        self.timers.borrow_mut().retain(|&(i, _), timer| {
            if i == index {
                timer.abort();
            }
            i != index
        });
        let (instance, deferred) = {
            let mut chain = self.chain.borrow_mut();
            let vm = &mut chain.vm_mut(index);
            (vm.instance_id(), vm.take_deferred())
        };
        self.plan
            .queue_routes
            .register(instance, self.events.clone());
        self.apply(index, deferred, None);
    }

    /// Under FAIL_RELOAD, rebuilds the failed VM of filter `index` (once its backoff allows)
    /// and restarts the plugin of every filter that ran on it; the filters restarted (none
    /// when the VM is not back).
    pub(crate) fn rebuild_failed(self: &Rc<Self>, index: usize) -> Vec<usize> {
        let restarted = self.chain.borrow_mut().reload(index);
        for &filter in &restarted {
            self.plugin_started(filter);
        }
        restarted
    }

    /// Applies the actions a callback of filter `index` deferred. Actions on `own` (the stream
    /// whose callback just ran) other than callouts and timers are the caller's business.
    pub(crate) fn apply(self: &Rc<Self>, index: usize, deferred: Vec<Deferred>, own: Option<u32>) {
        for Deferred { context_id, action } in deferred {
            match action {
                DeferredAction::HttpCall(request) => self.start_callout(index, request),
                DeferredAction::GrpcStart(request) => self.start_grpc(index, request),
                DeferredAction::GrpcSend {
                    token,
                    message,
                    end_stream,
                } => self.grpc_send(index, token, &message, end_stream),
                DeferredAction::GrpcHalfClose { token } => {
                    // Dropping the sender ends the request body: the stream is half-closed.
                    self.grpc_senders.borrow_mut().remove(&(index, token));
                }
                DeferredAction::GrpcCancel { token } => self.cancel_grpc(index, token),
                DeferredAction::SetTickPeriod(period) => self.set_timer(index, context_id, period),
                DeferredAction::DeleteRoot => self.delete_root(index, context_id),
                _ if Some(context_id) == own => {}
                DeferredAction::ContinueRequest => {
                    self.resume(index, context_id, Direction::Request)
                }
                DeferredAction::ContinueResponse => {
                    self.resume(index, context_id, Direction::Response)
                }
                DeferredAction::LocalReply(reply) => {
                    self.wake(index, context_id, Wake::LocalReply(reply))
                }
                DeferredAction::ResetStream => self.wake(index, context_id, Wake::Reset),
                DeferredAction::ClearRouteCache => {
                    // Routes are chosen after the request path, from the final headers: there
                    // is no cached route to clear.
                }
                ref connection @ (DeferredAction::ContinueDownstream
                | DeferredAction::CloseDownstream
                | DeferredAction::CloseUpstream)
                    if crate::tcp::deliver(self.generation, index, context_id, connection) => {}
                other => {
                    tracing::debug!(
                        ?other,
                        context_id,
                        "deferred action has no meaning on an HTTP stream here"
                    )
                }
            }
        }
    }

    /// The filter whose stream context `context` is, among the filters sharing `index`'s VM
    /// (a callback of one plugin may act on another plugin's stream of the same VM through
    /// `set_effective_context`).
    fn context_owner(&self, index: usize, context: u32) -> usize {
        let waiters = self.waiters.borrow();
        if waiters.contains_key(&(index, context)) {
            return index;
        }
        let chain = self.chain.borrow();
        chain
            .sharing(index)
            .find(|&g| waiters.contains_key(&(g, context)))
            .unwrap_or(index)
    }

    /// Posts a reply or reset to a live stream.
    fn wake(&self, index: usize, context: u32, wake: Wake) {
        let index = self.context_owner(index, context);
        if let Some(waiter) = self.waiters.borrow().get(&(index, context)) {
            let _ = waiter.mailbox.send(Woke {
                filter: index,
                context,
                direction: None,
                wake,
            });
        }
    }

    /// Resumes a direction the filter holds stopped; Envoy ignores a continue for a direction
    /// that is not stopped.
    fn resume(&self, index: usize, context: u32, direction: Direction) {
        let index = self.context_owner(index, context);
        let mailbox = {
            let mut waiters = self.waiters.borrow_mut();
            let Some(waiter) = waiters.get_mut(&(index, context)) else {
                return;
            };
            if !std::mem::take(&mut waiter.stopped[slot(direction)]) {
                return;
            }
            waiter.mailbox.clone()
        };
        let held = self
            .chain
            .borrow_mut()
            .vm_mut(index)
            .resume(context, direction);
        let _ = mailbox.send(Woke {
            filter: index,
            context,
            direction: Some(direction),
            wake: Wake::Continue(held),
        });
    }

    /// Marks a direction of a stream stopped (or running again) in filter `index`.
    pub(crate) fn set_stopped(
        &self,
        index: usize,
        context: u32,
        direction: Direction,
        stopped: bool,
    ) {
        if let Some(waiter) = self.waiters.borrow_mut().get_mut(&(index, context)) {
            waiter.stopped[slot(direction)] = stopped;
        }
    }

    /// Every stream stopped in filter `index`, or in a filter sharing its VM, fails with it.
    pub(crate) fn fail_waiters(&self, index: usize) {
        let sharing: Vec<usize> = self.chain.borrow().sharing(index).collect();
        for (&(i, context), waiter) in self.waiters.borrow().iter() {
            if sharing.contains(&i) && waiter.stopped.iter().any(|s| *s) {
                let _ = waiter.mailbox.send(Woke {
                    filter: i,
                    context,
                    direction: None,
                    wake: Wake::Failed,
                });
            }
        }
    }

    /// The result of a root-context callback: apply its actions, or fail the streams that
    /// waited on a VM that just failed.
    fn after_root_callback(self: &Rc<Self>, index: usize, result: Result<Vec<Deferred>, VmFailed>) {
        match result {
            Ok(deferred) => self.apply(index, deferred, None),
            Err(failed) => {
                tracing::warn!(filter = index, reason = %failed.reason, "a root callback failed the VM");
                self.fail_waiters(index);
            }
        }
    }

    fn start_callout(
        self: &Rc<Self>,
        index: usize,
        request: pwx_host::services::HttpCalloutRequest,
    ) {
        let worker = self.clone();
        let (token, root) = (request.token, request.root_context_id);
        let vm_instance = self.chain.borrow().vm(index).instance_id();
        let task = tokio::task::spawn_local(async move {
            let mut headers =
                pwx_host::HeaderMap::from_pairs(request.headers.iter().map(|(k, v)| (k, v)));
            // Envoy's async client sets the length of a callout body before it marks the
            // request internal; a bodiless one gets its `content-length: 0` from the codec.
            if !request.body.is_empty() {
                headers.replace(b"content-length", request.body.len().to_string().as_bytes());
            }
            headers.add(b"x-envoy-internal", b"true");
            let out = OutRequest {
                headers,
                body: Bytes::from(request.body),
                trailers: (!request.trailers.is_empty()).then(|| {
                    pwx_host::HeaderMap::from_pairs(request.trailers.iter().map(|(k, v)| (k, v)))
                }),
            };
            let response = worker
                .clusters
                .send(&request.cluster, out, request.timeout, true)
                .await
                .unwrap_or_else(|failure| failure.as_response());
            worker.callouts.borrow_mut().remove(&(index, token));
            let result = {
                let mut chain = worker.chain.borrow_mut();
                let vm = chain.vm_mut(index);
                if vm.instance_id() != vm_instance {
                    // The VM was replaced (FAIL_RELOAD): the callout died with the old one.
                    return;
                }
                vm.on_http_call_response(
                    root,
                    token,
                    Some(CalloutResponse {
                        headers: response.headers,
                        body: response.body.to_vec(),
                        trailers: response.trailers.unwrap_or_default(),
                    }),
                )
            };
            worker.after_root_callback(index, result);
        });
        self.callouts
            .borrow_mut()
            .insert((index, token), (root, task.abort_handle()));
    }

    /// Starts a gRPC call or stream; its events go to the VM that asked for it, while the VM
    /// still listens.
    fn start_grpc(self: &Rc<Self>, index: usize, request: pwx_host::GrpcCalloutRequest) {
        let worker = self.clone();
        let (token, root) = (request.token, request.root_context_id);
        let vm_instance = self.chain.borrow().vm(index).instance_id();
        let outgoing = request.message.is_none().then(|| {
            let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
            self.grpc_senders
                .borrow_mut()
                .insert((index, token), sender);
            receiver
        });
        let task = tokio::task::spawn_local(async move {
            let mut deliver = |event: pwx_host::GrpcEvent| -> bool {
                let result = {
                    let mut chain = worker.chain.borrow_mut();
                    let vm = chain.vm_mut(index);
                    if vm.instance_id() != vm_instance {
                        // The VM was replaced (FAIL_RELOAD): the callout died with the old one.
                        return false;
                    }
                    vm.on_grpc_event(root, token, event)
                };
                let failed = result.is_err();
                worker.after_root_callback(index, result);
                !failed && worker.chain.borrow().vm(index).grpc_open(token)
            };
            crate::grpc::exchange(&worker.clusters, &request, outgoing, &mut deliver).await;
            worker.callouts.borrow_mut().remove(&(index, token));
            worker.grpc_senders.borrow_mut().remove(&(index, token));
        });
        self.callouts
            .borrow_mut()
            .insert((index, token), (root, task.abort_handle()));
    }

    /// Queues a message on a gRPC stream; `end_stream` half-closes it after the message.
    fn grpc_send(&self, index: usize, token: u32, message: &[u8], end_stream: bool) {
        let mut senders = self.grpc_senders.borrow_mut();
        if let Some(sender) = senders.get(&(index, token)) {
            // A send error means the exchange already ended: nothing to send to.
            let _ = sender.send(crate::grpc::frame(message));
        }
        if end_stream {
            senders.remove(&(index, token));
        }
    }

    /// Resets a gRPC call or stream: its task is dropped, which resets the HTTP/2 stream.
    fn cancel_grpc(&self, index: usize, token: u32) {
        if let Some((_, task)) = self.callouts.borrow_mut().remove(&(index, token)) {
            task.abort();
        }
        self.grpc_senders.borrow_mut().remove(&(index, token));
    }

    fn set_timer(self: &Rc<Self>, index: usize, root: u32, period: Option<Duration>) {
        if let Some(previous) = self.timers.borrow_mut().remove(&(index, root)) {
            previous.abort();
        }
        let Some(period) = period else { return };
        let worker = self.clone();
        let task = tokio::task::spawn_local(async move {
            let mut interval =
                tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let result = {
                    let mut chain = worker.chain.borrow_mut();
                    let vm = &mut chain.vm_mut(index);
                    vm.on_tick(root).map(|()| vm.take_deferred())
                };
                let failed = result.is_err();
                worker.after_root_callback(index, result);
                if failed {
                    return;
                }
            }
        });
        self.timers
            .borrow_mut()
            .insert((index, root), task.abort_handle());
    }

    /// Deletes a root context (after `proxy_done`): its timer stops and its callouts are
    /// cancelled, as Envoy cancels them with the context.
    fn delete_root(self: &Rc<Self>, index: usize, root: u32) {
        self.cancel_root(index, root);
        let result = self.chain.borrow_mut().vm_mut(index).delete_root(root);
        if let Err(failed) = result {
            tracing::warn!(filter = index, reason = %failed.reason, "on_delete of a root context failed");
        }
    }

    fn cancel_root(&self, index: usize, root: u32) {
        if let Some(timer) = self.timers.borrow_mut().remove(&(index, root)) {
            timer.abort();
        }
        let mut callouts = self.callouts.borrow_mut();
        callouts.retain(|&(i, _), (owner, task)| {
            let cancel = i == index && *owner == root;
            if cancel {
                task.abort();
            }
            !cancel
        });
        self.grpc_senders
            .borrow_mut()
            .retain(|key, _| callouts.contains_key(key));
    }

    /// `on_queue_ready` on the root `root` of the VM `vm_instance`, if this generation owns it.
    pub(crate) fn on_queue_ready(self: &Rc<Self>, vm_instance: u64, root: u32, token: u32) {
        if self.shut_down() {
            return;
        }
        // The filter whose root consumes the queue (filters sharing a VM have their own roots).
        let index = {
            let chain = self.chain.borrow();
            let on_vm = |f: &usize| chain.vm(*f).instance_id() == vm_instance;
            let mut candidates = (0..chain.filters.len()).filter(on_vm);
            let first = candidates.next();
            first
                .into_iter()
                .chain(candidates)
                .find(|&f| chain.filters[f].root == root)
                .or(first)
        };
        let Some(index) = index else { return };
        let result = self
            .chain
            .borrow_mut()
            .vm_mut(index)
            .on_queue_ready(root, token);
        self.after_root_callback(index, result);
    }

    /// Shuts the plugins down as Envoy does at exit: `on_done` then `on_delete` for each root
    /// (a root whose `on_done` returns false stays until `proxy_done`), timers and callouts
    /// cancelled.
    pub(crate) fn shutdown(self: &Rc<Self>) {
        let count = self.chain.borrow().filters.len();
        for index in 0..count {
            let (root, instance) = {
                let chain = self.chain.borrow();
                (chain.filters[index].root, chain.vm(index).instance_id())
            };
            self.cancel_root(index, root);
            self.plan.queue_routes.forget(instance);
            let result = self.chain.borrow_mut().vm_mut(index).shutdown_plugin(root);
            if let Err(failed) = result {
                tracing::debug!(filter = index, reason = %failed.reason, "plugin shutdown failed");
            }
        }
    }
}
