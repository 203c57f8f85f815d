//! The local store index (`index.json` in the cache dir): what `pwx images` lists.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::cache::{ModuleCache, write_atomically};
use crate::error::{Error, Result};
use crate::image::ImageFormat;

/// File name of the index inside the cache directory.
pub const INDEX_FILE: &str = "index.json";
const INDEX_VERSION: u32 = 1;

/// One module known to the local store, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreEntry {
    /// Where it came from: a file path, an https URL or an image reference.
    pub source: String,
    /// `registry/repository` for images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The tag, for images pulled or pushed by tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The image (manifest) digest, for images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    /// The image shape, for images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ImageFormat>,
    /// Hex sha256 of the module (its file name in the cache).
    pub sha256: String,
    /// Module size in bytes.
    pub size: u64,
    /// ABI versions, e.g. `v0.2.1`.
    #[serde(default)]
    pub abi_versions: Vec<String>,
    /// Root ids from a Wasm artifact's config.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub root_ids: Vec<String>,
    /// When it was recorded, seconds since the Unix epoch.
    #[serde(default)]
    pub recorded_at: u64,
}

impl StoreEntry {
    /// An entry for a module from `source`, stamped now; image fields empty.
    pub fn new(source: impl Into<String>, sha256: impl Into<String>, size: u64) -> Self {
        StoreEntry {
            source: source.into(),
            repository: None,
            tag: None,
            image_digest: None,
            format: None,
            sha256: sha256.into(),
            size,
            abi_versions: Vec::new(),
            root_ids: Vec::new(),
            recorded_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    fn same_origin(&self, other: &StoreEntry) -> bool {
        self.source == other.source && self.sha256 == other.sha256
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Index {
    version: u32,
    entries: Vec<StoreEntry>,
}

impl ModuleCache {
    /// Path of the store index.
    pub fn index_path(&self) -> PathBuf {
        self.dir().join(INDEX_FILE)
    }

    fn read_index(&self) -> Result<Vec<StoreEntry>> {
        let path = self.index_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("read", path, e)),
        };
        let index: Index = serde_json::from_str(&text).map_err(|e| Error::StoreIndex {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if index.version != INDEX_VERSION {
            return Err(Error::StoreIndex {
                path,
                reason: format!(
                    "version {} is not the supported version {INDEX_VERSION}",
                    index.version
                ),
            });
        }
        Ok(index.entries)
    }

    /// The modules in the store whose files are present, sorted by repository, tag and source.
    pub fn list(&self) -> Result<Vec<StoreEntry>> {
        let mut entries: Vec<StoreEntry> = self
            .read_index()?
            .into_iter()
            .filter(|e| self.contains(&e.sha256))
            .collect();
        entries.sort_by(|a, b| {
            (&a.repository, &a.tag, &a.source, a.recorded_at).cmp(&(
                &b.repository,
                &b.tag,
                &b.source,
                b.recorded_at,
            ))
        });
        Ok(entries)
    }

    /// Adds `entry`, replacing any entry with the same source and sha256. A tag moves: an older
    /// entry for the same repository and tag is dropped.
    ///
    /// The index is rewritten atomically; concurrent writers may lose each other's entry (the
    /// module files themselves are never lost).
    pub fn record(&self, entry: StoreEntry) -> Result<()> {
        let mut entries = self.read_index()?;
        let superseded = |e: &StoreEntry| {
            let same_tag =
                entry.tag.is_some() && e.repository == entry.repository && e.tag == entry.tag;
            e.same_origin(&entry) || same_tag
        };
        entries.retain(|e| !superseded(e));
        entries.push(entry);
        let index = Index {
            version: INDEX_VERSION,
            entries,
        };
        let json = serde_json::to_vec_pretty(&index).map_err(|e| Error::StoreIndex {
            path: self.index_path(),
            reason: e.to_string(),
        })?;
        std::fs::create_dir_all(self.dir())
            .map_err(|e| Error::io("create directory", self.dir(), e))?;
        write_atomically(&self.index_path(), &json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModuleCache::new(dir.path());
        assert!(cache.list().unwrap().is_empty());
        let a = cache.put(b"module a").unwrap();
        let b = cache.put(b"module b").unwrap();
        let mut e = StoreEntry::new("r.test/x:v1", &a.sha256, a.size);
        e.repository = Some("r.test/x".into());
        e.tag = Some("v1".into());
        e.abi_versions = vec!["v0.2.1".into()];
        cache.record(e.clone()).unwrap();
        cache
            .record(StoreEntry::new("/tmp/b.wasm", &b.sha256, b.size))
            .unwrap();
        // the tag moves to b
        let mut moved = StoreEntry::new("r.test/x:v1", &b.sha256, b.size);
        moved.repository = Some("r.test/x".into());
        moved.tag = Some("v1".into());
        cache.record(moved.clone()).unwrap();
        let list = cache.list().unwrap();
        assert_eq!(list.len(), 2, "{list:?}");
        assert!(list.contains(&moved));
        assert!(!list.contains(&e));
        // entries whose file is gone are not listed
        std::fs::remove_file(&b.path).unwrap();
        assert!(cache.list().unwrap().is_empty());
    }

    #[test]
    fn damaged_index_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModuleCache::new(dir.path());
        std::fs::write(cache.index_path(), "{oops").unwrap();
        let msg = cache.list().unwrap_err().to_string();
        assert!(
            msg.contains("index.json") && msg.contains("delete it"),
            "{msg}"
        );
    }
}
