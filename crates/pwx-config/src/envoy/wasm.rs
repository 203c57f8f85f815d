//! Envoy's `PluginConfig`, `VmConfig` and `AsyncDataSource` (module code).

use crate::envoy::any::{configuration_bytes, decode_base64};
use crate::envoy::reader::{Ctx, Obj, origin};
use crate::error::ConfigError;
use crate::model::{CodeSource, WasmPlugin, WasmRuntime, WasmVm};
use crate::yaml::{Kind, Node, Path};
use pwx_abi::FailurePolicy;
use std::time::Duration;

/// Decodes a `PluginConfig` at `path`; `model_path` is where the plugin sits in the model.
pub(crate) fn plugin_config(
    ctx: &mut Ctx,
    node: &Node,
    path: &Path,
    model_path: &str,
) -> Result<WasmPlugin, ConfigError> {
    let obj = ctx.object(
        node,
        path,
        &[
            "name",
            "root_id",
            "vm_config",
            "configuration",
            "fail_open",
            "failure_policy",
            "reload_config",
            "allow_on_headers_stop_iteration",
        ],
        &[],
    )?;
    let configuration = match obj.get("configuration") {
        Some((n, p)) => configuration_bytes(ctx, n, &p)?,
        None => Vec::new(),
    };
    let (vm_node, vm_path) = obj
        .require("vm_config")
        .map_err(|e| e.with_hint("pwx needs the module: add vm_config with runtime and code"))?;
    let vm = vm_config(ctx, vm_node, &vm_path)?;
    ctx.sources.insert(
        format!("{model_path}.vm.environment"),
        origin(vm_node, &vm_path),
    );
    Ok(WasmPlugin {
        name: obj.string_or_empty("name")?,
        root_id: obj.string_or_empty("root_id")?,
        configuration,
        failure_policy: failure_policy(&obj)?,
        reload_backoff: reload_backoff(ctx, &obj)?,
        allow_on_headers_stop_iteration: obj
            .bool("allow_on_headers_stop_iteration")?
            .unwrap_or(false),
        vm,
    })
}

/// `failure_policy`, or the legacy `fail_open: true`; only one may be set (as in Envoy).
fn failure_policy(obj: &Obj<'_>) -> Result<FailurePolicy, ConfigError> {
    let policy = match obj.get("failure_policy") {
        None => FailurePolicy::Unspecified,
        Some((node, path)) => {
            let text = crate::envoy::reader::string(node, &path)?;
            FailurePolicy::ALL
                .iter()
                .copied()
                .find(|p| p.name() == text || (*p as u32).to_string() == text)
                .ok_or_else(|| {
                    ConfigError::at(
                        origin(node, &path),
                        format!(
                            "unknown failure_policy `{text}`; expected FAIL_CLOSED, FAIL_OPEN or FAIL_RELOAD"
                        ),
                    )
                })?
        }
    };
    if obj.bool("fail_open")? == Some(true) {
        if policy != FailurePolicy::Unspecified {
            return Err(ConfigError::at(
                obj.origin(),
                "only one of `fail_open` or `failure_policy` can be set",
            )
            .with_hint("remove the deprecated `fail_open`"));
        }
        return Ok(FailurePolicy::FailOpen);
    }
    Ok(policy.effective())
}

fn reload_backoff(ctx: &mut Ctx, obj: &Obj<'_>) -> Result<Duration, ConfigError> {
    let Some((node, path)) = obj.get("reload_config") else {
        return Ok(crate::defaults::RELOAD_BACKOFF);
    };
    let reload = ctx.object(node, &path, &["backoff"], &[])?;
    let Some((node, path)) = reload.get("backoff") else {
        return Ok(crate::defaults::RELOAD_BACKOFF);
    };
    let backoff = ctx.object(
        node,
        &path,
        &["base_interval"],
        &[(
            "max_interval",
            "Envoy 1.40's FAIL_RELOAD uses only base_interval",
        )],
    )?;
    let base = backoff
        .duration("base_interval")?
        .unwrap_or(crate::defaults::RELOAD_BACKOFF);
    if base < Duration::from_millis(1) {
        return Err(ConfigError::at(
            backoff.origin(),
            "base_interval must be at least 1ms",
        ));
    }
    Ok(base)
}

fn vm_config(ctx: &mut Ctx, node: &Node, path: &Path) -> Result<WasmVm, ConfigError> {
    let obj = ctx.object(
        node,
        path,
        &[
            "vm_id",
            "runtime",
            "code",
            "configuration",
            "allow_precompiled",
            "nack_on_code_cache_miss",
            "environment_variables",
        ],
        &[],
    )?;
    let runtime = runtime(&obj)?;
    let (code_node, code_path) = obj
        .require("code")
        .map_err(|e| e.with_hint("add code.local.filename with the module's path"))?;
    let code = code_source(ctx, code_node, &code_path)?;
    let configuration = match obj.get("configuration") {
        Some((n, p)) => configuration_bytes(ctx, n, &p)?,
        None => Vec::new(),
    };
    let variables = match obj.get("environment_variables") {
        Some((n, p)) => environment(ctx, n, &p)?,
        None => EnvironmentVariables::default(),
    };
    Ok(WasmVm {
        vm_id: obj.string_or_empty("vm_id")?,
        runtime,
        code,
        configuration,
        environment: variables.key_values,
        host_env_keys: variables.host_env_keys,
        allow_precompiled: obj.bool("allow_precompiled")?.unwrap_or(false),
        nack_on_code_cache_miss: obj.bool("nack_on_code_cache_miss")?.unwrap_or(false),
    })
}

