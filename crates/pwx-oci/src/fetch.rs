//! Fetching a module from any [`ModuleSource`] into the cache, verifying checksums on the way.

use std::path::PathBuf;
use std::time::Duration;

use crate::cache::{CachedModule, ModuleCache};
use crate::error::{Error, Result};
use crate::http::{DEFAULT_TIMEOUT, download};
use crate::image::{ImageFormat, MAX_MODULE_SIZE};
use crate::registry::{Registry, RegistryOptions, parse_reference};
use crate::source::ModuleSource;
use crate::store::StoreEntry;
use crate::wasm;

/// Fetches modules into a [`ModuleCache`] and records them in its store index.
#[derive(Debug, Clone)]
pub struct Fetcher {
    cache: ModuleCache,
    registry: RegistryOptions,
    timeout: Duration,
}

/// A fetched module, present in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedModule {
    /// The module file in the cache.
    pub path: PathBuf,
    /// Hex sha256 of the module.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// The module bytes.
    pub bytes: Vec<u8>,
    /// ABI versions (marker exports, or the artifact config for images).
    pub abi_versions: Vec<String>,
    /// For OCI sources: the image it came from.
    pub image: Option<ImageOrigin>,
    /// True when the module was served from the cache without network traffic.
    pub from_cache: bool,
}

/// The image a module was pulled from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageOrigin {
    /// The reference as pulled.
    pub reference: String,
    /// The image (manifest) digest.
    pub image_digest: String,
    /// The image shape.
    pub format: ImageFormat,
    /// Root ids from the artifact config.
    pub root_ids: Vec<String>,
}

