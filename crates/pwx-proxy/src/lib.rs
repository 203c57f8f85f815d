//! The pwx data plane: N workers, each with its own runtime, listener socket (SO_REUSEPORT),
//! VM replicas and upstream client; a request lives and dies on one worker and takes no lock.
//!
//! This first cut buffers whole bodies and serves HTTP/1.1; streaming bodies, HTTP/2, config
//! files, admin and hot reload follow (see docs/compat.md for the current differences).

mod chain;
mod config;
mod echo;
mod server;
mod upstream;
mod worker;

pub use config::{FilterConfig, ProxyConfig, UpstreamConfig};
pub use server::{Proxy, ProxyError};
