//! Static inspection of a module's interface (feature `inspect`): its imports, exports, function
//! signatures, memories and declared ABI version, read with `wasmparser` without compiling or
//! running anything. `pwx check` and `pwx build` judge modules from this.

use crate::{AbiVersion, Signature, ValType};
use wasmparser::{Encoding, ExternalKind, Parser, Payload, TypeRef};

/// Why a file could not be inspected.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// Not a wasm binary, or a malformed one.
    #[error("not a valid WebAssembly module: {0}")]
    Malformed(String),
    /// A component (component model), which proxy-wasm hosts do not load.
    #[error(
        "it is a WebAssembly component, not a core module; proxy-wasm hosts load core modules (build for wasm32-wasip1, not wasm32-wasip2)"
    )]
    Component,
}

/// A wasm value type as declared by a module (wider than the ABI's [`ValType`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WasmType {
    /// `i32`
    I32,
    /// `i64`
    I64,
    /// `f32`
    F32,
    /// `f64`
    F64,
    /// `v128`
    V128,
    /// A reference type.
    Ref,
}

impl WasmType {
    fn name(self) -> &'static str {
        match self {
            WasmType::I32 => "i32",
            WasmType::I64 => "i64",
            WasmType::F32 => "f32",
            WasmType::F64 => "f64",
            WasmType::V128 => "v128",
            WasmType::Ref => "ref",
        }
    }
}

/// A function type declared by a module.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct FuncSig {
    /// Parameter types.
    pub params: Vec<WasmType>,
    /// Result types.
    pub results: Vec<WasmType>,
}

impl FuncSig {
    /// Whether it is exactly the ABI signature `expected`.
    pub fn matches(&self, expected: Signature) -> bool {
        let same = |actual: &[WasmType], want: &[ValType]| {
            actual.len() == want.len()
                && actual.iter().zip(want).all(|(a, w)| {
                    matches!(
                        (a, w),
                        (WasmType::I32, ValType::I32) | (WasmType::I64, ValType::I64)
                    )
                })
        };
        same(&self.params, expected.params) && same(&self.results, expected.results)
    }
}

impl std::fmt::Display for FuncSig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |types: &[WasmType]| {
            types
                .iter()
                .map(|t| t.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(f, "({}) -> ({})", list(&self.params), list(&self.results))
    }
}

/// A linear memory's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryInfo {
    /// Initial size in 64 KiB pages.
    pub initial_pages: u64,
    /// Declared maximum in pages, if any.
    pub maximum_pages: Option<u64>,
    /// memory64 proposal.
    pub memory64: bool,
    /// threads proposal.
    pub shared: bool,
}

/// What an import or export is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemKind {
    /// A function with its signature.
    Func(FuncSig),
    /// A memory.
    Memory(MemoryInfo),
    /// A table.
    Table,
    /// A global.
    Global,
    /// An exception tag.
    Tag,
}

impl ItemKind {
    /// `function`, `memory`, …
    pub fn word(&self) -> &'static str {
        match self {
            ItemKind::Func(_) => "function",
            ItemKind::Memory(_) => "memory",
            ItemKind::Table => "table",
            ItemKind::Global => "global",
            ItemKind::Tag => "tag",
        }
    }
}

/// One import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportItem {
    /// Module name (`env`, `wasi_snapshot_preview1`, …).
    pub module: String,
    /// Field name.
    pub name: String,
    /// Its kind and type.
    pub kind: ItemKind,
}

/// One export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportItem {
    /// Export name.
    pub name: String,
    /// Its kind and type.
    pub kind: ItemKind,
}

/// The interface of a module.
#[derive(Clone, Debug, Default)]
pub struct ModuleInterface {
    /// Imports, in section order.
    pub imports: Vec<ImportItem>,
    /// Exports, in section order.
    pub exports: Vec<ExportItem>,
    /// Memories the module defines itself (not imported).
    pub memories: Vec<MemoryInfo>,
    /// Whether the module has a wasm start section (run at instantiation).
    pub has_start_section: bool,
}

