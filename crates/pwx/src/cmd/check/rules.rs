//! The checks: everything a target would reject in a module's interface, each explained in
//! plain words with the fix. Facts about the ABI come from pwx-abi, facts about the target from
//! its [`Profile`].

use super::profiles::Profile;
use pwx_abi::imports::ENV_MODULE;
use pwx_abi::inspect::{ItemKind, ModuleInterface};
use pwx_abi::version::MARKER_PREFIX;
use pwx_abi::wasi::{MODULES as WASI_MODULES, WasiCall};
use pwx_abi::{AbiVersion, Callback, HostCall};
use serde::Serialize;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Severity {
    /// The target refuses to load the module.
    Error,
    /// It loads, but will not do what the author expects.
    Warning,
}

/// One problem.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Finding {
    pub severity: Severity,
    /// Stable identifier (`missing-allocator`, …) for scripts.
    pub code: &'static str,
    pub message: String,
    pub fix: String,
}

fn error(code: &'static str, message: String, fix: impl Into<String>) -> Finding {
    Finding {
        severity: Severity::Error,
        code,
        message,
        fix: fix.into(),
    }
}

fn warning(code: &'static str, message: String, fix: impl Into<String>) -> Finding {
    Finding {
        severity: Severity::Warning,
        code,
        message,
        fix: fix.into(),
    }
}

/// Which SDKs declare a version, for the fixes.
fn sdks_for(version: AbiVersion) -> &'static str {
    match version {
        AbiVersion::V0_1_0 => "the Rust SDK proxy-wasm 0.1.x",
        AbiVersion::V0_2_0 => "the Go SDKs",
        AbiVersion::V0_2_1 => {
            "the Rust SDK proxy-wasm 0.2.x, the C++ SDK or AssemblyScript proxy-runtime"
        }
    }
}

/// What replaced a host function that a newer ABI dropped.
fn replacement(call: HostCall) -> &'static str {
    match call {
        HostCall::GetConfiguration => {
            " (0.2.x reads configuration with proxy_get_buffer_bytes on the plugin or VM configuration buffer)"
        }
        HostCall::ContinueRequest | HostCall::ContinueResponse => {
            " (0.2.x resumes with proxy_continue_stream)"
        }
        HostCall::ClearRouteCache => {
            " (0.2.x has no such call; Envoy 1.33+ offers the foreign function clear_route_cache)"
        }
        HostCall::GetLogLevel => " (0.2.1 only)",
        _ => "",
    }
}

/// Runs every check of `module` against `target`.
pub(crate) fn check(module: &ModuleInterface, target: &Profile) -> Vec<Finding> {
    let mut findings = Vec::new();
    let abi = check_abi(module, target, &mut findings);
    check_imports(module, target, abi, &mut findings);
    check_exports(module, target, abi, &mut findings);
    findings
}

fn check_abi(
    module: &ModuleInterface,
    target: &Profile,
    findings: &mut Vec<Finding>,
) -> Option<AbiVersion> {
    let accepted: Vec<&str> = target.abi_versions.iter().map(|v| v.as_str()).collect();
    let Some(version) = module.abi_version() else {
        let unknown: Vec<&str> = AbiVersion::unknown_markers(module.function_exports()).collect();
        if unknown.is_empty() {
            findings.push(error(
                "missing-abi-marker",
                format!(
                    "the module exports no {MARKER_PREFIX}* function, so {} cannot tell which \
                     proxy-wasm ABI it speaks and refuses it (Envoy: \"Missing or unknown \
                     Proxy-Wasm ABI version\")",
                    target.name
                ),
                "build it with a proxy-wasm SDK, which exports the marker; a hand-written \
                 module must export an empty function named proxy_abi_version_0_2_1 (or the \
                 version it implements)",
            ));
        } else {
            findings.push(error(
                "unknown-abi-version",
                format!(
                    "the module declares {}, which {} does not know (it accepts ABI {})",
                    unknown.join(", "),
                    target.name,
                    accepted.join(", ")
                ),
                format!(
                    "rebuild with an SDK release that declares one of {}; the vNEXT draft marker \
                     proxy_abi_version_0_x_x is accepted by no Envoy release",
                    accepted.join(", ")
                ),
            ));
        }
        return None;
    };
    if !target.abi_versions.contains(&version) {
        let newest = target.abi_versions.iter().max().copied();
        findings.push(error(
            "unsupported-abi-version",
            format!(
                "the module declares ABI {version} ({}), but {} accepts only ABI {}",
                version.marker(),
                target.name,
                accepted.join(", ")
            ),
            match newest {
                Some(newest) => format!(
                    "run it on a proxy that accepts {version} (Envoy 1.17+, Istio 1.8+), or \
                     rebuild it for ABI {newest} with {}",
                    sdks_for(newest)
                ),
                None => "this target accepts no ABI version".to_string(),
            },
        ));
    }
    Some(version)
}

