//! A stream's contexts, one per filter of its chain: opened with the stream (and registered so
//! the filters' later actions reach the stream's driver), closed exactly once with Envoy's
//! `on_log`, then `on_done` and `on_delete` — also when the client goes away mid-stream and the
//! driver is dropped.

use crate::dispatch::{Mailbox, Waiter};
use crate::worker::Worker;
use pwx_host::failure::{FailureAction, stream_action};
use pwx_host::{HeaderMap, StreamInfo};
use std::rc::Rc;

/// The stream's context in each filter of its chain.
pub(crate) struct Contexts {
    worker: Rc<Worker>,
    /// The worker's filter index of each position in this listener's chain.
    pub(crate) filters: Vec<usize>,
    /// The stream context in each filter (`None` once a fail-open filter is bypassed).
    pub(crate) ids: Vec<Option<u32>>,
    info: StreamInfo,
    mailbox: Mailbox,
    /// What the whole chain ended with, for `on_log` and properties.
    pub(crate) request: HeaderMap,
    pub(crate) response: HeaderMap,
    pub(crate) response_trailers: Option<HeaderMap>,
    /// Body bytes received from the client and sent to it.
    pub(crate) request_body_bytes: u64,
    pub(crate) response_body_bytes: u64,
    /// When the stream started (`request.duration` at `on_log`).
    started: std::time::Instant,
    /// When the request went upstream and the response's last byte came back
    /// (`response.backend_latency`).
    pub(crate) upstream_started: Option<tokio::time::Instant>,
    pub(crate) upstream_ended: Option<tokio::time::Instant>,
    closed: bool,
    /// Keeps the stream's generation serving until the contexts are closed (after `close`).
    _active: crate::worker::Active,
}

impl Contexts {
    pub(crate) fn open(
        worker: Rc<Worker>,
        listener: usize,
        info: StreamInfo,
        mailbox: Mailbox,
    ) -> Contexts {
        let filters = worker.plan.listeners[listener].filters.clone();
        let ids: Vec<Option<u32>> = {
            let mut chain = worker.chain.borrow_mut();
            filters
                .iter()
                .map(|&f| {
                    let root = chain.filters[f].root;
                    chain.vm_mut(f).create_stream(root, info.clone())
                })
                .collect()
        };
        let mut contexts = Contexts {
            _active: worker.enter(),
            worker,
            filters,
            ids,
            info,
            mailbox,
            request: HeaderMap::new(),
            response: HeaderMap::new(),
            response_trailers: None,
            request_body_bytes: 0,
            response_body_bytes: 0,
            started: std::time::Instant::now(),
            upstream_started: None,
            upstream_ended: None,
            closed: false,
        };
        contexts.register();
        contexts
    }

    fn register(&mut self) {
        let mut waiters = self.worker.waiters.borrow_mut();
        for (&filter, id) in self.filters.iter().zip(&self.ids) {
            if let Some(context) = *id {
                waiters.insert(
                    (filter, context),
                    Waiter {
                        stopped: [false; 2],
                        mailbox: self.mailbox.clone(),
                    },
                );
            }
        }
    }

    /// The chain position of the worker's filter `filter`.
    pub(crate) fn position(&self, filter: usize, context: u32) -> Option<usize> {
        self.filters
            .iter()
            .zip(&self.ids)
            .position(|(&f, &id)| f == filter && id == Some(context))
    }

    /// Filters whose VM failed before this stream: FAIL_RELOAD rebuilds (after its backoff),
    /// FAIL_OPEN bypasses, the others answer 503 (`Err(position)`).
    pub(crate) fn skip_failed(&mut self) -> Result<(), usize> {
        let worker = self.worker.clone();
        for i in 0..self.ids.len() {
            let f = self.filters[i];
            if worker.chain.borrow().vm(f).failure().is_none() {
                continue;
            }
            let restarted = worker.rebuild_failed(f);
            if !restarted.is_empty() {
                // Every filter of this stream that ran on the rebuilt VM gets a context on it.
                for j in 0..self.ids.len() {
                    let g = self.filters[j];
                    if !restarted.contains(&g) {
                        continue;
                    }
                    let mut chain = worker.chain.borrow_mut();
                    let root = chain.filters[g].root;
                    self.ids[j] = chain.vm_mut(g).create_stream(root, self.info.clone());
                    if let Some(context) = self.ids[j] {
                        worker.waiters.borrow_mut().insert(
                            (g, context),
                            Waiter {
                                stopped: [false; 2],
                                mailbox: self.mailbox.clone(),
                            },
                        );
                    }
                }
                continue;
            }
            let policy = worker.chain.borrow().filters[f].plugin.failure_policy;
            match stream_action(policy) {
                FailureAction::Bypass => self.ids[i] = None,
                FailureAction::Reply(_) => return Err(i),
            }
        }
        Ok(())
    }

    /// Updates what every filter's properties read about this stream.
    pub(crate) fn update_info(&self, update: impl Fn(&mut StreamInfo)) {
        let mut chain = self.worker.chain.borrow_mut();
        for (&index, id) in self.filters.iter().zip(&self.ids) {
            if let Some(context) = *id {
                chain.vm_mut(index).update_stream_info(context, &update);
            }
        }
    }

    /// The route chosen after the request path: the filters' `xds.*` facts follow it when the
    /// filters' header edits picked another route than the first headers did.
    pub(crate) fn route_chosen(
        &mut self,
        host: &crate::routes::VirtualHost,
        route: &crate::routes::Route,
    ) {
        let same = self.info.virtual_host_name.as_deref() == Some(host.name.as_str())
            && self.info.route_name.as_deref() == Some(route.name.as_str());
        if !same {
            super::messages::set_route(&mut self.info, host, route);
            self.update_info(|info| super::messages::set_route(info, host, route));
        }
    }

    /// `on_log` for every filter, then `on_done` and `on_delete`.
    pub(crate) fn close(&mut self) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        let worker = self.worker.clone();
        let Ok(mut chain) = worker.chain.try_borrow_mut() else {
            tracing::error!("stream closed while its chain was busy; its contexts leak");
            return;
        };
        let (request_bytes, response_bytes) = (self.request_body_bytes, self.response_body_bytes);
        let duration = self.started.elapsed();
        let backend_latency = self
            .upstream_started
            .zip(self.upstream_ended)
            .map(|(sent, received)| received.saturating_duration_since(sent));
        let mut pending = Vec::new();
        for (&index, id) in self.filters.iter().zip(&self.ids) {
            let Some(context) = *id else { continue };
            worker.waiters.borrow_mut().remove(&(index, context));
            let vm = &mut chain.vm_mut(index);
            vm.set_final_maps(
                context,
                Some(&self.request),
                Some(&self.response),
                self.response_trailers.as_ref(),
            );
            vm.update_stream_info(context, |info| {
                info.request_body_bytes = request_bytes;
                info.response_body_bytes = response_bytes;
                info.request_duration = Some(duration);
                info.backend_latency = backend_latency;
            });
            if let Ok(deferred) = vm.on_log(context) {
                pending.push((index, deferred));
            }
        }
        for (&index, id) in self.filters.iter().zip(&self.ids) {
            let Some(context) = *id else { continue };
            let vm = &mut chain.vm_mut(index);
            let _ = vm.finish_stream(context);
            pending.push((index, vm.take_deferred()));
        }
        drop(chain);
        for (index, deferred) in pending {
            worker.apply(index, deferred, None);
        }
    }
}

impl Drop for Contexts {
    fn drop(&mut self) {
        self.close();
    }
}
