//! `google.protobuf.Any` in Envoy YAML: the `@type` of a `typed_config`, and the plugin and VM
//! `configuration` values, which reach the module as bytes.

use crate::envoy::reader::{Ctx, Obj, origin, string};
use crate::error::ConfigError;
use crate::yaml::{Node, Path};
use base64::Engine as _;

const TYPE_PREFIX: &str = "type.googleapis.com/";
const STRING_VALUE: &str = "google.protobuf.StringValue";
const BYTES_VALUE: &str = "google.protobuf.BytesValue";

/// The message name in `@type` (the part after the last `/`), checked against `supported`.
pub(crate) fn type_of(
    obj: &Obj<'_>,
    supported: &[&'static str],
) -> Result<&'static str, ConfigError> {
    let (node, path) = obj.get("@type").ok_or_else(|| {
        ConfigError::at(obj.origin(), "missing `@type`")
            .with_hint(format!("pwx supports here: {}", list_types(supported)))
    })?;
    let url = string(node, &path)?;
    let name = url.rsplit('/').next().unwrap_or_default();
    supported
        .iter()
        .copied()
        .find(|s| *s == name)
        .ok_or_else(|| {
            ConfigError::at(origin(node, &path), format!("unsupported @type `{url}`"))
                .with_hint(format!("pwx supports here: {}", list_types(supported)))
        })
}

fn list_types(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{TYPE_PREFIX}{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A plugin or VM `configuration` as the bytes the module receives, as Envoy 1.40 passes them:
/// `StringValue` and `BytesValue` without their wrapper. Any other message type (a `Struct`
/// included: checked with Envoy 1.40, whose module received the serialized protobuf, not JSON)
/// reaches the module as serialized protobuf, which pwx cannot produce without the schema, so
/// it is refused with a hint.
pub(crate) fn configuration_bytes(
    ctx: &mut Ctx,
    node: &Node,
    path: &Path,
) -> Result<Vec<u8>, ConfigError> {
    let obj = ctx.object(node, path, &["@type", "value"], &[])?;
    let kind = type_of(&obj, &[STRING_VALUE, BYTES_VALUE]).map_err(|e| {
        e.with_hint(
            "a plugin configuration reaches the module as bytes: use google.protobuf.StringValue (text, e.g. JSON) or google.protobuf.BytesValue (base64); Envoy passes other types, google.protobuf.Struct included, as serialized protobuf, which pwx does not produce",
        )
    })?;
    if kind == STRING_VALUE {
        return Ok(obj.string_or_empty("value")?.into_bytes());
    }
    let Some((value, value_path)) = obj.get("value") else {
        return Ok(Vec::new());
    };
    decode_base64(&string(value, &value_path)?).ok_or_else(|| {
        ConfigError::at(
            origin(value, &value_path),
            "BytesValue `value` is not base64",
        )
        .with_hint("write the bytes base64-encoded, or use google.protobuf.StringValue for text")
    })
}

/// Base64 as protobuf's JSON reader takes it: standard or URL-safe alphabet, padding optional.
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let trimmed = text.trim().trim_end_matches('=');
    STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| URL_SAFE_NO_PAD.decode(trimmed))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_in_both_alphabets() {
        assert_eq!(decode_base64("aGk+Pz8="), Some(b"hi>??".to_vec()));
        assert_eq!(decode_base64("aGk-Pz8"), Some(b"hi>??".to_vec()));
        assert_eq!(decode_base64("%%%"), None);
    }
}
