//! Wasm plugins and VMs (Envoy's `PluginConfig` and `VmConfig`), and where module code comes
//! from.

use pwx_abi::FailurePolicy;
use std::path::PathBuf;
use std::time::Duration;

/// One proxy-wasm plugin: a root context in a VM, with its configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct WasmPlugin {
    /// Plugin name (log prefix, `plugin_name` property).
    pub name: String,
    /// Selects the root context in the module (may be empty).
    pub root_id: String,
    /// Bytes given to `proxy_on_configure`.
    pub configuration: Vec<u8>,
    /// What happens to traffic when the VM fails. Never `Unspecified` here: the legacy
    /// `fail_open: true` becomes `FailOpen`, nothing becomes `FailClosed` (as Envoy does).
    pub failure_policy: FailurePolicy,
    /// Base backoff between VM rebuilds under `FailReload` (`reload_config.backoff
    /// .base_interval`; Envoy's default 1 s, and Envoy uses only the base).
    pub reload_backoff: Duration,
    /// Envoy's `allow_on_headers_stop_iteration` (default false).
    pub allow_on_headers_stop_iteration: bool,
    /// The VM the plugin runs in.
    pub vm: WasmVm,
}

/// A bootstrap Wasm service (Envoy's `WasmService`).
#[derive(Clone, Debug, PartialEq)]
pub struct WasmService {
    /// The plugin.
    pub plugin: WasmPlugin,
    /// One VM for the process (true) or one per worker (false).
    pub singleton: bool,
}

/// The VM a plugin runs in. Plugins with equal `vm_id`, code and VM configuration share it.
#[derive(Clone, Debug, PartialEq)]
pub struct WasmVm {
    /// Names the VM and the namespace of its shared data and queues (may be empty).
    pub vm_id: String,
    /// The runtime the file asked for. pwx runs every module on wasmtime; this is kept for
    /// messages only.
    pub runtime: WasmRuntime,
    /// The module.
    pub code: CodeSource,
    /// Bytes given to `proxy_on_vm_start`.
    pub configuration: Vec<u8>,
    /// Explicit environment for WASI `environ_get` (Envoy's `key_values`), in file order.
    pub environment: Vec<(String, String)>,
    /// Names of pwx's own environment variables to pass on (Envoy's `host_env_keys`); see
    /// [`WasmVm::resolved_environment`].
    pub host_env_keys: Vec<String>,
    /// Envoy's `allow_precompiled`. pwx never loads precompiled code from a module file (its
    /// own compile cache is keyed by the module's sha256); kept so the data plane can say so.
    pub allow_precompiled: bool,
    /// Envoy's `nack_on_code_cache_miss` (remote code only).
    pub nack_on_code_cache_miss: bool,
}

impl WasmVm {
    /// The environment the module sees: `host_env_keys` that `lookup` finds (keys it does not
    /// find are skipped, as Envoy does), then the explicit `environment`. The loader has checked
    /// that the two sets of names do not overlap.
    pub fn resolved_environment(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Vec<(String, String)> {
        let mut environment: Vec<(String, String)> = self
            .host_env_keys
            .iter()
            .filter_map(|key| lookup(key).map(|value| (key.clone(), value)))
            .collect();
        environment.extend(self.environment.iter().cloned());
        environment
    }
}

/// The runtime named in the file (`vm_config.runtime`). All of them run on wasmtime in pwx:
/// the proxy-wasm ABI is the same, and Envoy's runtimes differ only in speed and limits.
/// `envoy.wasm.runtime.null` (code compiled into Envoy) cannot be run and is refused at load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WasmRuntime {
    /// Not given (Envoy picks the first it was built with: v8, wasmtime, wamr).
    #[default]
    Default,
    /// `envoy.wasm.runtime.v8`.
    V8,
    /// `envoy.wasm.runtime.wasmtime`.
    Wasmtime,
    /// `envoy.wasm.runtime.wamr`.
    Wamr,
}

impl WasmRuntime {
    /// Every runtime name pwx accepts.
    pub const NAMES: [&'static str; 3] = [
        "envoy.wasm.runtime.v8",
        "envoy.wasm.runtime.wasmtime",
        "envoy.wasm.runtime.wamr",
    ];
}

/// Where a module's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeSource {
    /// A local file. Relative paths in a file are resolved against the file's directory.
    File(PathBuf),
    /// The module's bytes, inline.
    Inline(Vec<u8>),
    /// A download over HTTP(S), checked against `sha256`.
    Remote {
        /// `https://…` (or `http://` for loopback hosts; pwx-oci enforces that).
        uri: String,
        /// The module's sha256, 64 lower-case hex digits.
        sha256: String,
        /// Envoy fetches through this cluster; pwx fetches `uri` directly and keeps the name
        /// for messages. `None` in pwx YAML.
        cluster: Option<String>,
        /// Envoy's `http_uri.timeout`.
        timeout: Option<Duration>,
    },
    /// An OCI image, `oci://registry/repo:tag` or `oci://registry/repo@sha256:…` (resolved by
    /// pwx-oci). pwx YAML only: Envoy has no such source.
    Oci(String),
}
