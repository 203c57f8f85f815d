//! On-disk cache of compiled modules, keyed by the module's sha256 and the engine's
//! compatibility hash, so a restart loads a filter in milliseconds instead of recompiling it.

use crate::error::LoadError;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;

/// A directory of serialized modules (`<sha256>-<engine hash>.cwasm`).
pub(crate) struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

impl CompileCache {
    pub(crate) fn new(dir: PathBuf, engine: &wasmtime::Engine) -> CompileCache {
        // The compatibility hash covers the wasmtime version, the target and every setting
        // that changes generated code.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        CompileCache {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// The cached module, if present and loadable. A corrupt or stale entry is removed.
    pub(crate) fn get(&self, engine: &wasmtime::Engine, sha256: &str) -> Option<wasmtime::Module> {
        let path = self.path(sha256);
        // Read into memory rather than mmap: a file truncated or rewritten by someone else
        // while the module runs would otherwise crash the process with SIGBUS.
        let bytes = std::fs::read(&path).ok()?;
        // SAFETY: the file was written by `put` below from `Module::serialize` of this same
        // engine configuration (the engine hash is in its name), in a directory pwx owns;
        // wasmtime additionally checks the header and engine compatibility on load.
        match unsafe { wasmtime::Module::deserialize(engine, &bytes) } {
            Ok(module) => Some(module),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "dropping unusable compile-cache entry");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores a compiled module; written to a temporary file and renamed so concurrent
    /// readers never see a partial file.
    pub(crate) fn put(&self, module: &wasmtime::Module, sha256: &str) -> Result<(), LoadError> {
        let cache_error = |message: String| LoadError::Cache {
            path: self.dir.display().to_string(),
            message,
        };
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| cache_error(format!("cannot create it: {e}")))?;
        let bytes = module
            .serialize()
            .map_err(|e| cache_error(format!("cannot serialize: {e}")))?;
        let path = self.path(sha256);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes)
            .map_err(|e| cache_error(format!("cannot write {}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| cache_error(format!("cannot rename into {}: {e}", path.display())))?;
        Ok(())
    }
}
