//! Proxy-wasm module sources, OCI image build/push/pull in both Istio formats, and a local content-addressed cache.
//!
//! - [`Image::build`] packages a `.wasm` as an OCI/Docker "compat" image or a Wasm artifact,
//!   reproducibly;
//! - [`Registry`] pushes, pulls, tags and lists tags (via `oci-client`), always reporting both the
//!   image digest and the module's sha256;
//! - [`ModuleSource`] parses `path.wasm`, `file://`, `https://…#sha256=…` and `oci://…`, and
//!   [`Fetcher`] brings any of them into a [`ModuleCache`], whose index [`ModuleCache::list`]
//!   feeds `pwx images`.

#![warn(missing_docs)]

pub mod auth;
pub mod cache;
pub mod error;
pub mod fetch;
pub mod http;
pub mod image;
pub mod registry;
pub mod source;
pub mod store;
pub mod wasm;

pub use auth::{Auth, Credentials, DockerConfig};
pub use cache::{CachedModule, ModuleCache};
pub use error::{Error, Result};
pub use fetch::{FetchedModule, Fetcher, ImageOrigin};
pub use image::{BuildOptions, ExtractedModule, Image, ImageFormat, WasmConfig};
pub use registry::{PullResult, PushResult, Registry, RegistryOptions, TagResult, parse_reference};
pub use source::ModuleSource;
pub use store::StoreEntry;
pub use wasm::{ModuleInfo, inspect};