impl Fetcher {
    /// A fetcher that stores into `cache` and reaches registries with `registry`.
    pub fn new(cache: ModuleCache, registry: RegistryOptions) -> Self {
        Fetcher {
            cache,
            registry,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets the timeout of an HTTPS download (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The cache this fetcher fills.
    pub fn cache(&self) -> &ModuleCache {
        &self.cache
    }

    /// Fetches `source` into the cache and returns it.
    ///
    /// - files are read, checked against an expected sha256 if one was given, and cached;
    /// - URLs are served from the cache when their sha256 is already there, else downloaded and
    ///   refused unless the sha256 matches;
    /// - images pinned by digest are served from the cache when the index knows that digest;
    ///   otherwise they are pulled (tags always are).
    pub async fn fetch(&self, source: &ModuleSource) -> Result<FetchedModule> {
        match source {
            ModuleSource::File { path, sha256 } => {
                let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
                let origin = path.display().to_string();
                verify(&origin, sha256.as_deref(), &bytes)?;
                let info = wasm::inspect(&bytes, &origin)?;
                let abs = std::path::absolute(path).unwrap_or_else(|_| path.clone());
                let cached = self.cache.put(&bytes)?;
                let mut entry = StoreEntry::new(abs.display().to_string(), &info.sha256, info.size);
                entry.abi_versions = info.abi_versions.clone();
                self.record(entry);
                Ok(fetched(cached, bytes, info.abi_versions, None, false))
            }
            ModuleSource::Url { url, sha256 } => {
                let Some(expected) = sha256 else {
                    return Err(Error::InvalidSource {
                        input: url.to_string(),
                        reason:
                            "a download needs the module's sha256: append #sha256=<64 hex digits>"
                                .to_string(),
                    });
                };
                if let Some((cached, bytes)) = self.cache.get(expected)? {
                    let info = wasm::inspect(&bytes, url.as_str())?;
                    return Ok(fetched(cached, bytes, info.abi_versions, None, true));
                }
                let bytes = download(url, self.timeout, MAX_MODULE_SIZE).await?;
                verify(url.as_str(), Some(expected), &bytes)?;
                let info = wasm::inspect(&bytes, url.as_str())?;
                let cached = self.cache.put(&bytes)?;
                let mut entry = StoreEntry::new(url.to_string(), &info.sha256, info.size);
                entry.abi_versions = info.abi_versions.clone();
                self.record(entry);
                Ok(fetched(cached, bytes, info.abi_versions, None, false))
            }
            ModuleSource::Oci { reference, sha256 } => {
                if let Some(hit) = self.cached_image(reference, sha256.as_deref())? {
                    return Ok(hit);
                }
                let registry = Registry::new(self.registry.clone())?;
                let pulled = registry.pull(reference).await?;
                verify(&pulled.reference, sha256.as_deref(), &pulled.module)?;
                let cached = self.cache.put(&pulled.module)?;
                let parsed = parse_reference(&pulled.reference)?;
                let mut entry =
                    StoreEntry::new(pulled.reference.clone(), &pulled.module_sha256, cached.size);
                entry.repository = Some(format!("{}/{}", parsed.registry(), parsed.repository()));
                entry.tag = parsed
                    .digest()
                    .is_none()
                    .then(|| parsed.tag().map(str::to_string))
                    .flatten();
                entry.image_digest = Some(pulled.image_digest.clone());
                entry.format = Some(pulled.format);
                entry.abi_versions = pulled.abi_versions.clone();
                entry.root_ids = pulled.root_ids.clone();
                self.record(entry);
                let origin = ImageOrigin {
                    reference: pulled.reference,
                    image_digest: pulled.image_digest,
                    format: pulled.format,
                    root_ids: pulled.root_ids,
                };
                Ok(fetched(
                    cached,
                    pulled.module,
                    pulled.abi_versions,
                    Some(origin),
                    false,
                ))
            }
        }
    }

    /// A cache hit for an image pinned by digest.
    fn cached_image(
        &self,
        reference: &str,
        expected: Option<&str>,
    ) -> Result<Option<FetchedModule>> {
        let parsed = parse_reference(reference)?;
        let Some(digest) = parsed.digest() else {
            return Ok(None);
        };
        let repository = format!("{}/{}", parsed.registry(), parsed.repository());
        let Ok(entries) = self.cache.list() else {
            return Ok(None);
        };
        let Some(entry) = entries.into_iter().find(|e| {
            e.image_digest.as_deref() == Some(digest)
                && e.repository.as_deref() == Some(&repository)
        }) else {
            return Ok(None);
        };
        let Some((cached, bytes)) = self.cache.get(&entry.sha256)? else {
            return Ok(None);
        };
        verify(reference, expected, &bytes)?;
        let origin = ImageOrigin {
            reference: reference.to_string(),
            image_digest: digest.to_string(),
            format: entry.format.unwrap_or(ImageFormat::Compat),
            root_ids: entry.root_ids,
        };
        Ok(Some(fetched(
            cached,
            bytes,
            entry.abi_versions,
            Some(origin),
            true,
        )))
    }

    fn record(&self, entry: StoreEntry) {
        if let Err(e) = self.cache.record(entry) {
            tracing::warn!("the module is cached but the local image index was not updated: {e}");
        }
    }
}

fn fetched(
    cached: CachedModule,
    bytes: Vec<u8>,
    abi_versions: Vec<String>,
    image: Option<ImageOrigin>,
    from_cache: bool,
) -> FetchedModule {
    FetchedModule {
        path: cached.path,
        sha256: cached.sha256,
        size: cached.size,
        bytes,
        abi_versions,
        image,
        from_cache,
    }
}

/// Refuses `bytes` if `expected` is given and differs from their sha256.
pub fn verify(origin: &str, expected: Option<&str>, bytes: &[u8]) -> Result<()> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let actual = wasm::sha256_hex(bytes);
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(Error::ChecksumMismatch {
            origin: origin.to_string(),
            expected: expected.to_ascii_lowercase(),
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatch_message_shows_both_values() {
        let expected = "00".repeat(32);
        let err = verify("https://files.test/f.wasm", Some(&expected), b"abc").unwrap_err();
        let msg = err.to_string();
        let actual = wasm::sha256_hex(b"abc");
        assert!(msg.contains(&expected), "{msg}");
        assert!(msg.contains(&actual), "{msg}");
        assert!(msg.contains("https://files.test/f.wasm"), "{msg}");
        assert!(verify("x", Some(&actual.to_uppercase()), b"abc").is_ok());
        assert!(verify("x", None, b"abc").is_ok());
    }

    #[tokio::test]
    async fn file_sources_are_cached_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = wat::parse_str(r#"(module (func (export "proxy_abi_version_0_2_1")))"#).unwrap();
        let file = dir.path().join("f.wasm");
        std::fs::write(&file, &wasm).unwrap();
        let cache = ModuleCache::new(dir.path().join("cache"));
        let fetcher = Fetcher::new(cache.clone(), RegistryOptions::default());
        let got = fetcher
            .fetch(&ModuleSource::parse(file.to_str().unwrap()).unwrap())
            .await
            .unwrap();
        assert_eq!(got.bytes, wasm);
        assert_eq!(got.abi_versions, vec!["v0.2.1"]);
        assert_eq!(std::fs::read(&got.path).unwrap(), wasm);
        let list = cache.list().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].sha256, got.sha256);

        let wrong = ModuleSource::parse(file.to_str().unwrap())
            .unwrap()
            .with_sha256(&"11".repeat(32))
            .unwrap();
        let err = fetcher.fetch(&wrong).await.unwrap_err();
        assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err}");

        let missing = ModuleSource::parse("/nonexistent/x.wasm").unwrap();
        let msg = fetcher.fetch(&missing).await.unwrap_err().to_string();
        assert!(msg.contains("/nonexistent/x.wasm"), "{msg}");
    }
}
