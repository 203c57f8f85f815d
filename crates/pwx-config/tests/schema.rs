//! The JSON Schema of pwx YAML: derived from the decoder's own types (schemars), committed as
//! docs/config.schema.json, and checked against every pwx example in the repository with a
//! small validator for the keywords schemars emits. Files the decoder rejects for their shape
//! must fail the schema too.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn schema() -> Value {
    serde_json::from_str(&pwx_config::schema()).unwrap()
}

/// Validates `value` against `schema` (with `root` for `$ref`s); errors name the JSON path.
fn check(root: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(schema) = schema.as_object() else {
        return; // `true`: anything goes.
    };
    if let Some(Value::String(reference)) = schema.get("$ref") {
        let name = reference.trim_start_matches("#/$defs/");
        check(root, &root["$defs"][name], value, at, errors);
    }
    if let Some(expected) = schema.get("const")
        && expected != value
        && !(expected.is_number() && value.is_number() && expected.as_f64() == value.as_f64())
    {
        errors.push(format!("{at}: expected {expected}, found {value}"));
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let matches = |t: &str| match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            _ => false,
        };
        if !types.iter().any(|t| matches(t)) {
            errors.push(format!("{at}: expected {types:?}, found {value}"));
            return;
        }
    }
    if let (Some(pattern), Some(text)) = (schema.get("pattern"), value.as_str()) {
        let regex = regex::Regex::new(pattern.as_str().unwrap()).unwrap();
        if !regex.is_match(text) {
            errors.push(format!("{at}: `{text}` does not match {pattern}"));
        }
    }
    if let Some(number) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && number < min
        {
            errors.push(format!("{at}: {number} < {min}"));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && number > max
        {
            errors.push(format!("{at}: {number} > {max}"));
        }
    }
    for (keyword, exactly_one) in [("anyOf", false), ("oneOf", true)] {
        if let Some(Value::Array(options)) = schema.get(keyword) {
            let passing = options
                .iter()
                .filter(|option| {
                    let mut sub = Vec::new();
                    check(root, option, value, at, &mut sub);
                    sub.is_empty()
                })
                .count();
            if passing == 0 || (exactly_one && passing > 1) {
                errors.push(format!(
                    "{at}: {passing} of the {keyword} options match {value}"
                ));
            }
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(required)) = schema.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(name) {
                    errors.push(format!("{at}: missing `{name}`"));
                }
            }
        }
        for (key, item) in object {
            let path = format!("{at}.{key}");
            match properties.and_then(|p| p.get(key)) {
                Some(property) => check(root, property, item, &path, errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => errors.push(format!("{path}: not allowed")),
                    Some(extra) => check(root, extra, item, &path, errors),
                    None => {}
                },
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            check(root, items, item, &format!("{at}[{i}]"), errors);
        }
    }
}

fn schema_errors(yaml: &str) -> Vec<String> {
    let schema = schema();
    let value = pwx_config::yaml_to_json(yaml, "t.yaml").unwrap();
    let mut errors = Vec::new();
    check(&schema, &schema, &value, "$", &mut errors);
    errors
}

/// Every pwx YAML file in the repository: docs/examples and this crate's test data.
fn pwx_examples() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in [
        repo().join("docs/examples"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data"),
    ] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") && !is_envoy(&path) {
                files.push(path);
            }
        }
    }
    files
}

fn is_envoy(path: &Path) -> bool {
    pwx_config::load(path).is_ok_and(|l| l.format == pwx_config::Format::Envoy)
}

#[test]
fn every_pwx_example_validates_against_the_schema_and_loads() {
    let examples = pwx_examples();
    assert!(examples.len() >= 2, "{examples:?}");
    for path in examples {
        let text = std::fs::read_to_string(&path).unwrap();
        let errors = schema_errors(&text);
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
        pwx_config::load(&path).unwrap();
    }
}

#[test]
fn files_the_decoder_rejects_for_their_shape_fail_the_schema_too() {
    let base = "listeners:\n  - name: main\n    address: 127.0.0.1:10000\n    routes: [{direct_response: {status: 200}}]\n";
    let cases = [
        format!("{base}    bogus: 1\n"),
        format!("{base}    codec: http3\n"),
        format!("{base}    stream_idle_timeout: 5 seconds\n"),
        base.replace("127.0.0.1:10000", "localhost"),
        base.replace("status: 200", "status: 700"),
        format!("{base}    filters: [{{name: f}}]\n"),
        format!("{base}clusters: [{{name: c, endpoints: [nohost]}}]\n"),
        format!("{base}services: [{{name: s, module: m.wasm, singleton: maybe}}]\n"),
    ];
    for case in cases {
        assert!(
            pwx_config::parse_str(&case, "t.yaml").is_err(),
            "the decoder accepted:\n{case}"
        );
        assert!(
            !schema_errors(&case).is_empty(),
            "the schema accepted:\n{case}"
        );
    }
    assert!(schema_errors(base).is_empty());
}

#[test]
fn committed_schema_is_current() {
    let committed = std::fs::read_to_string(repo().join("docs/config.schema.json")).unwrap();
    assert!(
        committed.trim_end() == pwx_config::schema().trim_end(),
        "docs/config.schema.json is stale: regenerate it with `cargo run -p pwx -- schema --output docs/config.schema.json`"
    );
}
