//! Example proxy-wasm filter: a token bucket per client in shared data, refilled on a tick.
//!
//! Plugin configuration (JSON, required; see README.md):
//!
//! ```json
//! {"capacity": 3, "refill_tokens": 1, "refill_interval_ms": 10000, "key_header": "x-api-key"}
//! ```
//!
//! Each request takes a token from its client's bucket (compare-and-swap on shared data, so
//! all workers share one bucket per client); an empty bucket means `429` with `retry-after`.
//! Ticks refill the buckets (see `bucket.rs` for how). Counters `rate_limit.allowed` and
//! `rate_limit.limited` count the decisions.

mod bucket;
mod config;

use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType, Status};

use bucket::{Bucket, address_without_port, decode_u64, encode_u64};
use config::Config;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(RateLimitRoot { state: None })
    });
}}

/// Compare-and-swap attempts before a request gives up (and is refused).
const CAS_ATTEMPTS: usize = 16;

/// What a configured root shares with its streams.
struct State {
    config: Config,
    /// Shared-data key prefix: `rate-limit/<plugin name>/`.
    prefix: String,
    allowed_metric: u32,
    limited_metric: u32,
}

impl State {
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn interval_nanos(&self) -> u64 {
        self.config.refill_interval_ms.saturating_mul(1_000_000)
    }
}

struct RateLimitRoot {
    state: Option<Rc<State>>,
}

fn nanos_since_unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl RateLimitRoot {
    fn configure(&self) -> Result<State, String> {
        let config = Config::parse(self.get_plugin_configuration().as_deref())?;
        let plugin = self
            .get_property(vec!["plugin_name"])
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let define = |name: &str| {
            hostcalls::define_metric(MetricType::Counter, name)
                .map_err(|s| format!("defining metric {name} failed: {s:?}"))
        };
        Ok(State {
            config,
            prefix: format!("rate-limit/{plugin}/"),
            allowed_metric: define("rate_limit.allowed")?,
            limited_metric: define("rate_limit.limited")?,
        })
    }

    /// Publishes the current epoch: `(now - start) / interval`, never moving backwards.
    fn publish_epoch(&self, state: &State) {
        let now = nanos_since_unix(self.get_current_time());
        let start = match self.get_shared_data(&state.key("start")) {
            (Some(bytes), _) => decode_u64(&bytes).unwrap_or(now),
            (None, _) => now,
        };
        let epoch = now.saturating_sub(start) / state.interval_nanos().max(1);
        let key = state.key("epoch");
        for _ in 0..CAS_ATTEMPTS {
            let (stored, cas) = self.get_shared_data(&key);
            if stored
                .as_deref()
                .and_then(decode_u64)
                .is_some_and(|e| e >= epoch)
            {
                return;
            }
            match self.set_shared_data(&key, Some(&encode_u64(epoch)), cas) {
                Ok(()) => return,
                Err(Status::CasMismatch) => continue,
                Err(s) => {
                    log::error!("rate-limit: storing the epoch failed: {s:?}");
                    return;
                }
            }
        }
        log::warn!("rate-limit: epoch not published: too much contention");
    }
}

impl Context for RateLimitRoot {}

impl RootContext for RateLimitRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let state = match self.configure() {
            Ok(s) => s,
            Err(e) => {
                log::error!("rate-limit: configuration: {e}");
                return false;
            }
        };
        // The first VM to start fixes the epoch origin; later ones (other workers) keep it.
        let start_key = state.key("start");
        if self.get_shared_data(&start_key).0.is_none() {
            let now = nanos_since_unix(self.get_current_time());
            if let Err(s) = self.set_shared_data(&start_key, Some(&encode_u64(now)), None) {
                log::error!("rate-limit: storing the start time failed: {s:?}");
                return false;
            }
        }
        self.set_tick_period(Duration::from_millis(state.config.refill_interval_ms));
        self.state = Some(Rc::new(state));
        true
    }

    fn on_tick(&mut self) {
        if let Some(state) = self.state.clone() {
            self.publish_epoch(&state);
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Streams only exist after on_configure succeeded.
        let state = self.state.as_ref().map(Rc::clone)?;
        Some(Box::new(RateLimit { state }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct RateLimit {
    state: Rc<State>,
}

impl Context for RateLimit {}

impl RateLimit {
    fn client_key(&self) -> String {
        if let Some(header) = &self.state.config.key_header
            && let Some(value) = self.get_http_request_header(header)
        {
            return format!("{header}={value}");
        }
        let address = self
            .get_property(vec!["source", "address"])
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        format!("ip={}", address_without_port(&address))
    }

    /// Takes a token from the client's bucket; `Some(true)` allowed, `Some(false)` empty, `None`
    /// when every compare-and-swap attempt lost a race.
    fn take_token(&self, client: &str) -> Option<bool> {
        let cfg = &self.state.config;
        let epoch = self
            .get_shared_data(&self.state.key("epoch"))
            .0
            .as_deref()
            .and_then(decode_u64)
            .unwrap_or(0);
        let key = self.state.key(&format!("bucket/{client}"));
        for _ in 0..CAS_ATTEMPTS {
            let (stored, cas) = self.get_shared_data(&key);
            let bucket = stored
                .as_deref()
                .and_then(Bucket::decode)
                .unwrap_or(Bucket {
                    tokens: cfg.capacity,
                    epoch,
                })
                .refill(epoch, cfg.refill_tokens, cfg.capacity);
            let Some(after) = bucket.take() else {
                return Some(false);
            };
            match self.set_shared_data(&key, Some(&after.encode()), cas) {
                Ok(()) => return Some(true),
                Err(Status::CasMismatch) => continue,
                Err(s) => {
                    log::error!("rate-limit: storing bucket {key} failed: {s:?}");
                    return None;
                }
            }
        }
        None
    }
}

impl HttpContext for RateLimit {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let client = self.client_key();
        let allowed = self.take_token(&client).unwrap_or_else(|| {
            log::warn!("rate-limit: bucket for {client} is contended: refusing");
            false
        });
        let metric = if allowed {
            self.state.allowed_metric
        } else {
            self.state.limited_metric
        };
        if let Err(s) = hostcalls::increment_metric(metric, 1) {
            log::error!("rate-limit: incrementing metric {metric} failed: {s:?}");
        }
        if allowed {
            return Action::Continue;
        }
        log::info!("rate-limit: 429 for {client}");
        let retry_after = self.state.config.retry_after_secs().to_string();
        self.send_http_response(
            429,
            vec![
                ("retry-after", retry_after.as_str()),
                ("content-type", "text/plain"),
            ],
            Some(b"Too Many Requests\n"),
        );
        Action::Pause
    }
}
