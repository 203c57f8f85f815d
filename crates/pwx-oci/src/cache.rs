//! Content-addressed module cache on disk: one file per module, named by its sha256.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::wasm::sha256_hex;

/// A directory of modules stored as `<sha256 hex>.wasm`, plus the store index (`index.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleCache {
    dir: PathBuf,
}

/// A module present in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedModule {
    /// Where the module file is.
    pub path: PathBuf,
    /// Hex sha256 of its bytes.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

impl ModuleCache {
    /// `$XDG_CACHE_HOME/pwx/modules` when `XDG_CACHE_HOME` is an absolute path, else
    /// `$HOME/.cache/pwx/modules`.
    pub fn default_dir() -> Result<PathBuf> {
        if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from)
            && xdg.is_absolute()
        {
            return Ok(xdg.join("pwx").join("modules"));
        }
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|home| {
                PathBuf::from(home)
                    .join(".cache")
                    .join("pwx")
                    .join("modules")
            })
            .ok_or(Error::NoCacheDir)
    }

    /// A cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ModuleCache { dir: dir.into() }
    }

    /// A cache in [`ModuleCache::default_dir`].
    pub fn open_default() -> Result<Self> {
        Ok(ModuleCache::new(ModuleCache::default_dir()?))
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the module with this sha256 is (or would be) stored.
    pub fn path_for(&self, sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{}.wasm", sha256.to_ascii_lowercase()))
    }

    /// The module with this sha256, if cached. A file whose content no longer matches its name is
    /// removed and reported as absent.
    pub fn get(&self, sha256: &str) -> Result<Option<(CachedModule, Vec<u8>)>> {
        let path = self.path_for(sha256);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", path, e)),
        };
        let actual = sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(sha256) {
            tracing::warn!(path = %path.display(), "removing a damaged cache entry");
            let _ = std::fs::remove_file(&path);
            return Ok(None);
        }
        Ok(Some((
            CachedModule {
                path,
                sha256: actual,
                size: bytes.len() as u64,
            },
            bytes,
        )))
    }

    /// True if a file for this sha256 exists (content not checked).
    pub fn contains(&self, sha256: &str) -> bool {
        self.path_for(sha256).is_file()
    }

    /// Stores `bytes` under their sha256 (atomically: write to a temporary file, then rename).
    pub fn put(&self, bytes: &[u8]) -> Result<CachedModule> {
        let sha256 = sha256_hex(bytes);
        let path = self.path_for(&sha256);
        let entry = CachedModule {
            path: path.clone(),
            sha256,
            size: bytes.len() as u64,
        };
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == entry.size) {
            return Ok(entry);
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io("create directory", &self.dir, e))?;
        write_atomically(&path, bytes)?;
        Ok(entry)
    }
}

/// Writes `bytes` to a temporary file beside `path`, then renames it into place.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        f.write_all(bytes)
            .map_err(|e| Error::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| Error::io("write", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io("rename into", path, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_then_get() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModuleCache::new(dir.path().join("modules"));
        let m = cache.put(b"\0asm\x01\0\0\0").unwrap();
        assert_eq!(m.path, cache.path_for(&m.sha256));
        assert_eq!(
            m.path.file_name().unwrap().to_str().unwrap(),
            format!("{}.wasm", m.sha256)
        );
        let (got, bytes) = cache.get(&m.sha256).unwrap().unwrap();
        assert_eq!(got, m);
        assert_eq!(bytes, b"\0asm\x01\0\0\0");
        // idempotent
        assert_eq!(cache.put(b"\0asm\x01\0\0\0").unwrap(), m);
        assert!(cache.get(&"0".repeat(64)).unwrap().is_none());
    }

    #[test]
    fn damaged_entries_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModuleCache::new(dir.path());
        let m = cache.put(b"abc").unwrap();
        std::fs::write(&m.path, b"abd").unwrap();
        assert!(cache.get(&m.sha256).unwrap().is_none());
        assert!(!m.path.exists());
    }
}
