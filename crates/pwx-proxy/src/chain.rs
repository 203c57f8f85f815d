//! The filters of one worker: the VM replicas they run on and each filter's root context, and
//! how a failed replica is rebuilt under FAIL_RELOAD. Filters whose plugins have the same
//! `vm_id`, module and VM configuration share one VM per worker, as in Envoy: their context ids
//! are numbered together and a trap in one fails the others. The request lifecycle that
//! drives them is in `stream/`; actions that outlive a callback are applied in `dispatch.rs`.

use pwx_host::{PluginConfig, Vm};
use std::sync::Arc;

/// A filter on this worker: which VM it runs on, its root context, and what it takes to
/// rebuild its VM under FAIL_RELOAD.
pub(crate) struct Filter {
    /// Index into `Chain::vms`.
    pub(crate) vm: usize,
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

/// The filters of one worker, in request order, and their VMs.
pub(crate) struct Chain {
    pub(crate) vms: Vec<Vm>,
    pub(crate) filters: Vec<Filter>,
}

impl Chain {
    /// The VM filter `f` runs on.
    pub(crate) fn vm(&self, f: usize) -> &Vm {
        &self.vms[self.filters[f].vm]
    }

    /// The VM filter `f` runs on, to call into.
    pub(crate) fn vm_mut(&mut self, f: usize) -> &mut Vm {
        let vm = self.filters[f].vm;
        &mut self.vms[vm]
    }

    /// The filters that run on the same VM as `f` (`f` included).
    pub(crate) fn sharing(&self, f: usize) -> impl Iterator<Item = usize> + '_ {
        let vm = self.filters[f].vm;
        (0..self.filters.len()).filter(move |&g| self.filters[g].vm == vm)
    }

    /// Under FAIL_RELOAD, builds a fresh VM (full start-up) for `f` and starts the plugin of
    /// every filter that shared the failed one (`on_vm_start`, `on_configure` each), once the
    /// backoff allows; the filters restarted, or nothing if the VM is not back.
    pub(crate) fn reload(&mut self, f: usize) -> Vec<usize> {
        let filter = &mut self.filters[f];
        if filter.plugin.failure_policy != pwx_abi::FailurePolicy::FailReload
            || !filter
                .rebuild
                .backoff
                .try_attempt(std::time::Instant::now())
        {
            return Vec::new();
        }
        let sharing: Vec<usize> = self.sharing(f).collect();
        let filter = &self.filters[f];
        let rebuilt = Vm::new(
            &filter.rebuild.module,
            filter.rebuild.vm_config.clone(),
            filter.rebuild.services.clone(),
            &filter.rebuild.limits,
        )
        .map_err(|e| e.to_string())
        .and_then(|mut vm| {
            let mut roots = Vec::new();
            for &g in &sharing {
                let root = vm
                    .start_plugin((*self.filters[g].plugin).clone())
                    .map_err(|e| e.to_string())?;
                roots.push(root);
            }
            Ok((vm, roots))
        });
        let name = self.filters[f].plugin.name.clone();
        match rebuilt {
            Ok((vm, roots)) => {
                tracing::info!(plugin = %name, "FAIL_RELOAD: rebuilt the failed VM");
                let index = self.filters[f].vm;
                self.vms[index] = vm;
                for (&g, root) in sharing.iter().zip(roots) {
                    self.filters[g].root = root;
                }
                self.filters[f].rebuild.backoff.record(true);
                sharing
            }
            Err(error) => {
                tracing::warn!(plugin = %name, %error, "FAIL_RELOAD: rebuilding the VM failed; failing closed until the next attempt");
                self.filters[f].rebuild.backoff.record(false);
                Vec::new()
            }
        }
    }
}
