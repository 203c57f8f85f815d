//! Errors and warnings, each with the place in the file it is about: `file:line:col` and the
//! field path (`static_resources.listeners[0].name`).

use std::fmt;
use std::sync::Arc;

/// A position in a configuration file. Lines and columns count from 1, as editors show them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Location {
    /// The file as the caller named it (or `<string>`-like names for in-memory text).
    pub file: Arc<str>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// Where a model element came from: its position and its field path in the source file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Origin {
    /// Position of the value in the file.
    pub location: Location,
    /// Field path in the file's own vocabulary, e.g.
    /// `static_resources.clusters[1].load_assignment`.
    pub path: String,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.location)
        } else {
            write!(f, "{}: {}", self.location, self.path)
        }
    }
}

/// A configuration that cannot be used: what is wrong, where, and what to do.
///
/// Rendered as `file:line:col: path: message`, followed by `\n  hint: …` when there is a hint.
/// Errors that concern the whole file (it cannot be read) have no line and column.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Where: file position and field path. `None` when the file itself is the problem.
    pub origin: Option<Origin>,
    /// The file name when `origin` is `None`.
    pub file: Arc<str>,
    /// What is wrong.
    pub message: String,
    /// What to do about it, when there is something specific to say.
    pub hint: Option<String>,
}

impl ConfigError {
    /// An error about the value at `origin`.
    pub fn at(origin: Origin, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: origin.location.file.clone(),
            origin: Some(origin),
            message: message.into(),
            hint: None,
        }
    }

    /// An error about the whole file (unreadable, empty).
    pub fn file(file: impl Into<Arc<str>>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            origin: None,
            file: file.into(),
            message: message.into(),
            hint: None,
        }
    }

    /// Adds what to do about it.
    pub fn with_hint(mut self, hint: impl Into<String>) -> ConfigError {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Some(origin) => write!(f, "{origin}: {}", self.message)?,
            None => write!(f, "{}: {}", self.file, self.message)?,
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// A field pwx accepted but does not act on, and why. The CLI prints these; nothing is dropped
/// without one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The field.
    pub origin: Origin,
    /// Why it has no effect in pwx.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}
