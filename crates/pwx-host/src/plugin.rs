//! What a VM and a plugin are configured with (Envoy's `VmConfig` and `PluginConfig`).

use pwx_abi::FailurePolicy;
use std::time::Duration;

/// Configuration of a VM: shared by every plugin that runs in it.
#[derive(Clone, Debug, Default)]
pub struct VmConfig {
    /// `vm_id`: names the VM and the namespace of its shared data and queues.
    pub vm_id: String,
    /// Bytes of the VM configuration (buffer 6, size passed to `proxy_on_vm_start`).
    pub configuration: Vec<u8>,
    /// The only environment WASI `environ_get` shows the module (Envoy's
    /// `environment_variables`); nothing is inherited from the host process implicitly.
    pub environment: Vec<(String, String)>,
}

/// Configuration of one plugin: one root context in each VM replica.
#[derive(Clone, Debug)]
pub struct PluginConfig {
    /// Plugin `name`: log prefix and `plugin_name` property.
    pub name: String,
    /// `root_id`: selects the root context implementation in the module (may be empty).
    pub root_id: String,
    /// Bytes of the plugin configuration (buffer 7, size passed to `proxy_on_configure`).
    pub configuration: Vec<u8>,
    /// What happens to traffic when the VM fails.
    pub failure_policy: FailurePolicy,
    /// Base backoff between rebuilds under `FAIL_RELOAD` (Envoy's default is 1 s).
    pub reload_backoff: Duration,
    /// Envoy's `allow_on_headers_stop_iteration`: a header callback's Pause stays
    /// StopIteration (body callbacks keep coming) instead of stopping the whole stream.
    pub allow_on_headers_stop_iteration: bool,
}

impl Default for PluginConfig {
    fn default() -> Self {
        PluginConfig {
            name: String::new(),
            root_id: String::new(),
            configuration: Vec::new(),
            failure_policy: FailurePolicy::Unspecified,
            reload_backoff: Duration::from_secs(1),
            allow_on_headers_stop_iteration: false,
        }
    }
}
