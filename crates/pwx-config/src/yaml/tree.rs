//! A YAML document as a tree whose every node knows its position, built from saphyr-parser's
//! events. Scalars keep their text and style; what a scalar means (string, number, bool, null)
//! is decided by whoever reads it, so `port_value: "8080"` and `port_value: 8080` can both be
//! accepted where Envoy accepts both, and a quoted `"true"` stays a string.

use crate::error::{ConfigError, Location, Origin};
use crate::yaml::path::Path;
use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use std::collections::HashMap;
use std::sync::Arc;

/// One node with its position.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub kind: Kind,
    pub location: Location,
}

/// What a node holds.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Scalar(Scalar),
    Sequence(Vec<Node>),
    /// Entries in file order; keys are unique (checked when building).
    Mapping(Vec<(Node, Node)>),
}

/// A scalar as written.
#[derive(Clone, Debug)]
pub(crate) struct Scalar {
    pub text: String,
    /// Plain (unquoted) scalars are the only ones that can mean null, a bool or a number.
    pub plain: bool,
    /// An explicit tag such as `!!str`, written `handle+suffix` (`!!str` → `tag:yaml.org,2002:str`).
    pub tag: Option<String>,
}

/// A scalar's meaning under YAML 1.2's core schema.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Resolved<'a> {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(&'a str),
}

impl Scalar {
    /// Resolves the scalar with YAML 1.2's core schema (plain scalars only; quoted ones and
    /// `!!str` are strings).
    pub fn resolve(&self) -> Resolved<'_> {
        let tag = self.tag.as_deref().unwrap_or("");
        if !self.plain || tag.ends_with(":str") {
            return Resolved::Str(&self.text);
        }
        let t = self.text.as_str();
        match t {
            "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
            "true" | "True" | "TRUE" => return Resolved::Bool(true),
            "false" | "False" | "FALSE" => return Resolved::Bool(false),
            ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
                return Resolved::Float(f64::INFINITY);
            }
            "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
            ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
            _ => {}
        }
        if let Some(int) = parse_int(t) {
            return Resolved::Int(int);
        }
        if looks_like_float(t)
            && let Ok(float) = t.parse::<f64>()
        {
            return Resolved::Float(float);
        }
        Resolved::Str(&self.text)
    }
}

fn parse_int(t: &str) -> Option<i128> {
    let (negative, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let value = if let Some(hex) = digits.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i128::from_str_radix(oct, 8).ok()?
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse::<i128>().ok()?
    } else {
        return None;
    };
    Some(if negative { -value } else { value })
}

fn looks_like_float(t: &str) -> bool {
    let body = t.trim_start_matches(['-', '+']);
    body.bytes().any(|b| b.is_ascii_digit())
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
}

