//! The filters of one worker: each filter's VM replica and root context, and how a failed
//! replica is rebuilt under FAIL_RELOAD. The request lifecycle that drives them is in
//! `stream.rs`; actions that outlive a callback are applied in `dispatch.rs`.

use pwx_host::{PluginConfig, Vm};
use std::sync::Arc;

/// A filter on this worker: its VM replica and root context, and what it takes to rebuild the
/// replica under FAIL_RELOAD.
pub(crate) struct Filter {
    pub(crate) vm: Vm,
    pub(crate) root: u32,
    pub(crate) plugin: Arc<PluginConfig>,
    pub(crate) rebuild: Rebuild,
}

/// The ingredients of a fresh replica, and the backoff between attempts.
pub(crate) struct Rebuild {
    pub(crate) module: pwx_host::Module,
    pub(crate) vm_config: pwx_host::VmConfig,
    pub(crate) services: Arc<pwx_host::Services>,
    pub(crate) limits: pwx_host::Limits,
    pub(crate) backoff: pwx_host::failure::ReloadBackoff,
}

impl Filter {
    /// Under FAIL_RELOAD, builds a fresh replica (full start-up, `on_vm_start`, `on_configure`)
    /// once the backoff allows; `true` if the filter has a live VM again.
    pub(crate) fn reload(&mut self) -> bool {
        if self.plugin.failure_policy != pwx_abi::FailurePolicy::FailReload
            || !self.rebuild.backoff.try_attempt(std::time::Instant::now())
        {
            return false;
        }
        let rebuilt = Vm::new(
            &self.rebuild.module,
            self.rebuild.vm_config.clone(),
            self.rebuild.services.clone(),
            &self.rebuild.limits,
        )
        .map_err(|e| e.to_string())
        .and_then(|mut vm| {
            vm.start_plugin((*self.plugin).clone())
                .map(|root| (vm, root))
                .map_err(|e| e.to_string())
        });
        match rebuilt {
            Ok((vm, root)) => {
                tracing::info!(plugin = %self.plugin.name, "FAIL_RELOAD: rebuilt the failed VM");
                self.vm = vm;
                self.root = root;
                self.rebuild.backoff.record(true);
                true
            }
            Err(error) => {
                tracing::warn!(plugin = %self.plugin.name, %error, "FAIL_RELOAD: rebuilding the VM failed; failing closed until the next attempt");
                self.rebuild.backoff.record(false);
                false
            }
        }
    }
}

/// The filters of one worker, in request order.
pub(crate) struct Chain {
    pub(crate) filters: Vec<Filter>,
}
