//! A loaded module: compiled (or taken from the compile cache), its ABI version detected, its
//! imports checked against exactly what Envoy links for that version, its callbacks' signatures
//! checked, and pre-linked (`InstancePre`) so each VM replica instantiates in microseconds.

use crate::engine::Engine;
use crate::error::LoadError;
use crate::state::HostState;
use pwx_abi::wasi::WasiCall;
use pwx_abi::{AbiVersion, Callback, HostCall, Signature, ValType};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::Arc;
use wasmtime::{ExternType, FuncType, InstancePre, Linker};

/// A compiled, linked module. Cheap to clone.
#[derive(Clone)]
pub struct Module {
    inner: Arc<ModuleInner>,
}

struct ModuleInner {
    engine: Engine,
    abi: AbiVersion,
    sha256: String,
    exports: HashSet<Callback>,
    pre: InstancePre<HostState>,
    from_cache: bool,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("abi", &self.inner.abi)
            .field("sha256", &self.inner.sha256)
            .finish()
    }
}

fn describe(ty: &FuncType) -> String {
    let list = |types: &mut dyn Iterator<Item = wasmtime::ValType>| {
        types.map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
    };
    format!(
        "({}) -> ({})",
        list(&mut ty.params()),
        list(&mut ty.results())
    )
}

fn matches(ty: &FuncType, expected: Signature) -> bool {
    let same = |actual: &mut dyn ExactSizeIterator<Item = wasmtime::ValType>, want: &[ValType]| {
        actual.len() == want.len()
            && actual.zip(want).all(|(a, w)| match w {
                ValType::I32 => matches!(a, wasmtime::ValType::I32),
                ValType::I64 => matches!(a, wasmtime::ValType::I64),
            })
    };
    same(&mut ty.params(), expected.params) && same(&mut ty.results(), expected.results)
}

/// Why an import is not provided, and what to do about it.
fn import_hint(module: &str, name: &str, abi: AbiVersion) -> String {
    if module == pwx_abi::imports::ENV_MODULE
        && let Some(call) = HostCall::from_name(name)
    {
        let provided: Vec<_> = AbiVersion::ALL
            .into_iter()
            .filter(|v| call.versions().includes(*v))
            .map(|v| v.as_str())
            .collect();
        return format!(
            "{name} exists only in ABI {} and this module declares ABI {abi}; Envoy rejects the \
             same module. Rebuild it with an SDK version whose ABI matches, or stop using this call",
            provided.join("/")
        );
    }
    if pwx_abi::wasi::MODULES.contains(&module) {
        return format!(
            "{name} is not a WASI preview1 function Envoy provides; build for wasm32-wasip1 without it"
        );
    }
    format!(
        "neither Envoy nor pwx provides {module}.{name}; proxy-wasm modules may import only \
         env.proxy_* host functions and WASI preview1. Remove the dependency that imports it \
         (often a crate or library built for another host)"
    )
}

impl Module {
    pub(crate) fn load(engine: &Engine, bytes: &[u8]) -> Result<Module, LoadError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        let cached = engine
            .cache()
            .and_then(|cache| cache.get(engine.wasmtime(), &sha256));
        let from_cache = cached.is_some();
        let module = match cached {
            Some(module) => module,
            None => {
                wasmtime::Module::validate(engine.wasmtime(), bytes)
                    .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
                let module = wasmtime::Module::new(engine.wasmtime(), bytes)
                    .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
                if let Some(cache) = engine.cache()
                    && let Err(error) = cache.put(&module, &sha256)
                {
                    // A cache that cannot be written slows start-up but loses nothing.
                    tracing::warn!(%error, "compile cache not updated");
                }
                module
            }
        };

