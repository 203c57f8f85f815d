//! The filter chain of one worker, run for one request with Envoy's order: request path in
//! configured order, response path in reverse, a local reply running the response path of the
//! filter that sent it and those before it, `on_log` then `on_done`/`on_delete` for each filter.
//!
//! Bodies are handed over whole (this first data plane buffers them): each filter sees one body
//! callback with `end_of_stream` set.

use bytes::Bytes;
use pwx_host::failure::{FailureAction, fail_closed_reply, stream_action};
use pwx_host::{
    Deferred, DeferredAction, Direction, Flow, HeaderMap, LocalReply, PluginConfig, StreamInfo, Vm,
    VmFailed,
};
use std::sync::Arc;

/// A filter on this worker: its VM replica and root context, and what it takes to rebuild the
/// replica under FAIL_RELOAD.
pub(crate) struct Filter {
    pub(crate) vm: Vm,
    pub(crate) root: u32,
    pub(crate) plugin: Arc<PluginConfig>,
    pub(crate) rebuild: Rebuild,
}

/// The ingredients of a fresh replica, and the backoff between attempts.
pub(crate) struct Rebuild {
    pub(crate) module: pwx_host::Module,
    pub(crate) vm_config: pwx_host::VmConfig,
    pub(crate) services: Arc<pwx_host::Services>,
    pub(crate) limits: pwx_host::Limits,
    pub(crate) backoff: pwx_host::failure::ReloadBackoff,
}

impl Filter {
    /// Under FAIL_RELOAD, builds a fresh replica (full start-up, `on_vm_start`, `on_configure`)
    /// once the backoff allows; `true` if the filter has a live VM again.
    fn reload(&mut self) -> bool {
        if self.plugin.failure_policy != pwx_abi::FailurePolicy::FailReload
            || !self.rebuild.backoff.try_attempt(std::time::Instant::now())
        {
            return false;
        }
        let rebuilt = Vm::new(
            &self.rebuild.module,
            self.rebuild.vm_config.clone(),
            self.rebuild.services.clone(),
            &self.rebuild.limits,
        )
        .map_err(|e| e.to_string())
        .and_then(|mut vm| {
            vm.start_plugin((*self.plugin).clone())
                .map(|root| (vm, root))
                .map_err(|e| e.to_string())
        });
        match rebuilt {
            Ok((vm, root)) => {
                tracing::info!(plugin = %self.plugin.name, "FAIL_RELOAD: rebuilt the failed VM");
                self.vm = vm;
                self.root = root;
                self.rebuild.backoff.record(true);
                true
            }
            Err(error) => {
                tracing::warn!(plugin = %self.plugin.name, %error, "FAIL_RELOAD: rebuilding the VM failed; failing closed until the next attempt");
                self.rebuild.backoff.record(false);
                false
            }
        }
    }
}

/// Why the chain stopped before the upstream.
pub(crate) enum Stopped {
    /// A filter (index) sent a local reply; its own response path runs too.
    LocalReply(usize, LocalReply),
    /// A filter's VM failed under FAIL_CLOSED: 503, and its response path is skipped.
    FailClosed(usize),
    /// A filter paused and nothing can resume it yet (callouts arrive with host part 2).
    PausedForever(usize),
    /// Buffering the request body would exceed the limit: 413.
    TooLarge,
}

/// One request's streams, one per filter (`None` once a fail-open filter is bypassed).
pub(crate) struct Streams(pub(crate) Vec<Option<u32>>, StreamInfo);

/// A finished response.
pub(crate) struct Response {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) details: Option<String>,
}

impl Response {
    pub(crate) fn local(reply: &LocalReply) -> Response {
        let mut headers = HeaderMap::new();
        headers.add(b":status", reply.status.to_string().as_bytes());
        for (k, v) in &reply.headers {
            headers.add(k, v);
        }
        if !reply.body.is_empty() && headers.get(b"content-type").is_none() {
            headers.add(b"content-type", b"text/plain");
        }
        Response {
            headers,
            body: Bytes::from(reply.body.clone()),
            details: Some(reply.details.clone()),
        }
    }
}

fn local_reply_of(deferred: &[Deferred], context: u32) -> Option<LocalReply> {
    deferred.iter().find_map(|d| match &d.action {
        DeferredAction::LocalReply(reply) if d.context_id == context => Some(reply.clone()),
        _ => None,
    })
}

/// What one filter did with the data.
enum Outcome<T> {
    Continue(T),
    Reply(LocalReply),
    Failed,
    Stop,
    Overflow,
}

fn outcome<T>(result: Result<pwx_host::Step<T>, VmFailed>, context: u32) -> Outcome<T> {
    match result {
        Err(_) => Outcome::Failed,
        Ok(step) => {
            if let Some(reply) = local_reply_of(&step.deferred, context) {
                return Outcome::Reply(reply);
            }
            match step.flow {
                Flow::Continue(data) => Outcome::Continue(data),
                Flow::Stop => Outcome::Stop,
                Flow::BufferOverflow => Outcome::Overflow,
            }
        }
    }
}

pub(crate) struct Chain {
    pub(crate) filters: Vec<Filter>,
}

impl Chain {
    /// Creates the per-request streams.
    pub(crate) fn open(&mut self, info: &StreamInfo) -> Streams {
        Streams(
            self.filters
                .iter_mut()
                .map(|f| f.vm.create_stream(f.root, info.clone()))
                .collect(),
            info.clone(),
        )
    }

    /// A filter whose VM had already failed before this stream: FAIL_OPEN bypasses it (`true`),
    /// the other policies answer 503. A VM that fails *during* the stream answers 503 under
    /// every policy, as Envoy does for the in-flight stream.
    fn bypass(&mut self, index: usize, streams: &mut Streams) -> bool {
        match stream_action(self.filters[index].plugin.failure_policy) {
            FailureAction::Bypass => {
                streams.0[index] = None;
                true
            }
            FailureAction::Reply(_) => false,
        }
    }

