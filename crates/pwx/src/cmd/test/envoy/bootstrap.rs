//! The bootstrap `pwx test --envoy` runs: the filter as `pwx deploy bootstrap` renders it, one
//! listener per case (each case gets its own VM through its own `vm_id`, so no state leaks from
//! one case into the next), the local upstream, one cluster per callout cluster name, an access
//! log per case (response code details tell a filter's local reply from the upstream's answer).

use crate::cmd::deploy::bootstrap::{BootstrapSpec, ListenerArgs, render};
use crate::cmd::deploy::filter::{Code, Filter};
use crate::modules::ResolvedModule;
use anyhow::Context as _;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The plugin name Envoy logs with (`wasm log pwx-test …`).
pub(crate) const PLUGIN_NAME: &str = "pwx-test";
const ACCESS_LOG_TYPE: &str =
    "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog";

/// One case's listener.
pub(crate) struct CaseListener {
    /// Listener name, `vm_id` and stat prefix stem: `case-<index>`.
    pub name: String,
    pub configuration: Option<String>,
    pub access_log: PathBuf,
}

/// What every listener shares.
pub(crate) struct Common<'a> {
    pub module: &'a ResolvedModule,
    pub root_id: &'a str,
    pub vm_configuration: Option<String>,
    pub upstream_port: u16,
    /// Callout cluster name → local port.
    pub callout_clusters: &'a BTreeMap<String, u16>,
}

/// Renders the bootstrap (as JSON, which Envoy reads like YAML).
pub(crate) fn render_bootstrap(
    common: &Common<'_>,
    cases: &[CaseListener],
) -> anyhow::Result<Value> {
    let listener_args = ListenerArgs {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        upstream: Some(format!("127.0.0.1:{}", common.upstream_port)),
        admin: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ca_file: PathBuf::from("/etc/ssl/certs/ca-certificates.crt"),
    };
    let mut listeners = Vec::new();
    let mut bootstrap = Value::Null;
    for case in cases {
        let filter = Filter {
            module: common.module.clone(),
            name: PLUGIN_NAME.to_string(),
            root_id: common.root_id.to_string(),
            vm_id: case.name.clone(),
            configuration: case.configuration.clone(),
            vm_configuration: common.vm_configuration.clone(),
            failure_policy: "fail-closed".into(),
        };
        let spec = BootstrapSpec {
            listener: &listener_args,
            code: Code::Local(common.module.path.clone()),
            ecds_path: None,
            module_url: None,
        };
        let rendered = render(&filter, &spec)?;
        let doc = rendered
            .into_iter()
            .next()
            .map(|r| r.doc)
            .context("internal error: no bootstrap rendered")?;
        let mut listener = doc
            .pointer("/static_resources/listeners/0")
            .cloned()
            .context("internal error: the rendered bootstrap has no listener")?;
        listener["name"] = json!(case.name);
        let hcm = listener
            .pointer_mut("/filter_chains/0/filters/0/typed_config")
            .context("internal error: the rendered listener has no connection manager")?;
        hcm["stat_prefix"] = json!(case.name.replace('-', "_"));
        // Request trailers reach the filter only when HTTP/1 trailers are enabled.
        hcm["http_protocol_options"] = json!({"enable_trailers": true});
        hcm["access_log"] = json!([{
            "name": "envoy.access_loggers.file",
            "typed_config": {
                "@type": ACCESS_LOG_TYPE,
                "path": case.access_log.display().to_string(),
                "log_format": {"text_format_source": {
                    "inline_string": "%RESPONSE_CODE%|%RESPONSE_CODE_DETAILS%\n"
                }},
            },
        }]);
        listeners.push(listener);
        bootstrap = doc;
    }
    let clusters = bootstrap
        .pointer_mut("/static_resources/clusters")
        .and_then(Value::as_array_mut)
        .context("internal error: the rendered bootstrap has no clusters")?;
    for (name, port) in common.callout_clusters {
        clusters.push(json!({
            "name": name,
            "type": "STATIC",
            "connect_timeout": "5s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            }}]}]},
        }));
    }
    bootstrap["static_resources"]["listeners"] = Value::Array(listeners);
    Ok(bootstrap)
}

/// Writes `doc` to `dir/envoy.json`.
pub(crate) fn write(doc: &Value, dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("envoy.json");
    std::fs::write(&path, serde_json::to_vec_pretty(doc)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}
