//! Drive a compiled proxy-wasm filter from `cargo test`, on the pwx engine (the host runtime
//! `pwx run` and `pwx test` use, with Envoy's semantics): load the `.wasm`, configure it, send
//! requests, answer its callouts, step its timer, assert on what the client, the upstream and
//! the logs saw.
//!
//! ```no_run
//! use pwx_testkit::{CalloutAnswer, Filter, Request, Response};
//!
//! # fn main() -> Result<(), pwx_testkit::Error> {
//! let mut filter = Filter::load("build/my-filter.wasm")?
//!     .configuration(r#"{"deny_path_prefixes": ["/admin"]}"#)
//!     .answer_callouts(CalloutAnswer::new("auth", Response::new(200)))
//!     .start()?;
//! let outcome = filter.send(&Request::get("/admin/users"))?;
//! assert_eq!(outcome.status, 403);
//! assert!(outcome.upstream_request.is_none());
//! assert_eq!(filter.metric("my_filter_denied_total"), Some(1));
//! # Ok(()) }
//! ```

mod error;
mod exchange;
mod filter;
mod stream;

pub use error::Error;
pub use exchange::{
    Callout, CalloutAnswer, LogLine, Outcome, Request, Response, Upstream, UpstreamRequest,
};
pub use filter::{Filter, FilterBuilder};
pub use pwx_abi::LogLevel;
pub use pwx_host::LocalReply;