    /// Applies [`Chain::bypass`] to every filter whose VM failed before this stream started.
    pub(crate) fn skip_failed(&mut self, streams: &mut Streams) -> Result<(), Stopped> {
        for i in 0..self.filters.len() {
            if self.filters[i].vm.failure().is_none() {
                continue;
            }
            if self.filters[i].reload() {
                let filter = &mut self.filters[i];
                streams.0[i] = filter.vm.create_stream(filter.root, streams.1.clone());
            } else if !self.bypass(i, streams) {
                return Err(Stopped::FailClosed(i));
            }
        }
        Ok(())
    }

    /// The request path: headers then body through each filter in order.
    pub(crate) fn request(
        &mut self,
        streams: &mut Streams,
        mut headers: HeaderMap,
        mut body: Bytes,
    ) -> Result<(HeaderMap, Bytes), Stopped> {
        let end_with_headers = body.is_empty();
        self.skip_failed(streams)?;
        for i in 0..self.filters.len() {
            let Some(context) = streams.0[i] else {
                continue;
            };
            match outcome(
                self.filters[i].vm.on_headers(
                    context,
                    Direction::Request,
                    headers,
                    end_with_headers,
                ),
                context,
            ) {
                Outcome::Continue(h) => headers = h,
                Outcome::Reply(reply) => return Err(Stopped::LocalReply(i, reply)),
                Outcome::Failed => return Err(Stopped::FailClosed(i)),
                Outcome::Stop | Outcome::Overflow => return Err(Stopped::PausedForever(i)),
            }
        }
        if !body.is_empty() {
            for i in 0..self.filters.len() {
                let Some(context) = streams.0[i] else {
                    continue;
                };
                match outcome(
                    self.filters[i]
                        .vm
                        .on_body(context, Direction::Request, &body, true),
                    context,
                ) {
                    Outcome::Continue(b) => body = Bytes::from(b),
                    Outcome::Reply(reply) => return Err(Stopped::LocalReply(i, reply)),
                    Outcome::Failed => return Err(Stopped::FailClosed(i)),
                    Outcome::Overflow => return Err(Stopped::TooLarge),
                    Outcome::Stop => return Err(Stopped::PausedForever(i)),
                }
            }
        }
        Ok((headers, body))
    }

    /// The response path from filter `from` down to the first one.
    pub(crate) fn response(
        &mut self,
        streams: &mut Streams,
        from: Option<usize>,
        mut response: Response,
    ) -> Response {
        let Some(from) = from else { return response };
        for i in (0..=from).rev() {
            let Some(context) = streams.0[i] else {
                continue;
            };
            let end_with_headers = response.body.is_empty();
            match outcome(
                self.filters[i].vm.on_headers(
                    context,
                    Direction::Response,
                    response.headers,
                    end_with_headers,
                ),
                context,
            ) {
                Outcome::Continue(h) => response.headers = h,
                Outcome::Reply(reply) => {
                    response = Response::local(&reply);
                    continue;
                }
                Outcome::Failed => return Response::local(&fail_closed_reply()),
                Outcome::Stop | Outcome::Overflow => {
                    return paused_forever(i, &self.filters[i].plugin.name);
                }
            }
            if response.body.is_empty() {
                continue;
            }
            match outcome(
                self.filters[i]
                    .vm
                    .on_body(context, Direction::Response, &response.body, true),
                context,
            ) {
                Outcome::Continue(b) => response.body = Bytes::from(b),
                Outcome::Reply(reply) => response = Response::local(&reply),
                Outcome::Failed => return Response::local(&fail_closed_reply()),
                Outcome::Overflow => {
                    return Response::local(&LocalReply {
                        status: 500,
                        details: "response_payload_too_large".into(),
                        body: b"Internal Server Error".to_vec(),
                        headers: Vec::new(),
                        grpc_status: None,
                    });
                }
                Outcome::Stop => return paused_forever(i, &self.filters[i].plugin.name),
            }
        }
        response
    }

    /// `on_log` for every filter, then `on_done` and `on_delete`.
    pub(crate) fn close(&mut self, streams: Streams, request: &HeaderMap, response: &HeaderMap) {
        for (filter, context) in self.filters.iter_mut().zip(&streams.0) {
            if let Some(context) = *context {
                filter
                    .vm
                    .set_final_maps(context, Some(request), Some(response), None);
                let _ = filter.vm.on_log(context);
            }
        }
        for (filter, context) in self.filters.iter_mut().zip(streams.0) {
            if let Some(context) = context {
                let _ = filter.vm.finish_stream(context);
                for deferred in filter.vm.take_deferred() {
                    tracing::debug!(plugin = %filter.plugin.name, ?deferred, "deferred action not applied by this data plane yet");
                }
            }
        }
    }

    /// Index of the last filter (where a full response path starts).
    pub(crate) fn last(&self) -> Option<usize> {
        self.filters.len().checked_sub(1)
    }
}

/// A filter paused and this data plane cannot resume it yet: answer 500 with details that say
/// so, rather than hang the client.
pub(crate) fn paused_forever(index: usize, name: &str) -> Response {
    tracing::warn!(
        filter = index,
        plugin = name,
        "filter paused the stream; resuming needs callouts (host runtime part 2)"
    );
    Response::local(&LocalReply {
        status: 500,
        details: "pwx_filter_paused_without_resume".into(),
        body: format!("filter {name} paused the stream and nothing can resume it yet\n")
            .into_bytes(),
        headers: Vec::new(),
        grpc_status: None,
    })
}
