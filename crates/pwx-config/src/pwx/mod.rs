//! The pwx YAML front end: serde over the spanned tree into the file types (`file`), whose
//! JSON Schema schemars derives, then conversion to the model (`convert`).

mod convert;
pub(crate) mod file;
mod values;

use crate::context::Ctx;
use crate::error::ConfigError;
use crate::model::Config;
use crate::yaml::{Node, Path, de};

/// Decodes a pwx YAML document.
pub(crate) fn decode(ctx: &mut Ctx, root: &Node) -> Result<Config, ConfigError> {
    let file: file::PwxFile = de::from_node(root, Path::root()).map_err(|e| {
        let error = e.into_config_error(root);
        if error.message.starts_with("unknown field") {
            error.with_hint(
                "see docs/config.md for the pwx YAML format (`pwx schema` prints its JSON Schema)",
            )
        } else {
            error
        }
    })?;
    convert::convert(ctx, root, file)
}
