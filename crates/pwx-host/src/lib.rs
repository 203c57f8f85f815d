//! A proxy-wasm host runtime on wasmtime that runs any proxy-wasm filter exactly as Envoy does.
//!
//! The embedder (the `pwx run` data plane, `pwx test`, the testkit, a tower layer) builds one
//! [`Engine`], loads [`Module`]s, creates a [`Vm`] replica per worker, starts plugins on it and
//! drives stream callbacks. The host does no I/O of its own: logs, callouts and queue
//! notifications go through the [`Services`] the embedder supplies, and every action a module
//! asks for mid-callback comes back as a [`Deferred`] action once the callback returns.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use pwx_host::{Direction, Engine, EngineConfig, HeaderMap, Limits, PluginConfig, Services, Vm, VmConfig};
//! use std::sync::Arc;
//!
//! let engine = Engine::new(&EngineConfig::default())?;
//! let module = engine.load(&std::fs::read("filter.wasm")?)?;
//! let mut vm = Vm::new(&module, VmConfig::default(), Arc::new(Services::default()), &Limits::default())?;
//! let root = vm.start_plugin(PluginConfig { name: "my-filter".into(), ..Default::default() })?;
//! let stream = vm.create_stream(root, Default::default()).expect("root exists");
//! let headers = HeaderMap::from_pairs([(":method", "GET"), (":path", "/")]);
//! let step = vm.on_headers(stream, Direction::Request, headers, true)?;
//! # Ok(()) }
//! ```

mod cache;
pub mod engine;
pub mod error;
pub mod failure;
mod grpc;
pub mod headers;
mod hostcalls;
pub mod http;
pub mod limits;
mod memory;
pub mod metrics;
pub mod module;
pub mod network;
pub mod plugin;
pub mod queues;
pub mod services;
pub mod shared_data;
mod state;
pub mod stream_info;
pub mod vm;

pub use engine::{Engine, EngineConfig, PoolingConfig};
pub use error::{LoadError, StartError};
pub use headers::{HeaderBytes, HeaderMap};
pub use http::{Direction, Flow, Held, Step};
pub use limits::Limits;
pub use module::Module;
pub use network::NetDirection;
pub use plugin::{PluginConfig, VmConfig};
pub use services::{GrpcCalloutRequest, GrpcEvent, LogSink, MemoryLog, Services, TracingLog};
pub use state::{Deferred, DeferredAction, LocalReply};
pub use stream_info::StreamInfo;
pub use vm::{Vm, VmFailed};
