//! Envoy's failure policies: what a stream gets when its VM fails, and when a failed VM may be
//! rebuilt under `FAIL_RELOAD`.

use crate::state::LocalReply;
use pwx_abi::{FailurePolicy, GrpcStatus};
use std::time::{Duration, Instant};

/// What to do with a stream whose VM failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureAction {
    /// Reply locally (FAIL_CLOSED, and FAIL_RELOAD for in-flight streams).
    Reply(LocalReply),
    /// Go on without the plugin (FAIL_OPEN).
    Bypass,
}

/// Envoy's fail-closed reply: 503, empty body, gRPC UNAVAILABLE, details `wasm_fail_stream`.
pub fn fail_closed_reply() -> LocalReply {
    LocalReply {
        status: 503,
        details: "wasm_fail_stream".into(),
        body: Vec::new(),
        headers: Vec::new(),
        grpc_status: Some(GrpcStatus::Unavailable as u32),
    }
}

/// The action for a stream under `policy`.
pub fn stream_action(policy: FailurePolicy) -> FailureAction {
    match policy.effective() {
        FailurePolicy::FailOpen => FailureAction::Bypass,
        _ => FailureAction::Reply(fail_closed_reply()),
    }
}

/// Rebuild pacing for FAIL_RELOAD: a fresh VM may be built once the backoff since the last
/// load (the VM's creation, then each attempt) has passed — a VM that fails within the backoff
/// of its start is not rebuilt before it, as in Envoy; the interval grows (doubling, capped at
/// 10× the base) while rebuilds keep failing and resets after a success.
#[derive(Clone, Debug)]
pub struct ReloadBackoff {
    base: Duration,
    current: Duration,
    last_attempt: Option<Instant>,
}

impl ReloadBackoff {
    /// Backoff starting at `base` (Envoy's default is 1 s), for a VM loaded now.
    pub fn new(base: Duration) -> Self {
        ReloadBackoff {
            base,
            current: base,
            last_attempt: Some(Instant::now()),
        }
    }

    /// Whether a rebuild may be tried at `now`; if so the attempt is recorded.
    pub fn try_attempt(&mut self, now: Instant) -> bool {
        match self.last_attempt {
            Some(last) if now.duration_since(last) < self.current => false,
            _ => {
                self.last_attempt = Some(now);
                true
            }
        }
    }

    /// Records the outcome of the attempt.
    pub fn record(&mut self, succeeded: bool) {
        self.current = if succeeded {
            self.base
        } else {
            (self.current * 2).min(self.base * 10)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_map_as_envoy() {
        assert_eq!(
            stream_action(FailurePolicy::FailOpen),
            FailureAction::Bypass
        );
        assert_eq!(
            stream_action(FailurePolicy::Unspecified),
            FailureAction::Reply(fail_closed_reply())
        );
        assert_eq!(
            stream_action(FailurePolicy::FailReload),
            FailureAction::Reply(fail_closed_reply())
        );
    }

    #[test]
    fn backoff_paces_rebuilds() {
        let mut backoff = ReloadBackoff::new(Duration::from_millis(100));
        let loaded = Instant::now();
        assert!(!backoff.try_attempt(loaded + Duration::from_millis(50)));
        let t0 = loaded + Duration::from_millis(100);
        assert!(backoff.try_attempt(t0));
        backoff.record(false);
        assert!(!backoff.try_attempt(t0 + Duration::from_millis(150)));
        assert!(backoff.try_attempt(t0 + Duration::from_millis(250)));
        backoff.record(true);
        assert!(backoff.try_attempt(t0 + Duration::from_millis(400)));
    }
}
