//! `pwx deploy istio`: a `WasmPlugin`, or the `EnvoyFilter` pair of patches (EXTENSION_CONFIG
//! defining the Wasm filter, HTTP_FILTER inserting an ECDS reference to it before the router).

use std::io::Write as _;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use pwx_oci::{ModuleSource, parse_reference};
use serde_json::{Map, Value, json};

use super::filter::{Code, Filter, FilterArgs, WASM_TYPE};
use super::output::{OutputArgs, Rendered, RenderedKind, emit, to_yaml};

/// Arguments of `pwx deploy istio`.
#[derive(clap::Args)]
pub(crate) struct IstioArgs {
    #[command(flatten)]
    filter: FilterArgs,
    /// What to render: wasm-plugin (extensions.istio.io WasmPlugin) or envoy-filter (an
    /// EnvoyFilter with an EXTENSION_CONFIG patch and the HTTP_FILTER that references it).
    #[arg(long, default_value = "wasm-plugin", value_parser = ["wasm-plugin", "envoy-filter"])]
    kind: String,
    /// Namespace of the manifest (default: none, i.e. kubectl's current namespace).
    #[arg(long)]
    namespace: Option<String>,
    /// WasmPlugin phase.
    #[arg(long, value_parser = ["AUTHN", "AUTHZ", "STATS", "UNSPECIFIED_PHASE"])]
    phase: Option<String>,
    /// WasmPlugin priority within its phase.
    #[arg(long, allow_negative_numbers = true)]
    priority: Option<i32>,
    /// Workload label KEY=VALUE (repeatable): WasmPlugin selector.matchLabels or EnvoyFilter
    /// workloadSelector.labels.
    #[arg(
        long = "selector",
        value_name = "KEY=VALUE",
        conflicts_with = "target_refs"
    )]
    selector: Vec<String>,
    /// Target [GROUP/]KIND/NAME (repeatable), e.g. gateway.networking.k8s.io/Gateway/ingress.
    #[arg(long = "target-ref", value_name = "[GROUP/]KIND/NAME")]
    target_refs: Vec<String>,
    /// WasmPlugin imagePullPolicy.
    #[arg(long, value_parser = ["IfNotPresent", "Always"])]
    image_pull_policy: Option<String>,
    /// WasmPlugin imagePullSecret (a Secret in the plugin's namespace).
    #[arg(long, value_name = "SECRET")]
    image_pull_secret: Option<String>,
    /// Pin an OCI url by digest (oci://REGISTRY/REPO@sha256:…) instead of its tag.
    #[arg(long)]
    pin: bool,
    /// The URL the mesh fetches the module from, when it differs from the module source (e.g. a
    /// local .wasm you also published at https://…).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// EnvoyFilter patch context.
    #[arg(long, default_value = "SIDECAR_INBOUND", value_parser = ["SIDECAR_INBOUND", "SIDECAR_OUTBOUND", "GATEWAY", "ANY"])]
    context: String,
    /// Hand the manifests to `kubectl apply -f -` (kubectl must be on PATH).
    #[arg(long)]
    apply: bool,
    #[command(flatten)]
    output: OutputArgs,
}

/// The url and checksum a manifest names.
struct Location {
    url: String,
    /// 64 hex digits: the module sha256 for http(s)/file, the image digest for oci.
    sha256: String,
}

pub(crate) fn execute(args: IstioArgs) -> anyhow::Result<()> {
    let filter = args.filter.load()?;
    let name = manifest_name(args.filter.name.as_deref(), &filter.name)?;
    if let Some(ns) = &args.namespace
        && !is_dns_label(ns)
    {
        bail!(
            "--namespace {ns:?} is not a valid Kubernetes namespace (lower-case letters, digits and '-', at most 63)"
        );
    }
    let location = location(&filter, args.url.as_deref(), args.pin)?;
    let mut metadata = json!({"name": name});
    if let Some(ns) = &args.namespace {
        metadata["namespace"] = json!(ns);
    }
    let labels = parse_selector(&args.selector)?;
    let target_refs = parse_target_refs(&args.target_refs)?;
    let doc = if args.kind == "wasm-plugin" {
        wasm_plugin(&filter, &args, metadata, &location, labels, target_refs)?
    } else {
        for (flag, set) in [
            ("--phase", args.phase.is_some()),
            ("--priority", args.priority.is_some()),
            ("--image-pull-policy", args.image_pull_policy.is_some()),
            ("--image-pull-secret", args.image_pull_secret.is_some()),
        ] {
            if set {
                bail!("{flag} is a WasmPlugin field; drop it or use --kind wasm-plugin");
            }
        }
        envoy_filter(&filter, &args, metadata, &location, labels, target_refs)
    };
    let file_name = format!("{name}-{}.yaml", args.kind);
    let rendered = vec![Rendered {
        file_name,
        kind: RenderedKind::Istio,
        doc,
    }];
    emit(&rendered, &args.output)?;
    eprintln!(
        "url {} sha256 {} (module sha256 {})",
        location.url, location.sha256, filter.module.sha256
    );
    if args.apply {
        apply(&rendered)?;
    }
    Ok(())
}

