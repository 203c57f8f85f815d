//! What pwx reports about a built module (size, sha256, ABI version, imports, allocator,
//! memory), shared by `pwx check` and `pwx build`.

use anyhow::Context as _;
use pwx_abi::inspect::{ItemKind, ModuleInterface};
use pwx_abi::{Callback, imports::ENV_MODULE, wasi};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use std::path::Path;

/// The facts about one module.
#[derive(Debug, Serialize)]
pub(crate) struct ModuleSummary {
    pub size: u64,
    pub sha256: String,
    /// The ABI version the module declares (as Envoy detects it), if any.
    pub abi_version: Option<String>,
    /// Every `proxy_abi_version_*` export, in order.
    pub abi_markers: Vec<String>,
    pub env_imports: usize,
    pub wasi_imports: usize,
    pub other_imports: usize,
    /// `proxy_on_memory_allocate` or `malloc`.
    pub allocator: Option<&'static str>,
    /// `_initialize`, `_start` or the wasm start section.
    pub start: Option<&'static str>,
    pub memory_initial_pages: Option<u64>,
    pub memory_maximum_pages: Option<u64>,
}

/// Reads `path` and parses its interface.
pub(crate) fn read(path: &Path) -> anyhow::Result<(Vec<u8>, ModuleInterface)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let interface = ModuleInterface::parse(&bytes)
        .with_context(|| format!("{} cannot be inspected", path.display()))?;
    Ok((bytes, interface))
}

/// Summarizes a parsed module.
pub(crate) fn summarize(bytes: &[u8], module: &ModuleInterface) -> ModuleSummary {
    let has = |name: &str| {
        module
            .export(name)
            .is_some_and(|e| matches!(e.kind, ItemKind::Func(_)))
    };
    let count = |pred: &dyn Fn(&str) -> bool| {
        module
            .imports
            .iter()
            .filter(|i| pred(i.module.as_str()))
            .count()
    };
    let memory = module.export("memory").and_then(|e| match e.kind {
        ItemKind::Memory(m) => Some(m),
        _ => None,
    });
    ModuleSummary {
        size: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(bytes)),
        abi_version: module.abi_version().map(|v| v.as_str().to_string()),
        abi_markers: module
            .function_exports()
            .filter(|n| n.starts_with(pwx_abi::version::MARKER_PREFIX))
            .map(str::to_string)
            .collect(),
        env_imports: count(&|m| m == ENV_MODULE),
        wasi_imports: count(&|m| wasi::MODULES.contains(&m)),
        other_imports: count(&|m| m != ENV_MODULE && !wasi::MODULES.contains(&m)),
        allocator: [Callback::OnMemoryAllocate, Callback::Malloc]
            .into_iter()
            .find(|c| has(c.name()))
            .map(Callback::name),
        start: if has(Callback::Initialize.name()) {
            Some("_initialize")
        } else if has(Callback::Start.name()) {
            Some("_start")
        } else if module.has_start_section {
            Some("wasm start section")
        } else {
            None
        },
        memory_initial_pages: memory.map(|m| m.initial_pages),
        memory_maximum_pages: memory.and_then(|m| m.maximum_pages),
    }
}

impl ModuleSummary {
    /// Human-readable lines, one fact per line (`label  value`).
    pub(crate) fn lines(&self) -> Vec<(&'static str, String)> {
        let mut lines = vec![
            ("size", format!("{} bytes", self.size)),
            ("sha256", self.sha256.clone()),
            (
                "abi",
                match &self.abi_version {
                    Some(v) => v.clone(),
                    None if self.abi_markers.is_empty() => "none (no ABI marker)".into(),
                    None => format!("unknown ({})", self.abi_markers.join(", ")),
                },
            ),
            (
                "imports",
                format!(
                    "{} env, {} WASI, {} other",
                    self.env_imports, self.wasi_imports, self.other_imports
                ),
            ),
            ("allocator", self.allocator.unwrap_or("none").to_string()),
            ("start", self.start.unwrap_or("none").to_string()),
        ];
        lines.push((
            "memory",
            match (self.memory_initial_pages, self.memory_maximum_pages) {
                (Some(initial), Some(max)) => format!("{}, maximum {max}", pages(initial)),
                (Some(initial), None) => format!("{}, no maximum", pages(initial)),
                _ => "not exported".into(),
            },
        ));
        lines
    }
}

fn pages(count: u64) -> String {
    if count == 1 {
        "1 page (64 KiB)".into()
    } else {
        format!("{count} pages ({} KiB)", count * 64)
    }
}
