//! Field paths such as `static_resources.listeners[0].filter_chains[0]`: how errors name a
//! value, and how the pwx front end finds a value's position again in the tree.

use std::fmt;

/// One step: a mapping key or a list index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

/// A path from the document root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Path(Vec<Segment>);

impl Path {
    /// The root.
    pub fn root() -> Path {
        Path(Vec::new())
    }

    /// This path, then `key`.
    pub fn key(&self, key: &str) -> Path {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_owned()));
        Path(segments)
    }

    /// This path, then list index `index`.
    pub fn index(&self, index: usize) -> Path {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        Path(segments)
    }

    /// Drops the last step; false at the root.
    pub fn pop(&mut self) -> bool {
        self.0.pop().is_some()
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::Key(key) if is_plain(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(key)?;
                }
                Segment::Key(key) => write!(f, "[{key:?}]")?,
            }
        }
        Ok(())
    }
}

/// Keys that read unambiguously after a dot (everything Envoy and pwx name a field with).
fn is_plain(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'@' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_like_field_accesses() {
        let path = Path::root()
            .key("static_resources")
            .key("listeners")
            .index(0)
            .key("typed_config")
            .key("@type");
        assert_eq!(
            path.to_string(),
            "static_resources.listeners[0].typed_config.@type"
        );
        assert_eq!(
            Path::root().key("environment").key("A.B").to_string(),
            "environment[\"A.B\"]"
        );
    }
}
