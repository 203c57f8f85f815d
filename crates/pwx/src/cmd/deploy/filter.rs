//! What every deploy target needs about the filter: the module, its configuration, names, and
//! Envoy's `envoy.filters.http.wasm` config for it.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::modules::{ResolvedModule, SourceArgs, resolve};

/// Type URL of Envoy's Wasm HTTP filter config.
pub(crate) const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const STRING_VALUE_TYPE: &str = "type.googleapis.com/google.protobuf.StringValue";

/// The filter, as given on the command line.
#[derive(clap::Args)]
pub(crate) struct FilterArgs {
    /// The module: a .wasm file, https://…#sha256=HEX, or oci://REGISTRY/REPO:TAG|@sha256:DIGEST.
    pub module: String,
    /// Expected module sha256 (64 hex digits), checked before anything is rendered.
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    /// Plugin configuration (text handed to on_configure; JSON for most filters).
    #[arg(long, value_name = "TEXT", conflicts_with = "config_file")]
    pub config: Option<String>,
    /// Read the plugin configuration from a file.
    #[arg(long, value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// Filter/plugin name (default: from the module's file or repository name).
    #[arg(long)]
    pub name: Option<String>,
    /// Root id of the plugin (empty = the module's default root context).
    #[arg(long, default_value = "")]
    pub root_id: String,
    /// VM id (filters with the same vm_id and code share a VM).
    #[arg(long, default_value = "")]
    pub vm_id: String,
    /// VM configuration (text handed to on_vm_start).
    #[arg(long, value_name = "TEXT")]
    pub vm_config: Option<String>,
    /// What a failing filter does to traffic.
    #[arg(long, default_value = "fail-closed", value_parser = ["fail-closed", "fail-open", "fail-reload"])]
    pub failure_policy: String,
    #[command(flatten)]
    pub sources: SourceArgs,
}

/// A filter ready to render.
pub(crate) struct Filter {
    pub module: ResolvedModule,
    pub name: String,
    pub root_id: String,
    pub vm_id: String,
    pub configuration: Option<String>,
    pub vm_configuration: Option<String>,
    /// `fail-closed`, `fail-open` or `fail-reload`.
    pub failure_policy: String,
}

/// Where Envoy gets the module's code.
pub(crate) enum Code {
    /// `code.local.filename`.
    Local(PathBuf),
    /// `code.remote`: fetched over `http_uri` from `cluster`, checked against `sha256`.
    Remote {
        uri: String,
        cluster: String,
        sha256: String,
    },
}

impl FilterArgs {
    /// Resolves the module (fetching and verifying it) and reads the configuration.
    pub(crate) fn load(&self) -> anyhow::Result<Filter> {
        let opts = self.sources.options()?;
        let module = resolve(&self.module, self.sha256.as_deref(), &opts)?;
        let configuration = match (&self.config, &self.config_file) {
            (Some(text), _) => Some(text.clone()),
            (None, Some(file)) => Some(std::fs::read_to_string(file).with_context(|| {
                format!("cannot read the plugin configuration {}", file.display())
            })?),
            (None, None) => None,
        };
        let name = match &self.name {
            Some(n) if n.trim().is_empty() => bail!("--name must not be empty"),
            Some(n) => n.clone(),
            None => module.name(),
        };
        Ok(Filter {
            module,
            name,
            root_id: self.root_id.clone(),
            vm_id: self.vm_id.clone(),
            configuration,
            vm_configuration: self.vm_config.clone(),
            failure_policy: self.failure_policy.clone(),
        })
    }
}

impl Filter {
    /// Envoy's `failure_policy` enum name.
    pub(crate) fn envoy_failure_policy(&self) -> &'static str {
        match self.failure_policy.as_str() {
            "fail-open" => "FAIL_OPEN",
            "fail-reload" => "FAIL_RELOAD",
            _ => "FAIL_CLOSED",
        }
    }

    /// Istio's `failStrategy` enum name.
    pub(crate) fn istio_fail_strategy(&self) -> &'static str {
        match self.failure_policy.as_str() {
            "fail-open" => "FAIL_OPEN",
            "fail-reload" => "FAIL_RELOAD",
            _ => "FAIL_CLOSE",
        }
    }

    /// The `typed_config` of `envoy.filters.http.wasm` (a `Wasm` message) with `code`.
    pub(crate) fn wasm_typed_config(&self, code: &Code) -> Value {
        let code = match code {
            Code::Local(path) => json!({"local": {"filename": path.display().to_string()}}),
            Code::Remote {
                uri,
                cluster,
                sha256,
            } => json!({"remote": {
                "http_uri": {"uri": uri, "cluster": cluster, "timeout": "30s"},
                "sha256": sha256,
                "retry_policy": {"num_retries": 3},
            }}),
        };
        let mut vm = json!({
            "vm_id": self.vm_id,
            "runtime": "envoy.wasm.runtime.v8",
            "code": code,
        });
        if let Some(text) = &self.vm_configuration {
            vm["configuration"] = json!({"@type": STRING_VALUE_TYPE, "value": text});
        }
        let mut plugin = json!({
            "name": self.name,
            "root_id": self.root_id,
            "failure_policy": self.envoy_failure_policy(),
            "vm_config": vm,
        });
        if let Some(text) = &self.configuration {
            plugin["configuration"] = json!({"@type": STRING_VALUE_TYPE, "value": text});
        }
        json!({"@type": WASM_TYPE, "config": plugin})
    }
}