/// metadata.name: `--name` as given (checked), else the module name made DNS-safe.
fn manifest_name(explicit: Option<&str>, fallback: &str) -> anyhow::Result<String> {
    let name = match explicit {
        Some(n) => n.to_string(),
        None => {
            let mut s: String = fallback
                .to_ascii_lowercase()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            s = s.trim_matches(['-', '.']).to_string();
            if s.is_empty() {
                "wasm-filter".to_string()
            } else {
                s
            }
        }
    };
    let ok = name.len() <= 253 && name.split('.').all(is_dns_label);
    if !ok {
        bail!(
            "{name:?} is not a valid Kubernetes name: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit (pass --name)"
        );
    }
    Ok(name)
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn location(filter: &Filter, url: Option<&str>, pin: bool) -> anyhow::Result<Location> {
    let module_sha = filter.module.sha256.clone();
    if let Some(url) = url {
        if url.starts_with("oci://") {
            bail!(
                "--url oci://…: give the image as the module instead (pwx resolves its digest), e.g. `pwx deploy istio {url}`"
            );
        }
        if !(url.starts_with("https://")
            || url.starts_with("http://")
            || url.starts_with("file://"))
        {
            bail!("--url {url:?}: Istio fetches http://, https://, file:// or oci:// URLs");
        }
        return Ok(Location {
            url: url.to_string(),
            sha256: module_sha,
        });
    }
    match &filter.module.source {
        ModuleSource::Url { url, .. } => Ok(Location {
            url: url.to_string(),
            sha256: module_sha,
        }),
        ModuleSource::File { .. } => {
            eprintln!(
                "note: a file:// url is read on the proxy's own filesystem; pass --url https://… or deploy an oci:// image for a mesh"
            );
            Ok(Location {
                url: format!("file://{}", filter.module.path.display()),
                sha256: module_sha,
            })
        }
        ModuleSource::Oci { reference, .. } => {
            let image = filter.module.image.as_ref().ok_or_else(|| {
                anyhow::anyhow!("internal error: {reference} was resolved without its image")
            })?;
            let digest_hex = image
                .image_digest
                .strip_prefix("sha256:")
                .unwrap_or(&image.image_digest)
                .to_string();
            let url = if pin {
                let r = parse_reference(reference)?;
                format!(
                    "oci://{}/{}@{}",
                    r.registry(),
                    r.repository(),
                    image.image_digest
                )
            } else {
                format!("oci://{reference}")
            };
            // For images Istio checks `sha256` against the image (manifest) digest.
            Ok(Location {
                url,
                sha256: digest_hex,
            })
        }
    }
}

fn parse_selector(items: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut labels = Map::new();
    for item in items {
        let Some((k, v)) = item.split_once('=') else {
            bail!("--selector {item:?}: write KEY=VALUE, e.g. app=productpage");
        };
        if k.is_empty() || k.contains('*') || v.contains('*') {
            bail!("--selector {item:?}: keys must be non-empty and neither may contain '*'");
        }
        labels.insert(k.to_string(), json!(v));
    }
    Ok(labels)
}

fn parse_target_refs(items: &[String]) -> anyhow::Result<Vec<Value>> {
    items
        .iter()
        .map(|item| {
            let parts: Vec<&str> = item.split('/').collect();
            let (group, kind, name) = match parts.as_slice() {
                [kind, name] => ("", *kind, *name),
                [group, kind, name] => (*group, *kind, *name),
                _ => bail!(
                    "--target-ref {item:?}: write [GROUP/]KIND/NAME, e.g. gateway.networking.k8s.io/Gateway/ingress"
                ),
            };
            if kind.is_empty() || name.is_empty() {
                bail!("--target-ref {item:?}: KIND and NAME must not be empty");
            }
            let mut r = json!({"kind": kind, "name": name});
            if !group.is_empty() {
                r["group"] = json!(group);
            }
            Ok(r)
        })
        .collect()
}

fn wasm_plugin(
    filter: &Filter,
    args: &IstioArgs,
    metadata: Value,
    location: &Location,
    labels: Map<String, Value>,
    target_refs: Vec<Value>,
) -> anyhow::Result<Value> {
    if filter.vm_configuration.is_some() || !filter.vm_id.is_empty() {
        bail!(
            "a WasmPlugin has no vm_id or VM configuration (Istio sets them); drop --vm-id/--vm-config or use --kind envoy-filter"
        );
    }
    let mut spec = json!({
        "url": location.url,
        "sha256": location.sha256,
        "type": "HTTP",
        "failStrategy": filter.istio_fail_strategy(),
    });
    if let Some(text) = &filter.configuration {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            anyhow::anyhow!(
                "a WasmPlugin's pluginConfig must be a JSON object (Istio hands it to the filter as JSON text), but the configuration is not JSON: {e}; use --kind envoy-filter for other formats"
            )
        })?;
        if !value.is_object() {
            bail!(
                "a WasmPlugin's pluginConfig must be a JSON object, not {}; use --kind envoy-filter to pass other JSON values",
                kind_of(&value)
            );
        }
        spec["pluginConfig"] = value;
    }
    if !filter.root_id.is_empty() {
        spec["pluginName"] = json!(filter.root_id);
    }
    if let Some(phase) = &args.phase {
        spec["phase"] = json!(phase);
    }
    if let Some(p) = args.priority {
        spec["priority"] = json!(p);
    }
    if let Some(p) = &args.image_pull_policy {
        spec["imagePullPolicy"] = json!(p);
    }
    if let Some(s) = &args.image_pull_secret {
        spec["imagePullSecret"] = json!(s);
    }
    if !labels.is_empty() {
        spec["selector"] = json!({"matchLabels": labels});
    }
    if !target_refs.is_empty() {
        spec["targetRefs"] = Value::Array(target_refs);
    }
    Ok(json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": metadata,
        "spec": spec,
    }))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn envoy_filter(
    filter: &Filter,
    args: &IstioArgs,
    metadata: Value,
    location: &Location,
    labels: Map<String, Value>,
    target_refs: Vec<Value>,
) -> Value {
    // Istio's agent downloads http(s):// and oci:// modules itself and rewrites the config to a
    // local file before Envoy sees it; the cluster is what Envoy would use without the agent.
    let cluster = cluster_for(&location.url);
    let code = if let Some(path) = location.url.strip_prefix("file://") {
        Code::Local(path.into())
    } else {
        Code::Remote {
            uri: location.url.clone(),
            cluster,
            sha256: location.sha256.clone(),
        }
    };
    let typed_config = filter.wasm_typed_config(&code);
    let extension_name = filter.name.clone();
    let patches = json!([
        {
            "applyTo": "EXTENSION_CONFIG",
            "patch": {
                "operation": "ADD",
                "value": {"name": extension_name, "typed_config": typed_config},
            },
        },
        {
            "applyTo": "HTTP_FILTER",
            "match": {
                "context": args.context,
                "listener": {"filterChain": {"filter": {
                    "name": "envoy.filters.network.http_connection_manager",
                    "subFilter": {"name": "envoy.filters.http.router"},
                }}},
            },
            "patch": {
                "operation": "INSERT_BEFORE",
                "value": {
                    "name": extension_name,
                    "config_discovery": {
                        "config_source": {"ads": {}, "initial_fetch_timeout": "0s"},
                        "type_urls": [WASM_TYPE],
                    },
                },
            },
        },
    ]);
    let mut spec = json!({"configPatches": patches});
    if !labels.is_empty() {
        spec["workloadSelector"] = json!({"labels": labels});
    }
    if !target_refs.is_empty() {
        spec["targetRefs"] = Value::Array(target_refs);
    }
    json!({
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": metadata,
        "spec": spec,
    })
}

