//! Handing requests to the filter workers: one queue per worker, filled round robin (as the
//! kernel spreads `pwx run`'s connections over its workers, without regard to load), and each
//! request run by the normal stream driver on its worker.

use super::upstream::InnerUpstream;
use crate::body::{InBody, OutBody};
use crate::stream::{self, StreamReset};
use crate::worker::Worker;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// The layer's only listener plan: every worker serves one chain.
const LISTENER: usize = 0;

/// One request for a worker.
pub(crate) struct Job {
    pub(crate) request: http::Request<InBody>,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) local: Option<SocketAddr>,
    /// Where the request goes when it leaves the filters.
    pub(crate) inner: InnerUpstream,
    /// Where the final response head goes (its body streams on from the worker).
    pub(crate) done: oneshot::Sender<Result<http::Response<OutBody>, StreamReset>>,
}

/// The layer's end of the queues.
pub(crate) struct Queues {
    workers: Vec<mpsc::UnboundedSender<Job>>,
    next: AtomicUsize,
}

impl Queues {
    /// Queues a request for the next worker; `false` if that worker has stopped.
    pub(crate) fn submit(&self, job: Job) -> bool {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len().max(1);
        self.workers
            .get(index)
            .is_some_and(|worker| worker.send(job).is_ok())
    }
}

/// The workers' end: each worker takes its own queue when it starts.
#[derive(Clone)]
pub(crate) struct Feed {
    queues: Arc<Mutex<HashMap<usize, mpsc::UnboundedReceiver<Job>>>>,
}

impl Feed {
    /// One queue per worker (`workers` ≥ 1).
    pub(crate) fn new(workers: usize) -> (Queues, Feed) {
        let mut senders = Vec::new();
        let mut receivers = HashMap::new();
        for index in 0..workers.max(1) {
            let (sender, receiver) = mpsc::unbounded_channel();
            senders.push(sender);
            receivers.insert(index, receiver);
        }
        let queues = Queues {
            workers: senders,
            next: AtomicUsize::new(0),
        };
        let feed = Feed {
            queues: Arc::new(Mutex::new(receivers)),
        };
        (queues, feed)
    }

    /// Serves worker `index`'s queue, each request in a task of its own.
    pub(crate) async fn serve(self, index: usize, worker: Rc<Worker>) {
        let queue = self
            .queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&index);
        let Some(mut jobs) = queue else {
            tracing::error!(
                worker = index,
                "the layer has no request queue for this worker"
            );
            return;
        };
        while let Some(job) = jobs.recv().await {
            tokio::task::spawn_local(run(worker.clone(), job));
        }
    }
}

/// Runs one request; a caller that went away (its future dropped) ends the stream as a client
/// that disconnects does.
async fn run(worker: Rc<Worker>, job: Job) {
    let Job {
        request,
        peer,
        local,
        inner,
        mut done,
    } = job;
    let stream = stream::serve(worker, LISTENER, request, peer, local, Some(inner));
    tokio::select! {
        result = stream => {
            let _ = done.send(result);
        }
        () = done.closed() => {}
    }
}