fn runtime(obj: &Obj<'_>) -> Result<WasmRuntime, ConfigError> {
    let Some((node, path)) = obj.get("runtime") else {
        return Ok(WasmRuntime::Default);
    };
    let name = crate::envoy::reader::string(node, &path)?;
    match name.as_str() {
        "" => Ok(WasmRuntime::Default),
        "envoy.wasm.runtime.v8" => Ok(WasmRuntime::V8),
        "envoy.wasm.runtime.wasmtime" => Ok(WasmRuntime::Wasmtime),
        "envoy.wasm.runtime.wamr" => Ok(WasmRuntime::Wamr),
        "envoy.wasm.runtime.null" => Err(ConfigError::at(
            origin(node, &path),
            "pwx cannot run null-VM plugins: `envoy.wasm.runtime.null` means native code compiled into Envoy",
        )
        .with_hint("build the plugin as a .wasm module and use envoy.wasm.runtime.v8 (pwx runs every runtime name on wasmtime)")),
        other => Err(ConfigError::at(
            origin(node, &path),
            format!("unknown Wasm runtime `{other}`"),
        )
        .with_hint(format!(
            "use one of {} (pwx runs all of them on wasmtime)",
            WasmRuntime::NAMES.join(", ")
        ))),
    }
}

/// `code`: `local` (file or inline) or `remote` (URL + sha256).
fn code_source(ctx: &mut Ctx, node: &Node, path: &Path) -> Result<CodeSource, ConfigError> {
    let obj = ctx.object(node, path, &["local", "remote"], &[])?;
    match obj.one_of(&["local", "remote"])? {
        Some("local") => {
            let (node, path) = obj.require("local")?;
            let local = ctx.object(
                node,
                &path,
                &["filename", "inline_bytes", "inline_string"],
                &[],
            )?;
            match local.one_of(&["filename", "inline_bytes", "inline_string"])? {
                Some("filename") => {
                    let name = local.require_string("filename")?;
                    Ok(CodeSource::File(ctx.resolve_path(&name)))
                }
                Some("inline_bytes") => {
                    let (n, p) = local.require("inline_bytes")?;
                    let text = crate::envoy::reader::string(n, &p)?;
                    decode_base64(&text)
                        .map(CodeSource::Inline)
                        .ok_or_else(|| ConfigError::at(origin(n, &p), "inline_bytes is not base64"))
                }
                Some(_) => Ok(CodeSource::Inline(
                    local.require_string("inline_string")?.into_bytes(),
                )),
                None => Err(
                    ConfigError::at(local.origin(), "the local data source is empty")
                        .with_hint("set filename (inline_bytes and inline_string also work)"),
                ),
            }
        }
        Some(_) => remote(ctx, &obj),
        None => Err(ConfigError::at(
            obj.origin(),
            "code has neither `local` nor `remote`",
        )),
    }
}

fn remote(ctx: &mut Ctx, code: &Obj<'_>) -> Result<CodeSource, ConfigError> {
    let (node, path) = code.require("remote")?;
    let remote = ctx.object(
        node,
        &path,
        &["http_uri", "sha256"],
        &[(
            "retry_policy",
            "pwx downloads once at load; a failed download fails the load",
        )],
    )?;
    let (uri_node, uri_path) = remote.require("http_uri")?;
    let http_uri = ctx.object(uri_node, &uri_path, &["uri", "cluster", "timeout"], &[])?;
    let sha256 = remote.require_string("sha256")?.to_ascii_lowercase();
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        let (n, p) = remote.require("sha256")?;
        return Err(ConfigError::at(
            origin(n, &p),
            "sha256 must be the module's SHA-256 as 64 hex digits",
        ));
    }
    Ok(CodeSource::Remote {
        uri: http_uri.require_string("uri")?,
        sha256,
        cluster: http_uri.string("cluster")?,
        timeout: http_uri.duration("timeout")?,
    })
}

/// Envoy's `EnvironmentVariables`.
#[derive(Default)]
struct EnvironmentVariables {
    /// Explicit pairs, in file order.
    key_values: Vec<(String, String)>,
    host_env_keys: Vec<String>,
}

fn environment(
    ctx: &mut Ctx,
    node: &Node,
    path: &Path,
) -> Result<EnvironmentVariables, ConfigError> {
    let obj = ctx.object(node, path, &["host_env_keys", "key_values"], &[])?;
    let mut host_keys = Vec::new();
    for (n, p) in obj.list("host_env_keys")? {
        host_keys.push(crate::envoy::reader::string(n, &p)?);
    }
    let mut pairs = Vec::new();
    if let Some((n, p)) = obj.get("key_values") {
        let Kind::Mapping(entries) = &n.kind else {
            return Err(crate::envoy::reader::type_error(
                n,
                &p,
                "a mapping of names to values",
            ));
        };
        for (key, value) in entries {
            let name = key.key_text().unwrap_or_default().to_owned();
            let value = crate::envoy::reader::string(value, &p.key(&name))?;
            pairs.push((name, value));
        }
    }
    Ok(EnvironmentVariables {
        key_values: pairs,
        host_env_keys: host_keys,
    })
}
