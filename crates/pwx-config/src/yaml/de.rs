//! A serde deserializer over the spanned tree. Any error raised while a node is being decoded
//! (a type mismatch, an unknown or missing field, a bad duration) gets that node's position and
//! field path, so the pwx front end reports `file:line:col: path: message` for free.

use crate::error::{ConfigError, Origin};
use crate::yaml::{Kind, Node, Path, Resolved};
use serde::de::{self, IntoDeserializer, Visitor};
use std::fmt;

/// A decode error; the position is filled in by the innermost node that saw it.
#[derive(Debug)]
pub(crate) struct DeError {
    message: String,
    origin: Option<Origin>,
}

impl DeError {
    /// The error as a `ConfigError` (every error leaving `from_node` has an origin).
    pub fn into_config_error(self, root: &Node) -> ConfigError {
        let origin = self.origin.unwrap_or_else(|| root.origin_of(&Path::root()));
        ConfigError::at(origin, self.message)
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        DeError {
            message: message.to_string(),
            origin: None,
        }
    }
}

/// Decodes `T` from `node`, whose path from the document root is `path`.
pub(crate) fn from_node<T: de::DeserializeOwned>(node: &Node, path: Path) -> Result<T, DeError> {
    T::deserialize(NodeDeserializer { node, path })
}

struct NodeDeserializer<'a> {
    node: &'a Node,
    path: Path,
}

impl NodeDeserializer<'_> {
    /// Gives an error without a position this node's position.
    fn locate<T>(&self, result: Result<T, DeError>) -> Result<T, DeError> {
        self.locator().locate(result)
    }

    fn locator(&self) -> Locator {
        Locator {
            node: self.node.location.clone(),
            path: self.path.clone(),
        }
    }
}

/// A node's position, kept to stamp errors raised once the node itself was consumed.
struct Locator {
    node: crate::error::Location,
    path: Path,
}

impl Locator {
    fn locate<T>(&self, result: Result<T, DeError>) -> Result<T, DeError> {
        result.map_err(|mut error| {
            if error.origin.is_none() {
                error.origin = Some(Origin {
                    location: self.node.clone(),
                    path: self.path.to_string(),
                });
            }
            error
        })
    }
}

macro_rules! forward_to_any {
    ($($method:ident)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            self.deserialize_any(visitor)
        })*
    };
}

impl<'de> de::Deserializer<'de> for NodeDeserializer<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.kind {
            Kind::Mapping(entries) => visitor.visit_map(Entries {
                entries: entries.iter(),
                path: &self.path,
                value: None,
            }),
            Kind::Sequence(items) => visitor.visit_seq(Items {
                items: items.iter().enumerate(),
                path: &self.path,
            }),
            Kind::Scalar(scalar) => match scalar.resolve() {
                Resolved::Null => visitor.visit_unit(),
                Resolved::Bool(b) => visitor.visit_bool(b),
                Resolved::Int(i) => match (i64::try_from(i), u64::try_from(i)) {
                    (Ok(v), _) => visitor.visit_i64(v),
                    (_, Ok(v)) => visitor.visit_u64(v),
                    _ => visitor.visit_i128(i),
                },
                Resolved::Float(f) => visitor.visit_f64(f),
                Resolved::Str(s) => visitor.visit_str(s),
            },
        };
        self.locate(result)
    }

    /// Any non-null scalar reads as its text where a string is wanted (`name: 123` is "123").
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Scalar(scalar) if scalar.resolve() != Resolved::Null => {
                let result = visitor.visit_str(&scalar.text);
                self.locate(result)
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let result = match &self.node.kind {
            Kind::Scalar(scalar) if scalar.resolve() != Resolved::Null => {
                let text: de::value::StrDeserializer<'_, DeError> =
                    scalar.text.as_str().into_deserializer();
                visitor.visit_enum(text)
            }
            _ => Err(de::Error::invalid_type(
                de::Unexpected::Other(self.node.describe()),
                &"one of the names listed in docs/config.md",
            )),
        };
        self.locate(result)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    forward_to_any! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_bytes
        deserialize_byte_buf deserialize_unit deserialize_seq deserialize_map
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_any(visitor)
    }
}

struct Entries<'a> {
    entries: std::slice::Iter<'a, (Node, Node)>,
    path: &'a Path,
    value: Option<(&'a Node, Path)>,
}

impl<'de> de::MapAccess<'de> for Entries<'_> {
    type Error = DeError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let path = self.path.key(key.key_text().unwrap_or_default());
        let key_value = seed.deserialize(NodeDeserializer {
            node: key,
            path: path.clone(),
        })?;
        self.value = Some((value, path));
        Ok(Some(key_value))
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DeError> {
        match self.value.take() {
            // `locate` also catches errors a type raises after reading the node (a duration
            // that does not parse), which no inner node saw.
            Some((node, path)) => {
                let value = NodeDeserializer { node, path };
                let location = value.locator();
                location.locate(seed.deserialize(value))
            }
            None => Err(de::Error::custom("a value was read before its key")),
        }
    }
}

struct Items<'a> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
    path: &'a Path,
}

impl<'de> de::SeqAccess<'de> for Items<'_> {
    type Error = DeError;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some((index, node)) => {
                let item = NodeDeserializer {
                    node,
                    path: self.path.index(index),
                };
                let location = item.locator();
                location.locate(seed.deserialize(item)).map(Some)
            }
            None => Ok(None),
        }
    }
}