fn check_imports(
    module: &ModuleInterface,
    target: &Profile,
    abi: Option<AbiVersion>,
    findings: &mut Vec<Finding>,
) {
    for import in &module.imports {
        let full = format!("{}.{}", import.module, import.name);
        let ItemKind::Func(found) = &import.kind else {
            findings.push(error(
                "non-function-import",
                format!(
                    "the module imports {full} as a {}; proxy-wasm hosts provide functions only",
                    import.kind.word()
                ),
                "define and export the memory (and tables, globals) in the module instead of \
                 importing them: do not link with --import-memory",
            ));
            continue;
        };
        if import.module == ENV_MODULE {
            let Some(call) = HostCall::from_name(&import.name) else {
                if import.name.starts_with("proxy_") {
                    findings.push(error(
                        "unknown-import",
                        format!(
                            "the module imports {full}, which is in no proxy-wasm ABI version \
                             that {} implements: a host-specific extension (such as Higress's \
                             proxy_redis_*) or a draft (vNEXT) call; the module does not link",
                            target.name
                        ),
                        "build the filter without that extension for this proxy, or check it \
                         against the proxy it was written for",
                    ));
                    continue;
                }
                findings.push(error(
                    "unknown-import",
                    format!(
                        "the module imports {full}, which is not a proxy-wasm host function; \
                         {} does not provide it and refuses to link the module",
                        target.name
                    ),
                    "remove the code that needs it: usually a crate or C library written for \
                     another host (a browser, wasm-bindgen, Emscripten's JS glue), or a symbol the \
                     linker left undefined (linking with --allow-undefined hides such mistakes)",
                ));
                continue;
            };
            if let Some(version) = abi
                && !call.versions().includes(version)
            {
                let provided: Vec<&str> = AbiVersion::ALL
                    .into_iter()
                    .filter(|v| call.versions().includes(*v))
                    .map(|v| v.as_str())
                    .collect();
                findings.push(error(
                    "import-not-in-abi",
                    format!(
                        "the module imports {full}, which exists only in ABI {}, but it declares \
                         ABI {version}; {} links only the {version} set",
                        provided.join("/"),
                        target.name
                    ),
                    format!(
                        "stop calling {}{}, or build with an SDK whose ABI has it",
                        call.name(),
                        replacement(call)
                    ),
                ));
                continue;
            }
            if target.env_missing.iter().any(|m| m == call.name()) {
                findings.push(error(
                    "import-missing-in-target",
                    format!(
                        "the module imports {full}, which {} does not provide ({})",
                        target.name, target.env_source
                    ),
                    format!(
                        "run it on a newer proxy (pwx check --target envoy-1.40), or avoid the \
                         code that calls {}",
                        call.name()
                    ),
                ));
                continue;
            }
            if !found.matches(call.signature()) {
                findings.push(error(
                    "import-signature",
                    format!(
                        "the module imports {full} as {found}, but hosts link it as {}; the link \
                         fails (\"import type mismatch\")",
                        call.signature()
                    ),
                    "fix the extern declaration to the ABI's signature, or update the SDK \
                     (AssemblyScript proxy-runtime 0.1.x declares proxy_grpc_call and \
                     proxy_grpc_stream with too few parameters)",
                ));
            }
        } else if WASI_MODULES.contains(&import.module.as_str()) {
            let Some(call) = WasiCall::from_name(&import.name) else {
                findings.push(error(
                    "unknown-wasi-import",
                    format!(
                        "the module imports {full}, which is not a WASI preview1 function; {} \
                         refuses to link it",
                        target.name
                    ),
                    "build for wasm32-wasip1 (WASI preview1); preview2 and custom WASI \
                     extensions are not available to proxy-wasm modules",
                ));
                continue;
            };
            if !target.wasi.contains(&call) {
                findings.push(error(
                    "wasi-missing-in-target",
                    format!(
                        "the module imports {full}, which {} does not provide ({})",
                        target.name, target.wasi_source
                    ),
                    "language runtimes pull these in: Go (GOOS=wasip1) needs sched_yield and \
                     poll_oneoff (Envoy 1.33+), file and socket APIs need the rest (Envoy 1.40). \
                     Run it on a newer proxy, or avoid the standard-library API that needs it",
                ));
                continue;
            }
            if !found.matches(call.signature()) {
                findings.push(error(
                    "import-signature",
                    format!(
                        "the module imports {full} as {found}, but WASI defines it as {}",
                        call.signature()
                    ),
                    "declare it with the WASI preview1 signature (use the toolchain's WASI \
                     bindings rather than a hand-written declaration)",
                ));
            }
        } else {
            findings.push(error(
                "unknown-import-module",
                format!(
                    "the module imports {full}; {} provides only env.* host functions and WASI \
                     preview1 ({})",
                    target.name,
                    WASI_MODULES.join(", ")
                ),
                "remove the dependency that imports it (wasm-bindgen, Emscripten's JS glue and \
                 other host bindings do not work in a proxy)",
            ));
        }
    }
}

