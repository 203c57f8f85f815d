//! Shared queues: a process-wide registry of (vm_id, name) → token, FIFO items, and the single
//! consumer that hears about new items.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Who consumes a queue: the root context that registered it last, in a given VM replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QueueConsumer {
    /// Process-unique id of the VM replica.
    pub vm_instance: u64,
    /// Root context id in that replica.
    pub root_context_id: u32,
}

/// Called on enqueue with the consumer and the token; the data plane posts
/// `proxy_on_queue_ready` to the consumer's worker (never synchronously into a VM).
pub type QueueNotifier = Arc<dyn Fn(QueueConsumer, u32) + Send + Sync>;

struct Queue {
    items: VecDeque<Vec<u8>>,
    consumer: QueueConsumer,
}

#[derive(Default)]
struct Registry {
    tokens: HashMap<(String, Vec<u8>), u32>,
    queues: HashMap<u32, Queue>,
    next_token: u32,
}

/// The process-wide shared-queue registry.
#[derive(Default)]
pub struct SharedQueues {
    registry: Mutex<Registry>,
    notifier: Mutex<Option<QueueNotifier>>,
}

/// Errors of queue operations.
#[derive(Debug, PartialEq, Eq)]
pub enum QueueError {
    /// No queue with that token or name.
    NotFound,
    /// The queue has no items.
    Empty,
}

impl SharedQueues {
    /// Installs the function that delivers `on_queue_ready`.
    pub fn set_notifier(&self, notifier: QueueNotifier) {
        *self.notifier.lock().unwrap_or_else(|p| p.into_inner()) = Some(notifier);
    }

    /// Creates the queue or takes it over: `consumer` becomes its only consumer, items stay.
    pub fn register(&self, vm_id: &str, name: &[u8], consumer: QueueConsumer) -> u32 {
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let key = (vm_id.to_string(), name.to_vec());
        if let Some(&token) = registry.tokens.get(&key) {
            if let Some(queue) = registry.queues.get_mut(&token) {
                queue.consumer = consumer;
            }
            return token;
        }
        registry.next_token = registry.next_token.checked_add(1).unwrap_or(1);
        let token = registry.next_token;
        registry.tokens.insert(key, token);
        registry.queues.insert(
            token,
            Queue {
                items: VecDeque::new(),
                consumer,
            },
        );
        token
    }

    /// The token of an existing queue.
    pub fn resolve(&self, vm_id: &str, name: &[u8]) -> Option<u32> {
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        registry
            .tokens
            .get(&(vm_id.to_string(), name.to_vec()))
            .copied()
    }

    /// Appends an item and notifies the consumer.
    pub fn enqueue(&self, token: u32, item: &[u8]) -> Result<(), QueueError> {
        let consumer = {
            let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
            let queue = registry
                .queues
                .get_mut(&token)
                .ok_or(QueueError::NotFound)?;
            queue.items.push_back(item.to_vec());
            queue.consumer
        };
        let notifier = self
            .notifier
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(notify) = notifier {
            notify(consumer, token);
        }
        Ok(())
    }

    /// Pops the oldest item (any VM may dequeue).
    pub fn dequeue(&self, token: u32) -> Result<Vec<u8>, QueueError> {
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let queue = registry
            .queues
            .get_mut(&token)
            .ok_or(QueueError::NotFound)?;
        queue.items.pop_front().ok_or(QueueError::Empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_resolve_enqueue_dequeue() {
        let queues = SharedQueues::default();
        let a = QueueConsumer {
            vm_instance: 1,
            root_context_id: 1,
        };
        let b = QueueConsumer {
            vm_instance: 2,
            root_context_id: 1,
        };
        let token = queues.register("vm", b"q", a);
        assert_ne!(token, 0);
        assert_eq!(queues.register("vm", b"q", b), token);
        assert_eq!(queues.resolve("vm", b"q"), Some(token));
        assert_eq!(queues.resolve("other", b"q"), None);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        queues.set_notifier(Arc::new(move |consumer, token| {
            sink.lock().unwrap().push((consumer, token))
        }));
        queues.enqueue(token, b"x").unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![(b, token)]);
        assert_eq!(queues.dequeue(token), Ok(b"x".to_vec()));
        assert_eq!(queues.dequeue(token), Err(QueueError::Empty));
        assert_eq!(queues.dequeue(999), Err(QueueError::NotFound));
    }
}
