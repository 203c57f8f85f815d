//! The probe script: which operations to run in which callback, and what to return.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One operation: a JSON object with an `op` name and its arguments.
pub type Op = Map<String, Value>;

/// What one callback does.
#[derive(Debug, Default, Clone)]
pub struct Step {
    /// Operations, run in order.
    pub ops: Vec<Op>,
    /// Return value; `None` means the callback's default (continue / true).
    pub ret: Option<Value>,
}

/// A parsed script (plugin or VM configuration).
#[derive(Debug, Default, Clone)]
pub struct Script {
    /// Printed after `probe:` in every line when set, to tell filters apart.
    pub tag: Option<String>,
    /// Log one line when each callback is entered (default true).
    pub trace: bool,
    /// Steps by callback key (`on_request_headers`, `on_request_body#2`, ...).
    pub steps: BTreeMap<String, Step>,
    /// `"network": true`: the root creates network (TCP) stream contexts instead of HTTP ones.
    pub network: bool,
}

impl Script {
    /// An empty script: trace every callback, do nothing else.
    pub fn empty() -> Self {
        Script {
            tag: None,
            trace: true,
            steps: BTreeMap::new(),
            network: false,
        }
    }

    /// Parses a script; empty input is the empty script.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let mut script = Script::empty();
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(script);
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let Value::Object(top) = value else {
            return Err("script must be a JSON object".to_string());
        };
        for (key, value) in top {
            match key.as_str() {
                "tag" => script.tag = value.as_str().map(str::to_string),
                "trace" => script.trace = value.as_bool().unwrap_or(true),
                "network" => script.network = value.as_bool().unwrap_or(false),
                k if k.starts_with("on_") || k.starts_with("root_on_") => {
                    script.steps.insert(key.clone(), parse_step(&key, value)?);
                }
                // Anything else is free for the case author (comments, data for other tools).
                _ => {}
            }
        }
        Ok(script)
    }

    /// The step for the `n`-th (1-based) call of `callback` in one context.
    pub fn step(&self, callback: &str, n: u32) -> Option<&Step> {
        self.steps
            .get(&format!("{callback}#{n}"))
            .or_else(|| self.steps.get(callback))
    }

    /// Merges `other` over `self` (its keys win).
    pub fn overlay(&self, other: &Script) -> Script {
        let mut merged = self.clone();
        if other.tag.is_some() {
            merged.tag = other.tag.clone();
        }
        merged.trace = other.trace;
        merged.network = merged.network || other.network;
        for (k, v) in &other.steps {
            merged.steps.insert(k.clone(), v.clone());
        }
        merged
    }
}

fn parse_step(key: &str, value: Value) -> Result<Step, String> {
    match value {
        Value::Array(ops) => Ok(Step {
            ops: parse_ops(key, ops)?,
            ret: None,
        }),
        Value::Object(mut obj) => {
            let ops = match obj.remove("ops") {
                Some(Value::Array(ops)) => parse_ops(key, ops)?,
                None => Vec::new(),
                Some(_) => return Err(format!("{key}: `ops` must be a list")),
            };
            Ok(Step {
                ops,
                ret: obj.remove("ret"),
            })
        }
        _ => Err(format!("{key}: expected a list of ops or {{ops, ret}}")),
    }
}

fn parse_ops(key: &str, ops: Vec<Value>) -> Result<Vec<Op>, String> {
    ops.into_iter()
        .map(|op| match op {
            Value::Object(o) if o.get("op").is_some_and(Value::is_string) => Ok(o),
            // A bare string is an op without arguments: "trap", "done", ...
            Value::String(name) => {
                let mut o = Map::new();
                o.insert("op".to_string(), Value::String(name));
                Ok(o)
            }
            _ => Err(format!("{key}: every op is an object with a string `op`")),
        })
        .collect()
}