        let function_exports: Vec<&str> = module
            .exports()
            .filter(|e| matches!(e.ty(), ExternType::Func(_)))
            .map(|e| e.name())
            .collect();
        let abi = AbiVersion::detect(function_exports.iter().copied()).ok_or_else(|| {
            LoadError::MissingAbiVersion {
                found: {
                    let markers: Vec<_> = function_exports
                        .iter()
                        .filter(|n| n.starts_with(pwx_abi::version::MARKER_PREFIX))
                        .copied()
                        .collect();
                    if markers.is_empty() {
                        "no proxy_abi_version_* marker".to_string()
                    } else {
                        markers.join(", ")
                    }
                },
            }
        })?;

        check_imports(&module, abi)?;
        let exports = check_exports(&module, abi)?;
        if !exports.contains(&Callback::Malloc) && !exports.contains(&Callback::OnMemoryAllocate) {
            return Err(LoadError::MissingAllocator);
        }
        if !module
            .exports()
            .any(|e| e.name() == "memory" && matches!(e.ty(), ExternType::Memory(_)))
        {
            return Err(LoadError::MissingMemory);
        }

        let mut linker = Linker::new(engine.wasmtime());
        crate::hostcalls::link(&mut linker, abi)
            .map_err(|e| LoadError::Compile(format!("linking host functions: {e:#}")))?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        Ok(Module {
            inner: Arc::new(ModuleInner {
                engine: engine.clone(),
                abi,
                sha256,
                exports,
                pre,
                from_cache,
            }),
        })
    }

    /// The ABI version the module declares.
    pub fn abi_version(&self) -> AbiVersion {
        self.inner.abi
    }

    /// Hex sha256 of the module bytes.
    pub fn sha256(&self) -> &str {
        &self.inner.sha256
    }

    /// Whether the compiled code came from the on-disk cache.
    pub fn from_cache(&self) -> bool {
        self.inner.from_cache
    }

    /// Whether the module exports `callback`.
    pub fn exports(&self, callback: Callback) -> bool {
        self.inner.exports.contains(&callback)
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn pre(&self) -> &InstancePre<HostState> {
        &self.inner.pre
    }
}

/// Every import must be a function the host links for `abi`, with the host's signature.
fn check_imports(module: &wasmtime::Module, abi: AbiVersion) -> Result<(), LoadError> {
    for import in module.imports() {
        let (module_name, name) = (import.module(), import.name());
        let expected = if module_name == pwx_abi::imports::ENV_MODULE {
            HostCall::from_name(name)
                .filter(|c| c.versions().includes(abi))
                .map(HostCall::signature)
        } else if pwx_abi::wasi::MODULES.contains(&module_name) {
            WasiCall::from_name(name).map(WasiCall::signature)
        } else {
            None
        };
        let ExternType::Func(ty) = import.ty() else {
            return Err(LoadError::UnknownImport {
                module: module_name.into(),
                name: name.into(),
                signature: "(not a function)".into(),
                abi,
                hint: "the host provides functions only; memories, tables and globals are the module's own".into(),
            });
        };
        match expected {
            None => {
                return Err(LoadError::UnknownImport {
                    module: module_name.into(),
                    name: name.into(),
                    signature: describe(&ty),
                    abi,
                    hint: import_hint(module_name, name, abi),
                });
            }
            Some(signature) if !matches(&ty, signature) => {
                return Err(LoadError::ImportSignature {
                    module: module_name.into(),
                    name: name.into(),
                    found: describe(&ty),
                    expected: signature.to_string(),
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Known callbacks must have the ABI's signature for `abi` (Envoy: "Bad function signature").
fn check_exports(
    module: &wasmtime::Module,
    abi: AbiVersion,
) -> Result<HashSet<Callback>, LoadError> {
    let mut found = HashSet::new();
    for export in module.exports() {
        let (Some(callback), ExternType::Func(ty)) =
            (Callback::from_name(export.name()), export.ty())
        else {
            continue;
        };
        if !callback.looked_up_for(abi) {
            continue;
        }
        let expected = callback.signature_for(abi);
        if !matches(&ty, expected) {
            return Err(LoadError::ExportSignature {
                name: export.name().into(),
                found: describe(&ty),
                expected: expected.to_string(),
                abi,
            });
        }
        found.insert(callback);
    }
    Ok(found)
}
