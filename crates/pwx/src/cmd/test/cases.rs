//! The `tests.yaml` format: a configuration and a list of cases, each a request in and
//! expectations out. Unknown fields are errors, reported with file:line:column.

use anyhow::{Context as _, bail};
use serde::Deserialize;
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// A whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Suite {
    /// The module, relative to the file (default: the project's build/NAME.wasm).
    pub wasm: Option<String>,
    /// The plugin configuration for every case: a string as is, anything else as JSON.
    pub configuration: Option<Value>,
    /// Or: a file holding it, relative to this file.
    pub configuration_file: Option<String>,
    /// The VM configuration (a string as is, anything else as JSON).
    pub vm_configuration: Option<Value>,
    /// The root id selecting the root context.
    #[serde(default)]
    pub root_id: String,
    pub cases: Vec<Case>,
}

/// One case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Case {
    pub name: String,
    /// Replaces the file's configuration for this case.
    pub configuration: Option<Value>,
    #[serde(default)]
    pub request: RequestSpec,
    /// What the upstream answers (default: 200 echoing the request body).
    pub upstream: Option<ResponseSpec>,
    /// Answers to the filter's HTTP callouts.
    #[serde(default)]
    pub callouts: Vec<CalloutSpec>,
    /// Timer ticks delivered before the request (the filter must have set a tick period).
    #[serde(default)]
    pub ticks: u32,
    /// Sends the request this many times; expectations apply to the last exchange.
    #[serde(default = "one")]
    pub repeat: u32,
    #[serde(default)]
    pub expect: Expect,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RequestSpec {
    #[serde(default = "get")]
    pub method: String,
    #[serde(default = "root")]
    pub path: String,
    pub authority: Option<String>,
    #[serde(default)]
    pub headers: Mapping,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub trailers: Mapping,
}

impl Default for RequestSpec {
    fn default() -> Self {
        RequestSpec {
            method: get(),
            path: root(),
            authority: None,
            headers: Mapping::new(),
            body: String::new(),
            trailers: Mapping::new(),
        }
    }
}

fn get() -> String {
    "GET".into()
}

fn root() -> String {
    "/".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResponseSpec {
    #[serde(default = "ok")]
    pub status: u16,
    #[serde(default)]
    pub headers: Mapping,
    #[serde(default)]
    pub body: String,
}

fn ok() -> u16 {
    200
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CalloutSpec {
    pub cluster: String,
    /// Only callouts with exactly this :path.
    pub path: Option<String>,
    /// The answer; omit it together with `fail: true` for a transport failure.
    pub respond: Option<ResponseSpec>,
    #[serde(default)]
    pub fail: bool,
}

/// What must hold after the case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Expect {
    pub status: Option<u16>,
    /// Response headers: a string must equal, `null` must be absent.
    #[serde(default)]
    pub headers: Mapping,
    /// Response headers that must be present, whatever their value.
    #[serde(default)]
    pub headers_present: Vec<String>,
    pub body: Option<String>,
    pub body_contains: Option<String>,
    /// `null`: the request must not reach the upstream; a mapping: what it must look like.
    pub upstream: Option<Value>,
    /// Whether the filter sent a local reply.
    pub local_reply: Option<bool>,
    /// Substrings each of which some log line must contain.
    #[serde(default)]
    pub logs: Vec<String>,
    /// Metric values after the case, by the name the filter defined.
    #[serde(default)]
    pub metrics: BTreeMap<String, i64>,
    /// Number of callouts the filter made (in the last exchange).
    pub callouts: Option<usize>,
    /// Whether the filter reset the stream.
    pub reset: Option<bool>,
    /// The plugin must refuse to start, with an error containing this text.
    pub start_error: Option<String>,
}

/// Expectations about the request the upstream received.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpstreamExpect {
    #[serde(default)]
    pub headers: Mapping,
    #[serde(default)]
    pub headers_present: Vec<String>,
    pub body: Option<String>,
}

/// Reads and parses a suite; errors carry file:line:column.
pub(crate) fn load(path: &Path) -> anyhow::Result<Suite> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {}: pass the cases file (pwx test FILE.yaml)",
            path.display()
        )
    })?;
    let suite: Suite = serde_yaml::from_str(&text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!("{}:{}:{}", path.display(), l.line(), l.column()))
            .unwrap_or_else(|| path.display().to_string());
        // The location is already in front; serde_yaml repeats it at the end.
        let message = e.to_string();
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(m, _)| m);
        anyhow::anyhow!("{at}: {message}")
    })?;
    if suite.cases.is_empty() {
        bail!("{}: no cases", path.display());
    }
    Ok(suite)
}

/// A configuration value as bytes: strings as they are, anything else as JSON.
pub(crate) fn configuration_bytes(value: &Value) -> anyhow::Result<Vec<u8>> {
    Ok(match value {
        Value::String(s) => s.clone().into_bytes(),
        Value::Null => Vec::new(),
        other => {
            serde_json::to_vec(other).context("the configuration cannot be written as JSON")?
        }
    })
}

/// A header mapping as text pairs (numbers and booleans written as YAML shows them);
/// `null` values are kept as `None` (absent).
pub(crate) fn pairs(map: &Mapping, what: &str) -> anyhow::Result<Vec<(String, Option<String>)>> {
    map.iter()
        .map(|(k, v)| {
            let key = scalar(k).with_context(|| format!("{what}: header names must be strings"))?;
            let value = match v {
                Value::Null => None,
                other => Some(scalar(other).with_context(|| {
                    format!("{what}.{key}: header values must be strings, numbers or null")
                })?),
            };
            Ok((key, value))
        })
        .collect()
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