impl Node {
    /// The entries of a mapping, `None` for anything else.
    pub fn entries(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            Kind::Mapping(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value under `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries()?
            .iter()
            .find(|(k, _)| k.key_text() == Some(key))
            .map(|(_, v)| v)
    }

    /// The text of a scalar used as a mapping key.
    pub fn key_text(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(s) => Some(&s.text),
            _ => None,
        }
    }

    /// True for a null scalar (`~`, `null`, nothing).
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar(s) if s.resolve() == Resolved::Null)
    }

    /// A short name of the node's type, for "expected X, found Y" messages.
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            Kind::Mapping(_) => "a mapping",
            Kind::Sequence(_) => "a list",
            Kind::Scalar(s) => match s.resolve() {
                Resolved::Null => "null",
                Resolved::Bool(_) => "a boolean",
                Resolved::Int(_) => "an integer",
                Resolved::Float(_) => "a number",
                Resolved::Str(_) => "a string",
            },
        }
    }

    /// The node at `path` below this one (keys and list indices), if there is one.
    pub fn find(&self, path: &Path) -> Option<&Node> {
        let mut node = self;
        for segment in path.segments() {
            node = match (segment, &node.kind) {
                (crate::yaml::path::Segment::Key(key), Kind::Mapping(_)) => node.get(key)?,
                (crate::yaml::path::Segment::Index(i), Kind::Sequence(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The origin of the node at `path`, or of its nearest ancestor that exists (a missing
    /// field is reported at the mapping that should have held it).
    pub fn origin_of(&self, path: &Path) -> Origin {
        let mut prefix = path.clone();
        loop {
            if let Some(node) = self.find(&prefix) {
                return Origin {
                    location: node.location.clone(),
                    path: path.to_string(),
                };
            }
            if !prefix.pop() {
                return Origin {
                    location: self.location.clone(),
                    path: path.to_string(),
                };
            }
        }
    }

    /// The value as JSON, under the core schema (for configuration values and schema checks).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.kind {
            Kind::Mapping(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.key_text().unwrap_or_default().to_owned(), v.to_json()))
                    .collect(),
            ),
            Kind::Sequence(items) => {
                serde_json::Value::Array(items.iter().map(Node::to_json).collect())
            }
            Kind::Scalar(s) => match s.resolve() {
                Resolved::Null => serde_json::Value::Null,
                Resolved::Bool(b) => serde_json::Value::Bool(b),
                Resolved::Int(i) => i64::try_from(i)
                    .map(serde_json::Value::from)
                    .or_else(|_| u64::try_from(i).map(serde_json::Value::from))
                    .unwrap_or_else(|_| serde_json::Value::from(i as f64)),
                Resolved::Float(f) => serde_json::Number::from_f64(f)
                    .map(serde_json::Value::Number)
                    .unwrap_or(serde_json::Value::Null),
                Resolved::Str(text) => serde_json::Value::String(text.to_owned()),
            },
        }
    }
}

/// Parses `text` (one YAML document) into a tree. `file` names it in positions.
pub(crate) fn parse(text: &str, file: &Arc<str>) -> Result<Node, ConfigError> {
    let mut builder = Builder {
        file: file.clone(),
        anchors: HashMap::new(),
        stack: Vec::new(),
        documents: 0,
        root: None,
    };
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| {
            let location = builder.location_at(e.marker().line(), e.marker().col());
            ConfigError::at(
                Origin {
                    location,
                    path: String::new(),
                },
                format!("invalid YAML: {}", e.info()),
            )
        })?;
        builder.event(event, span)?;
    }
    Ok(builder.root.unwrap_or(Node {
        kind: Kind::Mapping(Vec::new()),
        location: Location {
            file: file.clone(),
            line: 1,
            column: 1,
        },
    }))
}

/// A collection being filled: its node and, for mappings, a key waiting for its value.
struct Open {
    node: Node,
    anchor: usize,
    pending_key: Option<Node>,
}

struct Builder {
    file: Arc<str>,
    anchors: HashMap<usize, Node>,
    stack: Vec<Open>,
    documents: usize,
    root: Option<Node>,
}

impl Builder {
    fn location_at(&self, line: usize, col: usize) -> Location {
        Location {
            file: self.file.clone(),
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(col + 1).unwrap_or(u32::MAX),
        }
    }

    fn location(&self, span: &Span) -> Location {
        self.location_at(span.start.line(), span.start.col())
    }

    fn error(&self, span: &Span, message: impl Into<String>) -> ConfigError {
        ConfigError::at(
            Origin {
                location: self.location(span),
                path: String::new(),
            },
            message,
        )
    }

    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), ConfigError> {
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(self
                        .error(&span, "the file holds more than one YAML document")
                        .with_hint("a configuration is one document: remove the extra `---`"));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                let node = Node {
                    kind: Kind::Scalar(Scalar {
                        text: text.into_owned(),
                        plain: matches!(style, ScalarStyle::Plain),
                        tag: tag.map(|t| format!("{}{}", t.handle, t.suffix)),
                    }),
                    location: self.location(&span),
                };
                self.remember(anchor, &node);
                self.add(node, &span)?;
            }
            Event::Alias(anchor) => {
                let Some(node) = self.anchors.get(&anchor).cloned() else {
                    return Err(self.error(&span, "alias to an unknown anchor"));
                };
                self.add(node, &span)?;
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Open {
                node: Node {
                    kind: Kind::Sequence(Vec::new()),
                    location: self.location(&span),
                },
                anchor,
                pending_key: None,
            }),
            Event::MappingStart(anchor, _) => self.stack.push(Open {
                node: Node {
                    kind: Kind::Mapping(Vec::new()),
                    location: self.location(&span),
                },
                anchor,
                pending_key: None,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(open) = self.stack.pop() {
                    self.remember(open.anchor, &open.node);
                    self.add(open.node, &span)?;
                }
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
        Ok(())
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
    }

    /// Puts a finished node into the collection being filled (or makes it the root).
    fn add(&mut self, node: Node, span: &Span) -> Result<(), ConfigError> {
        let Some(open) = self.stack.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        match &mut open.node.kind {
            Kind::Sequence(items) => items.push(node),
            Kind::Mapping(entries) => match open.pending_key.take() {
                None => {
                    let Some(key) = node.key_text().map(str::to_owned) else {
                        return Err(self.error(span, "a mapping key must be a plain value"));
                    };
                    if entries.iter().any(|(k, _)| k.key_text() == Some(&key)) {
                        let location = node.location.clone();
                        return Err(ConfigError::at(
                            Origin {
                                location,
                                path: String::new(),
                            },
                            format!("duplicate key `{key}`"),
                        ));
                    }
                    open.pending_key = Some(node);
                }
                Some(key) => entries.push((key, node)),
            },
            Kind::Scalar(_) => {}
        }
        Ok(())
    }
}
