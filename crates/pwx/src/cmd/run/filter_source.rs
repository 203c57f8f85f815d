//! Filters given to `pwx run` as a filter project directory: built first, with `pwx build`'s
//! machinery, and then run from the module it wrote (`DIR/build/NAME.wasm`).

use crate::cmd::build::build_project;
use crate::project::Project;
use anyhow::Context as _;
use std::path::Path;

/// The module source to load for `source`: a directory is built and replaced by the path of
/// its module; anything else (a .wasm file, `https://…`, `oci://…`) is returned as it is.
pub(crate) fn resolve(source: &str) -> anyhow::Result<String> {
    let dir = Path::new(source);
    if !dir.is_dir() {
        return Ok(source.to_string());
    }
    let project = Project::open(dir).with_context(|| {
        format!("filter {source} is a directory, so pwx run builds it as a filter project")
    })?;
    eprintln!(
        "pwx: building {} ({}) in {}",
        project.name,
        project.language.label(),
        dir.display()
    );
    let module = build_project(&project, false, false)
        .with_context(|| format!("building the filter project {source} (as `pwx build` does)"))?;
    eprintln!("pwx: built {}", module.display());
    Ok(module.display().to_string())
}
