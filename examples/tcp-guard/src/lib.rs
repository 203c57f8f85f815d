//! Example proxy-wasm network (TCP) filter: counts the bytes of each connection in both
//! directions and closes a connection as soon as the client sends a configured pattern.
//!
//! Plugin configuration (JSON, required; see README.md): `{"pattern": "DROP TABLE"}`.
//!
//! Counters `tcp_guard.downstream_bytes`, `tcp_guard.upstream_bytes` and
//! `tcp_guard.blocked_connections`; one log line per connection when it ends.

mod matcher;

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, RootContext, StreamContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType, PeerType};
use serde::Deserialize;

use matcher::Matcher;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(GuardRoot { state: None })
    });
}}

/// The plugin configuration.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Bytes that make the filter close the connection when the client sends them (they may
    /// arrive split across reads).
    pattern: String,
}

/// What a configured root shares with its connections.
struct State {
    pattern: Vec<u8>,
    downstream_metric: u32,
    upstream_metric: u32,
    blocked_metric: u32,
}

struct GuardRoot {
    state: Option<Rc<State>>,
}

impl GuardRoot {
    fn configure(&self) -> Result<State, String> {
        let bytes = self
            .get_plugin_configuration()
            .ok_or("the plugin configuration is missing: give {\"pattern\": \"...\"}")?;
        let config: Config =
            serde_json::from_slice(&bytes).map_err(|e| format!("invalid configuration: {e}"))?;
        if config.pattern.is_empty() {
            return Err("`pattern` must not be empty".to_string());
        }
        let define = |name: &str| {
            hostcalls::define_metric(MetricType::Counter, name)
                .map_err(|s| format!("defining metric {name} failed: {s:?}"))
        };
        Ok(State {
            pattern: config.pattern.into_bytes(),
            downstream_metric: define("tcp_guard.downstream_bytes")?,
            upstream_metric: define("tcp_guard.upstream_bytes")?,
            blocked_metric: define("tcp_guard.blocked_connections")?,
        })
    }
}

impl Context for GuardRoot {}

impl RootContext for GuardRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        match self.configure() {
            Ok(state) => {
                self.state = Some(Rc::new(state));
                true
            }
            Err(message) => {
                log::error!("tcp-guard: {message}");
                false
            }
        }
    }

    fn create_stream_context(&self, _context_id: u32) -> Option<Box<dyn StreamContext>> {
        let state = self.state.clone()?;
        Some(Box::new(Guard {
            matcher: Matcher::new(state.pattern.clone()),
            state,
            downstream: 0,
            upstream: 0,
            blocked: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::StreamContext)
    }
}

/// One connection.
struct Guard {
    state: Rc<State>,
    matcher: Matcher,
    downstream: u64,
    upstream: u64,
    blocked: bool,
}

impl Guard {
    fn count(metric: u32, bytes: usize) {
        if bytes > 0
            && let Err(status) = hostcalls::increment_metric(metric, bytes as i64)
        {
            log::warn!("tcp-guard: incrementing a metric failed: {status:?}");
        }
    }
}

impl Context for Guard {}

impl StreamContext for Guard {
    fn on_downstream_data(&mut self, size: usize, _end_of_stream: bool) -> Action {
        if self.blocked {
            return Action::Pause;
        }
        self.downstream += size as u64;
        Self::count(self.state.downstream_metric, size);
        let data = self.get_downstream_data(0, size).unwrap_or_default();
        if self.matcher.feed(&data) {
            self.blocked = true;
            Self::count(self.state.blocked_metric, 1);
            log::warn!("tcp-guard: the client sent the blocked pattern; closing the connection");
            self.close_downstream();
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_upstream_data(&mut self, size: usize, _end_of_stream: bool) -> Action {
        self.upstream += size as u64;
        Self::count(self.state.upstream_metric, size);
        Action::Continue
    }

    fn on_downstream_close(&mut self, peer: PeerType) {
        let by = match peer {
            PeerType::Local => "the proxy",
            PeerType::Remote => "the client",
            _ => "unknown",
        };
        log::info!("tcp-guard: connection closed by {by}");
    }

    fn on_log(&mut self) {
        let client = self
            .get_property(vec!["source", "address"])
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|| "?".to_string());
        log::info!(
            "tcp-guard: client {client}: {} bytes from the client, {} bytes from the upstream{}",
            self.downstream,
            self.upstream,
            if self.blocked { ", blocked" } else { "" }
        );
    }
}
