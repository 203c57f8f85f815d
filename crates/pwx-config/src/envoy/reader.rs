//! Reading Envoy YAML field by field: every object is opened with the list of fields pwx
//! supports there and the list it accepts but ignores (each with its reason, returned as a
//! warning). Anything else is an error naming the field, its path and position.

pub(crate) use crate::context::Ctx;
use crate::duration;
use crate::error::{ConfigError, Origin, Warning};
use crate::yaml::{Kind, Node, Path, Resolved};
use std::time::Duration;

/// Where the hint for unsupported fields sends people.
pub(crate) const SUPPORTED_FIELDS_DOC: &str = "docs/config.md";

impl Ctx {
    /// Opens `node` (at `path`) as an object with the given fields. `ignored` pairs a field
    /// with the reason pwx does not act on it.
    pub fn object<'a>(
        &mut self,
        node: &'a Node,
        path: &Path,
        known: &[&str],
        ignored: &[(&str, &str)],
    ) -> Result<Obj<'a>, ConfigError> {
        let Some(entries) = node.entries() else {
            if node.is_null() {
                return Ok(Obj {
                    node,
                    path: path.clone(),
                });
            }
            return Err(type_error(node, path, "a mapping"));
        };
        for (key, _) in entries {
            let name = key.key_text().unwrap_or_default();
            let field_path = path.key(name);
            if known.contains(&name) {
                continue;
            }
            if let Some((_, reason)) = ignored.iter().find(|(field, _)| *field == name) {
                self.warnings.push(Warning {
                    origin: origin(key, &field_path),
                    message: format!("`{name}` is accepted and ignored: {reason}"),
                });
                continue;
            }
            return Err(ConfigError::at(
                origin(key, &field_path),
                format!("unknown or unsupported field `{name}`"),
            )
            .with_hint(format!(
                "pwx does not support `{name}` here; remove it, or see {SUPPORTED_FIELDS_DOC} for the Envoy fields pwx reads"
            )));
        }
        Ok(Obj {
            node,
            path: path.clone(),
        })
    }
}

/// The origin of `node` at `path`.
pub(crate) fn origin(node: &Node, path: &Path) -> Origin {
    Origin {
        location: node.location.clone(),
        path: path.to_string(),
    }
}

/// "expected X, found Y" at `node`.
pub(crate) fn type_error(node: &Node, path: &Path, expected: &str) -> ConfigError {
    ConfigError::at(
        origin(node, path),
        format!("expected {expected}, found {}", node.describe()),
    )
}

/// An object whose fields were checked; typed getters for them.
pub(crate) struct Obj<'a> {
    pub node: &'a Node,
    pub path: Path,
}

impl<'a> Obj<'a> {
    /// A `typed_config` before its `@type` is known: only checked to be a mapping; the caller
    /// opens it with `Ctx::object` once it knows which fields that type has.
    pub fn typed(node: &'a Node, path: &Path) -> Result<Obj<'a>, ConfigError> {
        if node.entries().is_none() {
            return Err(type_error(node, path, "a mapping with an `@type`"));
        }
        Ok(Obj {
            node,
            path: path.clone(),
        })
    }

    pub fn origin(&self) -> Origin {
        origin(self.node, &self.path)
    }

    /// The field's node and path, if present and not null.
    pub fn get(&self, key: &str) -> Option<(&'a Node, Path)> {
        self.node
            .get(key)
            .filter(|n| !n.is_null())
            .map(|n| (n, self.path.key(key)))
    }

    /// Like `get`, but the field must be there.
    pub fn require(&self, key: &str) -> Result<(&'a Node, Path), ConfigError> {
        self.get(key).ok_or_else(|| {
            ConfigError::at(self.origin(), format!("missing required field `{key}`"))
        })
    }

    pub fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        self.get(key).map(|(n, p)| string(n, &p)).transpose()
    }

    pub fn string_or_empty(&self, key: &str) -> Result<String, ConfigError> {
        Ok(self.string(key)?.unwrap_or_default())
    }

    pub fn require_string(&self, key: &str) -> Result<String, ConfigError> {
        let (node, path) = self.require(key)?;
        string(node, &path)
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        self.get(key)
            .map(|(node, path)| match &node.kind {
                Kind::Scalar(s) => match s.resolve() {
                    Resolved::Bool(b) => Ok(b),
                    _ => Err(type_error(node, &path, "true or false")),
                },
                _ => Err(type_error(node, &path, "true or false")),
            })
            .transpose()
    }

    /// An unsigned integer; protobuf's JSON form also allows it quoted.
    pub fn uint(&self, key: &str, max: u64) -> Result<Option<u64>, ConfigError> {
        self.get(key)
            .map(|(node, path)| {
                let expected = format!("an integer from 0 to {max}");
                let value = match &node.kind {
                    Kind::Scalar(s) => match s.resolve() {
                        Resolved::Int(i) => u64::try_from(i).ok(),
                        Resolved::Str(text) => text.parse::<u64>().ok(),
                        _ => None,
                    },
                    _ => None,
                };
                match value {
                    Some(v) if v <= max => Ok(v),
                    Some(v) => Err(ConfigError::at(
                        origin(node, &path),
                        format!("{v} is out of range: expected {expected}"),
                    )),
                    None => Err(type_error(node, &path, &expected)),
                }
            })
            .transpose()
    }

    /// A `google.protobuf.Duration` in its JSON form (`"1.5s"`).
    pub fn duration(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        self.get(key)
            .map(|(node, path)| {
                let text = string(node, &path)?;
                duration::parse_proto(&text)
                    .map_err(|message| ConfigError::at(origin(node, &path), message))
            })
            .transpose()
    }

    /// The items of a list field (empty when absent).
    pub fn list(&self, key: &str) -> Result<Vec<(&'a Node, Path)>, ConfigError> {
        let Some((node, path)) = self.get(key) else {
            return Ok(Vec::new());
        };
        match &node.kind {
            Kind::Sequence(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, item)| (item, path.index(i)))
                .collect()),
            _ => Err(type_error(node, &path, "a list")),
        }
    }

    /// An enum field written as its name (`ROUND_ROBIN`), among `names`.
    pub fn enum_name(&self, key: &str, names: &[&str]) -> Result<Option<String>, ConfigError> {
        self.get(key)
            .map(|(node, path)| {
                let text = string(node, &path)?;
                if names.contains(&text.as_str()) {
                    Ok(text)
                } else {
                    Err(ConfigError::at(
                        origin(node, &path),
                        format!(
                            "unsupported value `{text}`; pwx supports: {}",
                            names.join(", ")
                        ),
                    ))
                }
            })
            .transpose()
    }

    /// Errors unless at most one of `keys` is set; returns the one that is.
    pub fn one_of(&self, keys: &[&'static str]) -> Result<Option<&'static str>, ConfigError> {
        let set: Vec<&'static str> = keys
            .iter()
            .copied()
            .filter(|k| self.get(k).is_some())
            .collect();
        if set.len() > 1 {
            return Err(ConfigError::at(
                self.origin(),
                format!("only one of {} may be set", quote_all(&set)),
            ));
        }
        Ok(set.first().copied())
    }
}

fn quote_all(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A scalar as a string (numbers and booleans as written).
pub(crate) fn string(node: &Node, path: &Path) -> Result<String, ConfigError> {
    match &node.kind {
        Kind::Scalar(s) if s.resolve() != Resolved::Null => Ok(s.text.clone()),
        _ => Err(type_error(node, path, "a string")),
    }
}
