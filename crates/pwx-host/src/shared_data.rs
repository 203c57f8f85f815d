//! Shared key-value data: process-wide, one namespace per `vm_id`, with Envoy's
//! compare-and-swap rules.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

/// One `vm_id`'s keys: value and CAS token.
type Namespace = HashMap<Vec<u8>, (Vec<u8>, u32)>;

/// The process-wide shared-data store.
pub struct SharedData {
    namespaces: Mutex<HashMap<String, Namespace>>,
    next_cas: AtomicU32,
}

impl Default for SharedData {
    fn default() -> Self {
        SharedData {
            namespaces: Mutex::default(),
            next_cas: AtomicU32::new(1),
        }
    }
}

/// A write lost a compare-and-swap race.
#[derive(Debug, PartialEq, Eq)]
pub struct CasMismatch;

impl SharedData {
    /// The value and its CAS token.
    pub fn get(&self, vm_id: &str, key: &[u8]) -> Option<(Vec<u8>, u32)> {
        let namespaces = self.namespaces.lock().unwrap_or_else(|p| p.into_inner());
        namespaces.get(vm_id)?.get(key).cloned()
    }

    /// Writes `value`. `cas == 0` writes unconditionally; otherwise the write fails if the key
    /// exists with another CAS (a missing key is written whatever `cas` says, as in Envoy).
    pub fn set(&self, vm_id: &str, key: &[u8], value: &[u8], cas: u32) -> Result<(), CasMismatch> {
        let mut namespaces = self.namespaces.lock().unwrap_or_else(|p| p.into_inner());
        let namespace = namespaces.entry(vm_id.to_string()).or_default();
        if cas != 0
            && let Some((_, current)) = namespace.get(key)
            && *current != cas
        {
            return Err(CasMismatch);
        }
        namespace.insert(key.to_vec(), (value.to_vec(), self.fresh_cas()));
        Ok(())
    }

    /// One global counter that starts at 1 and skips 0.
    fn fresh_cas(&self) -> u32 {
        loop {
            let cas = self.next_cas.fetch_add(1, Ordering::Relaxed);
            if cas != 0 {
                return cas;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_and_swap_as_envoy() {
        let data = SharedData::default();
        assert_eq!(data.get("vm", b"k"), None);
        data.set("vm", b"k", b"1", 42).unwrap(); // missing key: cas ignored
        let (value, cas) = data.get("vm", b"k").unwrap();
        assert_eq!(value, b"1");
        assert_eq!(data.set("vm", b"k", b"2", cas + 1), Err(CasMismatch));
        data.set("vm", b"k", b"2", cas).unwrap();
        assert_eq!(data.set("vm", b"k", b"3", cas), Err(CasMismatch));
        data.set("vm", b"k", b"3", 0).unwrap();
        assert_eq!(data.get("other", b"k"), None);
    }
}
