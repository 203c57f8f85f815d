//! Value types of the pwx format that are written as strings (durations, addresses,
//! endpoints), configuration values, and environment maps: each parses itself during
//! deserialization (so errors carry the value's position) and describes itself to the schema.

use crate::duration;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// A duration: `250ms`, `5s`, `1.5m`, `1h`, or `0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DurationText(pub Duration);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        duration::parse_pwx(&text)
            .map(DurationText)
            .map_err(de::Error::custom)
    }
}

impl JsonSchema for DurationText {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A duration: a number and a unit (ms, s, m, h), e.g. 250ms, 5s, 1.5m; or 0.",
            "anyOf": [
                {"type": "string", "pattern": "^(0|[0-9]+(\\.[0-9]+)?(ms|s|m|h))$"},
                {"const": 0}
            ]
        })
    }
}

/// A socket address to listen on: `IP:port` (`127.0.0.1:10000`, `[::1]:10000`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AddressText(pub SocketAddr);

impl<'de> Deserialize<'de> for AddressText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map(AddressText).map_err(|_| {
            de::Error::custom(format!(
                "invalid address `{text}`: expected IP:port, e.g. 127.0.0.1:10000, 0.0.0.0:8080 or [::1]:10000"
            ))
        })
    }
}

impl JsonSchema for AddressText {
    fn schema_name() -> Cow<'static, str> {
        "SocketAddress".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An IP address and port, e.g. 127.0.0.1:10000 or [::1]:10000 (port 0: any free port).",
            "type": "string",
            "pattern": "^(\\[[0-9A-Fa-f:.]+\\]|[0-9.]+):[0-9]{1,5}$"
        })
    }
}

/// An upstream endpoint: `host:port`, the host an IP address or a DNS name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EndpointText {
    pub host: String,
    pub port: u16,
}

impl<'de> Deserialize<'de> for EndpointText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_endpoint(&text).ok_or_else(|| {
            de::Error::custom(format!(
                "invalid endpoint `{text}`: expected host:port, e.g. 127.0.0.1:8080, backend.local:80 or [::1]:8080"
            ))
        })
    }
}

fn parse_endpoint(text: &str) -> Option<EndpointText> {
    let (host, port) = text.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = match host.strip_prefix('[') {
        Some(v6) => {
            let v6 = v6.strip_suffix(']')?;
            v6.parse::<std::net::Ipv6Addr>().ok()?;
            v6
        }
        None => host,
    };
    let valid_name = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    valid_name.then(|| EndpointText {
        host: host.to_owned(),
        port,
    })
}

impl JsonSchema for EndpointText {
    fn schema_name() -> Cow<'static, str> {
        "Endpoint".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "host:port; the host is an IP address (IPv6 in brackets) or a DNS name.",
            "type": "string",
            "pattern": "^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9._-]+):[0-9]{1,5}$"
        })
    }
}

/// A plugin or VM configuration: a string is passed as is; a mapping or list becomes JSON text
/// (keys in file order); a number or boolean becomes its text; null is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ConfigValue(pub Vec<u8>);

impl<'de> Deserialize<'de> for ConfigValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(JsonText { top: true })
            .map(|text| ConfigValue(text.into_bytes()))
    }
}

impl JsonSchema for ConfigValue {
    fn schema_name() -> Cow<'static, str> {
        "Configuration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Bytes for the module: a string is passed as is; a mapping or list is passed as JSON text (keys in file order); a number or boolean as its text."
        })
    }
}

/// Writes what it visits as JSON text; at the top, a string stays raw.
struct JsonText {
    top: bool,
}

impl<'de> Visitor<'de> for JsonText {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a configuration value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Ok(if self.top {
            String::new()
        } else {
            "null".into()
        })
    }

    fn visit_none<E: de::Error>(self) -> Result<String, E> {
        self.visit_unit()
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        serde_json::Number::from_f64(v)
            .map(|n| n.to_string())
            .ok_or_else(|| E::custom(format!("{v} cannot be written as JSON")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(if self.top {
            v.to_owned()
        } else {
            serde_json::Value::String(v.to_owned()).to_string()
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<String, A::Error> {
        let mut out = String::from("[");
        while let Some(item) = seq.next_element_seed(Nested)? {
            if out.len() > 1 {
                out.push(',');
            }
            out.push_str(&item);
        }
        out.push(']');
        Ok(out)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<String, A::Error> {
        let mut out = String::from("{");
        while let Some(key) = map.next_key::<String>()? {
            if out.len() > 1 {
                out.push(',');
            }
            out.push_str(&serde_json::Value::String(key).to_string());
            out.push(':');
            out.push_str(&map.next_value_seed(Nested)?);
        }
        out.push('}');
        Ok(out)
    }
}

/// A value inside a mapping or list: always JSON.
struct Nested;

impl<'de> de::DeserializeSeed<'de> for Nested {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(JsonText { top: false })
    }
}

/// Environment variables for the module, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Environment(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for Environment {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = Environment;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of variable names to values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Environment, A::Error> {
                let mut pairs = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, String>()? {
                    pairs.push((key, value));
                }
                Ok(Environment(pairs))
            }
        }
        deserializer.deserialize_map(Pairs)
    }
}

impl JsonSchema for Environment {
    fn schema_name() -> Cow<'static, str> {
        "Environment".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Environment variables the module sees through WASI (name: value).",
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean"]}
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("backend.local:80"),
            Some(EndpointText {
                host: "backend.local".into(),
                port: 80
            })
        );
        assert_eq!(
            parse_endpoint("[::1]:8080").map(|e| e.host),
            Some("::1".into())
        );
        assert_eq!(parse_endpoint("backend"), None);
        assert_eq!(parse_endpoint("a b:80"), None);
        assert_eq!(parse_endpoint("host:99999"), None);
    }
}
