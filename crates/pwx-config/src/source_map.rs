//! Where each model element came from, keyed by its path in the model, so checks that run on
//! the model (and the data plane's own messages) can point at the file.
//!
//! Model paths: `listeners[i]`, `listeners[i].name`, `listeners[i].address`,
//! `listeners[i].cluster` (TCP), `listeners[i].http_filters[f]`,
//! `listeners[i].network_filters[f]`, `listeners[i].virtual_hosts[v]`,
//! `listeners[i].virtual_hosts[v].domains[d]`, `listeners[i].virtual_hosts[v].routes[r]`,
//! `listeners[i].virtual_hosts[v].routes[r].cluster`, `clusters[c]`, `clusters[c].name`,
//! `clusters[c].endpoints`, `clusters[c].endpoints[e]`, `wasm_services[s]`, and for every
//! plugin at `P` (a filter or service path above): `P.vm.environment`.

use crate::error::Origin;
use std::collections::HashMap;

/// Model path → origin in the file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceMap {
    entries: HashMap<String, Origin>,
}

impl SourceMap {
    /// The origin of the model element at `model_path`, if the front end recorded one.
    pub fn get(&self, model_path: &str) -> Option<&Origin> {
        self.entries.get(model_path)
    }

    /// Records where the element at `model_path` came from.
    pub fn insert(&mut self, model_path: impl Into<String>, origin: Origin) {
        self.entries.insert(model_path.into(), origin);
    }

    /// The origin of `model_path`, or an origin that names the model path when none was
    /// recorded (configurations built in code).
    pub fn origin(&self, model_path: &str) -> Origin {
        self.get(model_path).cloned().unwrap_or_else(|| Origin {
            location: Default::default(),
            path: model_path.to_owned(),
        })
    }

    /// How many elements have an origin.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