fn check_exports(
    module: &ModuleInterface,
    target: &Profile,
    abi: Option<AbiVersion>,
    findings: &mut Vec<Finding>,
) {
    let exports_function = |name: &str| {
        module
            .export(name)
            .is_some_and(|e| matches!(e.kind, ItemKind::Func(_)))
    };
    if !exports_function(Callback::Malloc.name())
        && !exports_function(Callback::OnMemoryAllocate.name())
    {
        findings.push(error(
            "missing-allocator",
            format!(
                "the module exports neither malloc nor proxy_on_memory_allocate, so {} cannot \
                 hand it headers, bodies or configuration and refuses it",
                target.name
            ),
            "the Rust SDK exports proxy_on_memory_allocate for you; in C/C++ link libc and \
             export malloc (-Wl,--export=malloc); in AssemblyScript re-export the runtime's \
             malloc (export * from \"@solo-io/proxy-runtime/proxy\")",
        ));
    }
    match module.export("memory").map(|e| &e.kind) {
        Some(ItemKind::Memory(memory)) => {
            let page = 64 * 1024u64;
            if memory.memory64 {
                findings.push(error(
                    "memory64",
                    "the exported memory is a 64-bit (memory64) memory; proxy-wasm hosts use \
                     32-bit pointers"
                        .into(),
                    "build for wasm32, not wasm64",
                ));
            } else if memory.initial_pages.saturating_mul(page) > target.max_memory_bytes {
                findings.push(error(
                    "memory-too-large",
                    format!(
                        "the memory starts at {} pages ({} MiB), above {}'s limit of {} MiB ({})",
                        memory.initial_pages,
                        (memory.initial_pages * page) >> 20,
                        target.name,
                        target.max_memory_bytes >> 20,
                        target.memory_source
                    ),
                    "shrink the initial memory (large static buffers, or a linker \
                     --initial-memory setting)",
                ));
            } else if memory
                .maximum_pages
                .is_some_and(|max| max.saturating_mul(page) > target.max_memory_bytes)
            {
                findings.push(warning(
                    "memory-max-capped",
                    format!(
                        "the memory declares a maximum above {}'s limit of {} MiB; growing past \
                         the limit fails at run time",
                        target.name,
                        target.max_memory_bytes >> 20
                    ),
                    "lower the declared maximum, or make sure the filter never needs that much",
                ));
            }
        }
        _ => findings.push(error(
            "missing-memory-export",
            format!(
                "the module exports no memory named \"memory\"; {} exchanges every argument \
                 through it and refuses the module",
                target.name
            ),
            "export the linear memory as \"memory\" (every toolchain does by default; check \
             linker flags such as --no-export-memory)",
        )),
    }
    if let Some(version) = abi {
        for export in &module.exports {
            let (Some(callback), ItemKind::Func(found)) =
                (Callback::from_name(&export.name), &export.kind)
            else {
                continue;
            };
            if !callback.looked_up_for(version) {
                continue;
            }
            let expected = callback.signature_for(version);
            if !found.matches(expected) {
                findings.push(error(
                    "callback-signature",
                    format!(
                        "the module exports {} as {found}, but ABI {version} calls it as \
                         {expected}; the VM fails to start (\"Bad function signature\")",
                        export.name
                    ),
                    if matches!(
                        callback,
                        Callback::OnRequestHeaders | Callback::OnResponseHeaders
                    ) {
                        "the header callbacks gained an end_of_stream parameter in ABI 0.2.0: \
                         make the signature match the ABI marker the module exports"
                    } else {
                        "export it with the ABI's signature (or update the SDK)"
                    },
                ));
            }
        }
    }
    if !exports_function(Callback::OnContextCreate.name()) {
        findings.push(warning(
            "missing-callback",
            "the module exports no proxy_on_context_create: the host cannot create its root or \
             stream contexts, so the filter never sees a request"
                .into(),
            "every SDK exports it; a hand-written module must export \
             proxy_on_context_create(context_id, parent_context_id)",
        ));
    }
    let stream_callbacks = [
        Callback::OnRequestHeaders,
        Callback::OnRequestBody,
        Callback::OnRequestTrailers,
        Callback::OnResponseHeaders,
        Callback::OnResponseBody,
        Callback::OnResponseTrailers,
        Callback::OnLog,
        Callback::OnNewConnection,
        Callback::OnDownstreamData,
        Callback::OnUpstreamData,
    ];
    if !stream_callbacks.iter().any(|c| exports_function(c.name())) {
        findings.push(warning(
            "missing-callback",
            "the module exports no HTTP or TCP stream callback (proxy_on_request_headers, \
             proxy_on_downstream_data, …): as a filter it would do nothing"
                .into(),
            "implement at least one stream callback, or deploy the module as a Wasm service \
             (a background task) rather than as a filter",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(wat: &str, target: &str) -> Vec<&'static str> {
        let module = ModuleInterface::parse(&wat::parse_str(wat).unwrap()).unwrap();
        let profile = super::super::profiles::resolve(target).unwrap();
        check(&module, &profile).iter().map(|f| f.code).collect()
    }

    const GOOD_EXPORTS: &str = r#"
        (func (export "proxy_abi_version_0_2_1"))
        (func (export "malloc") (param i32) (result i32) i32.const 0)
        (func (export "proxy_on_context_create") (param i32 i32))"#;

    #[test]
    fn signatures_memory_and_callbacks() {
        let wat = format!(
            r#"(module
                (import "env" "proxy_log" (func (param i32 i32) (result i32)))
                (memory (export "memory") 20000)
                {GOOD_EXPORTS}
                (func (export "proxy_on_request_headers") (param i32 i32) (result i32) i32.const 0))"#
        );
        assert_eq!(
            codes(&wat, "envoy-1.40"),
            ["import-signature", "memory-too-large", "callback-signature"]
        );
    }

    #[test]
    fn imported_memory_and_foreign_modules() {
        let wat = format!(
            r#"(module
                (import "env" "memory" (memory 1))
                (import "wbg" "__wbindgen_throw" (func (param i32 i32)))
                {GOOD_EXPORTS})"#
        );
        assert_eq!(
            codes(&wat, "pwx"),
            [
                "non-function-import",
                "unknown-import-module",
                "missing-memory-export",
                "missing-callback"
            ]
        );
    }

    #[test]
    fn version_specific_target_facts() {
        let wat = format!(
            r#"(module
                (import "env" "proxy_get_log_level" (func (param i32) (result i32)))
                (import "wasi_snapshot_preview1" "fd_tell" (func (param i32 i32) (result i32)))
                (memory (export "memory") 1 1)
                {GOOD_EXPORTS}
                (func (export "proxy_on_log") (param i32)))"#
        );
        assert!(codes(&wat, "envoy-1.40").is_empty());
        assert_eq!(codes(&wat, "envoy-1.33"), ["wasi-missing-in-target"]);
        assert_eq!(
            codes(&wat, "istio-1.7"),
            [
                "unsupported-abi-version",
                "import-missing-in-target",
                "wasi-missing-in-target"
            ]
        );
        let vnext = wat.replace("proxy_abi_version_0_2_1", "proxy_abi_version_0_x_x");
        assert_eq!(codes(&vnext, "envoy-1.40"), ["unknown-abi-version"]);
    }
}
