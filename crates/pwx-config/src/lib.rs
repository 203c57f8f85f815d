//! pwx-config: the configuration model of the pwx data plane, read from pwx's own YAML or from
//! the subset of Envoy's v3 bootstrap that proxy-wasm users write.
//!
//! # Model
//!
//! [`Config`] holds listeners (HTTP with virtual hosts, routes and an HTTP filter chain of
//! Wasm plugins ending in the router; or TCP with Wasm network filters and a `tcp_proxy`
//! cluster), clusters, bootstrap Wasm services, the admin address and the node identity. It is
//! plain data with Envoy's defaults applied (route timeout 15 s, stream idle timeout 5 min,
//! connect timeout 5 s, FAIL_RELOAD backoff 1 s); a timeout of `None` means "no timeout".
//! Module code is a [`CodeSource`]: a file (relative paths resolved against the config file's
//! directory, in both formats), inline bytes, a download with its sha256, or an OCI image.
//!
//! # Reading
//!
//! [`load`] reads a file and [`parse_str`] a string. A document with `static_resources` or
//! `bootstrap_extensions` at the top is an Envoy bootstrap; anything else is pwx YAML. Either
//! way the result is a [`Loaded`]: the config, the [`Warning`]s for fields accepted but not
//! acted on (the caller prints them), a [`SourceMap`] from model paths to file positions, and
//! the format. Every error is a [`ConfigError`] with `file:line:col`, the field path and, where
//! there is something to do, a hint.
//!
//! # How positions survive
//!
//! `serde_yaml` is unmaintained, and serde alone loses positions after parsing. pwx-config
//! builds its own tree from saphyr-parser's events (`yaml::tree`): every node keeps its
//! line and column, scalars keep their text and quoting. Then:
//!
//! - the **Envoy** front end (`envoy`) reads the tree with small decoders that open each
//!   object with its list of supported fields and its list of accepted-but-ignored fields (each
//!   with a reason, returned as a warning); any other field is an error naming its path;
//! - the **pwx** front end (`pwx`) deserializes the tree with serde into `deny_unknown_fields`
//!   types through a deserializer that stamps every error with the position and path of the
//!   node being decoded (`yaml::de`); schemars derives [`schema`] from the same types, so the
//!   JSON Schema cannot drift from what is accepted.
//!
//! Both front ends record origins in the [`SourceMap`]; [`validate`] (cluster references,
//! duplicate names and addresses, the router's place, endpoints a cluster type can use) runs on
//! the model and reports through it, for both formats alike.

mod context;
mod defaults;
mod duration;
mod envoy;
mod error;
mod model;
mod pwx;
mod source_map;
mod validate;
mod yaml;

pub use error::{ConfigError, Location, Origin, Warning};
pub use model::*;
pub use source_map::SourceMap;
pub use validate::validate;

use std::path::Path;
use std::sync::Arc;

/// Which front end read the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// pwx's own YAML (docs/config.md).
    Pwx,
    /// Envoy's v3 bootstrap (the subset in docs/config.md).
    Envoy,
}

/// A configuration that loaded and passed validation.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Fields accepted but not acted on, with the reason; print them.
    pub warnings: Vec<Warning>,
    /// Model path → position in the file (see [`SourceMap`]).
    pub sources: SourceMap,
    /// Which format the file was in.
    pub format: Format,
}

/// Reads, parses and validates the configuration file at `path`.
pub fn load(path: impl AsRef<Path>) -> Result<Loaded, ConfigError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::file(name.as_str(), format!("cannot read the configuration: {e}"))
    })?;
    parse_str(&text, &name)
}

/// Parses and validates configuration `text`, detecting the format. `file_name` names it in
/// messages, and its directory (if any) is where relative module and certificate paths are
/// resolved.
pub fn parse_str(text: &str, file_name: &str) -> Result<Loaded, ConfigError> {
    parse(text, file_name, None)
}

/// Like [`parse_str`], with the format given rather than detected.
pub fn parse_as(text: &str, file_name: &str, format: Format) -> Result<Loaded, ConfigError> {
    parse(text, file_name, Some(format))
}

fn parse(text: &str, file_name: &str, format: Option<Format>) -> Result<Loaded, ConfigError> {
    let file: Arc<str> = Arc::from(file_name);
    let root = yaml::tree::parse(text, &file)?;
    if root.entries().is_none() {
        return Err(ConfigError::at(
            root.origin_of(&yaml::Path::root()),
            format!("a configuration is a mapping; found {}", root.describe()),
        ));
    }
    if root.entries().is_some_and(<[_]>::is_empty) {
        return Err(ConfigError::file(file, "the configuration is empty")
            .with_hint("see docs/config.md for the format, or docs/examples/pwx.yaml"));
    }
    let base_dir = Path::new(file_name)
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(Path::to_path_buf);
    let mut ctx = context::Ctx {
        warnings: Vec::new(),
        sources: SourceMap::default(),
        base_dir,
    };
    let format = format.unwrap_or(if envoy::is_envoy(&root) {
        Format::Envoy
    } else {
        Format::Pwx
    });
    let config = match format {
        Format::Envoy => envoy::decode(&mut ctx, &root)?,
        Format::Pwx => pwx::decode(&mut ctx, &root)?,
    };
    validate(&config, &ctx.sources)?;
    Ok(Loaded {
        config,
        warnings: ctx.warnings,
        sources: ctx.sources,
        format,
    })
}

/// A YAML document as JSON under YAML 1.2's core schema: what [`schema`] describes, for
/// checking a pwx YAML file against the schema with any JSON Schema validator.
pub fn yaml_to_json(text: &str, file_name: &str) -> Result<serde_json::Value, ConfigError> {
    Ok(yaml::tree::parse(text, &Arc::from(file_name))?.to_json())
}

/// The JSON Schema of the pwx YAML format, pretty-printed. Derived from the types the pwx front
/// end deserializes into.
pub fn schema() -> String {
    let schema = schemars::schema_for!(pwx::file::PwxFile);
    // A `Schema` is a JSON value; printing one cannot fail.
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}