/// Istio's outbound cluster name for the URL's host and port.
fn cluster_for(url: &str) -> String {
    let (default_port, rest) = if let Some(r) = url.strip_prefix("http://") {
        (80, r)
    } else if let Some(r) = url.split_once("://").map(|(_, r)| r) {
        (443, r)
    } else {
        (443, url)
    };
    let authority = rest.split(['/', '@']).next().unwrap_or(rest);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => (h, p.parse::<u16>().unwrap_or(default_port)),
        _ => (authority, default_port),
    };
    format!("outbound|{port}||{host}")
}

/// `kubectl apply -f -` with the manifests on stdin.
fn apply(docs: &[Rendered]) -> anyhow::Result<()> {
    let kubectl = std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("kubectl"))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--apply needs kubectl on PATH; it is not there: write the manifests with --out DIR and apply them with your own tooling"
            )
        })?;
    let mut text = String::new();
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            text.push_str("---\n");
        }
        text.push_str(&to_yaml(&d.doc)?);
    }
    let mut child = Command::new(&kubectl)
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", kubectl.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .context("writing the manifests to kubectl")?;
    }
    let status = child.wait().context("waiting for kubectl")?;
    if !status.success() {
        bail!("kubectl apply failed ({status}); see its message above");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_and_clusters() {
        assert_eq!(manifest_name(None, "Add_Header").unwrap(), "add-header");
        assert!(manifest_name(Some("Bad_Name"), "x").is_err());
        assert_eq!(
            cluster_for("https://files.test/f.wasm"),
            "outbound|443||files.test"
        );
        assert_eq!(
            cluster_for("http://127.0.0.1:8080/f.wasm"),
            "outbound|8080||127.0.0.1"
        );
        assert_eq!(
            cluster_for("oci://127.0.0.1:5000/filters/x:v1"),
            "outbound|5000||127.0.0.1"
        );
        assert!(parse_selector(&["app".into()]).is_err());
        assert_eq!(
            parse_target_refs(&["gateway.networking.k8s.io/Gateway/gw".into()]).unwrap()[0]["group"],
            "gateway.networking.k8s.io"
        );
    }
}