impl ModuleInterface {
    /// Reads the interface of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<ModuleInterface, InspectError> {
        if !bytes.starts_with(b"\0asm") {
            return Err(InspectError::Malformed(
                "the file does not start with the wasm magic bytes (\\0asm); is it a .wasm file?"
                    .into(),
            ));
        }
        let malformed = |e: wasmparser::BinaryReaderError| InspectError::Malformed(e.to_string());
        let mut types: Vec<FuncSig> = Vec::new();
        // Function index space: imported functions first, then defined ones.
        let mut func_types: Vec<u32> = Vec::new();
        let mut memory_space: Vec<MemoryInfo> = Vec::new();
        let mut raw_exports: Vec<(String, ExternalKind, u32)> = Vec::new();
        let mut out = ModuleInterface::default();
        let mut saw_header = false;

        for payload in Parser::new(0).parse_all(bytes) {
            match payload.map_err(malformed)? {
                Payload::Version { encoding, .. } => {
                    if encoding != Encoding::Module {
                        return Err(InspectError::Component);
                    }
                    saw_header = true;
                }
                Payload::TypeSection(reader) => {
                    for ty in reader.into_iter_err_on_gc_types() {
                        let ty = ty.map_err(malformed)?;
                        types.push(FuncSig {
                            params: ty.params().iter().map(|t| convert(*t)).collect(),
                            results: ty.results().iter().map(|t| convert(*t)).collect(),
                        });
                    }
                }
                Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        let import = import.map_err(malformed)?;
                        let kind = match import.ty {
                            TypeRef::Func(index) | TypeRef::FuncExact(index) => {
                                func_types.push(index);
                                ItemKind::Func(lookup(&types, index)?)
                            }
                            TypeRef::Memory(memory) => {
                                let info = memory_info(memory);
                                memory_space.push(info);
                                ItemKind::Memory(info)
                            }
                            TypeRef::Table(_) => ItemKind::Table,
                            TypeRef::Global(_) => ItemKind::Global,
                            TypeRef::Tag(_) => ItemKind::Tag,
                        };
                        out.imports.push(ImportItem {
                            module: import.module.to_string(),
                            name: import.name.to_string(),
                            kind,
                        });
                    }
                }
                Payload::FunctionSection(reader) => {
                    for index in reader {
                        func_types.push(index.map_err(malformed)?);
                    }
                }
                Payload::MemorySection(reader) => {
                    for memory in reader {
                        let info = memory_info(memory.map_err(malformed)?);
                        memory_space.push(info);
                        out.memories.push(info);
                    }
                }
                Payload::ExportSection(reader) => {
                    for export in reader {
                        let export = export.map_err(malformed)?;
                        raw_exports.push((export.name.to_string(), export.kind, export.index));
                    }
                }
                Payload::StartSection { .. } => out.has_start_section = true,
                Payload::End(_) => break,
                _ => {}
            }
        }
        if !saw_header {
            return Err(InspectError::Malformed("empty input".into()));
        }
        for (name, kind, index) in raw_exports {
            let kind = match kind {
                ExternalKind::Func | ExternalKind::FuncExact => {
                    let type_index = func_types.get(index as usize).ok_or_else(|| {
                        InspectError::Malformed(format!(
                            "export {name} names function {index}, which does not exist"
                        ))
                    })?;
                    ItemKind::Func(lookup(&types, *type_index)?)
                }
                ExternalKind::Memory => {
                    let info = memory_space.get(index as usize).ok_or_else(|| {
                        InspectError::Malformed(format!(
                            "export {name} names memory {index}, which does not exist"
                        ))
                    })?;
                    ItemKind::Memory(*info)
                }
                ExternalKind::Table => ItemKind::Table,
                ExternalKind::Global => ItemKind::Global,
                ExternalKind::Tag => ItemKind::Tag,
            };
            out.exports.push(ExportItem { name, kind });
        }
        Ok(out)
    }

    /// Names of the function exports, in export-section order.
    pub fn function_exports(&self) -> impl Iterator<Item = &str> {
        self.exports
            .iter()
            .filter(|e| matches!(e.kind, ItemKind::Func(_)))
            .map(|e| e.name.as_str())
    }

    /// The ABI version the module declares, detected as Envoy does.
    pub fn abi_version(&self) -> Option<AbiVersion> {
        AbiVersion::detect(self.function_exports())
    }

    /// The export called `name`, if any.
    pub fn export(&self, name: &str) -> Option<&ExportItem> {
        self.exports.iter().find(|e| e.name == name)
    }
}

