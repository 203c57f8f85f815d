//! What both front ends share while decoding: the warnings so far, the origins recorded, the
//! configuration file's directory (for relative paths).

use crate::error::Warning;
use crate::source_map::SourceMap;
use std::path::{Path as FsPath, PathBuf};

/// State shared by the whole decode: warnings, origins, the file's directory.
pub(crate) struct Ctx {
    pub warnings: Vec<Warning>,
    pub sources: SourceMap,
    pub base_dir: Option<PathBuf>,
}

impl Ctx {
    /// Resolves a file named in the configuration against the configuration's directory.
    pub fn resolve_path(&self, name: &str) -> PathBuf {
        let path = FsPath::new(name);
        match &self.base_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }
}