fn convert(ty: wasmparser::ValType) -> WasmType {
    match ty {
        wasmparser::ValType::I32 => WasmType::I32,
        wasmparser::ValType::I64 => WasmType::I64,
        wasmparser::ValType::F32 => WasmType::F32,
        wasmparser::ValType::F64 => WasmType::F64,
        wasmparser::ValType::V128 => WasmType::V128,
        wasmparser::ValType::Ref(_) => WasmType::Ref,
    }
}

fn lookup(types: &[FuncSig], index: u32) -> Result<FuncSig, InspectError> {
    types
        .get(index as usize)
        .cloned()
        .ok_or_else(|| InspectError::Malformed(format!("function type {index} does not exist")))
}

fn memory_info(memory: wasmparser::MemoryType) -> MemoryInfo {
    MemoryInfo {
        initial_pages: memory.initial,
        maximum_pages: memory.maximum,
        memory64: memory.memory64,
        shared: memory.shared,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(wat: &str) -> ModuleInterface {
        ModuleInterface::parse(&wat::parse_str(wat).expect("wat")).expect("parses")
    }

    #[test]
    fn reads_imports_exports_and_memory() {
        let module = parse(
            r#"(module
                (import "env" "proxy_log" (func (param i32 i32 i32) (result i32)))
                (import "wasi_snapshot_preview1" "clock_time_get" (func (param i32 i64 i32) (result i32)))
                (memory (export "memory") 2 10)
                (func (export "proxy_abi_version_0_2_0"))
                (func (export "malloc") (param i32) (result i32) local.get 0))"#,
        );
        assert_eq!(module.imports.len(), 2);
        let ItemKind::Func(sig) = &module.imports[1].kind else {
            panic!("function import")
        };
        assert_eq!(sig.to_string(), "(i32, i64, i32) -> (i32)");
        assert!(sig.matches(crate::wasi::WasiCall::ClockTimeGet.signature()));
        assert!(!sig.matches(crate::HostCall::Log.signature()));
        assert_eq!(module.abi_version(), Some(AbiVersion::V0_2_0));
        assert_eq!(
            module.export("memory").map(|e| e.kind.clone()),
            Some(ItemKind::Memory(MemoryInfo {
                initial_pages: 2,
                maximum_pages: Some(10),
                memory64: false,
                shared: false
            }))
        );
        let ItemKind::Func(malloc) = &module.export("malloc").expect("malloc").kind else {
            panic!("function export")
        };
        assert!(malloc.matches(crate::Callback::Malloc.signature()));
        assert!(!module.has_start_section);
    }

    #[test]
    fn exported_function_index_counts_imports_first() {
        let module = parse(
            r#"(module
                (import "env" "proxy_done" (func $done (result i32)))
                (func $tick (param i32))
                (export "proxy_on_tick" (func $tick))
                (export "reexported" (func $done)))"#,
        );
        let kinds: Vec<String> = module
            .exports
            .iter()
            .map(|e| match &e.kind {
                ItemKind::Func(sig) => sig.to_string(),
                other => other.word().to_string(),
            })
            .collect();
        assert_eq!(kinds, ["(i32) -> ()", "() -> (i32)"]);
        assert_eq!(module.abi_version(), None);
    }

    #[test]
    fn rejects_garbage_and_components() {
        assert!(matches!(
            ModuleInterface::parse(b"\0asm\x01\0\0"),
            Err(InspectError::Malformed(_))
        ));
        assert!(matches!(
            ModuleInterface::parse(b"hello"),
            Err(InspectError::Malformed(_))
        ));
        let component = wat::parse_str("(component)").expect("component");
        assert!(matches!(
            ModuleInterface::parse(&component),
            Err(InspectError::Component)
        ));
    }
}
