//! Module sources for every command that names a module: a `.wasm` path, `https://…#sha256=…`,
//! or `oci://registry/repo:tag|@sha256:…`, fetched into the content-addressed cache.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use pwx_oci::{Auth, Fetcher, ImageOrigin, ModuleCache, ModuleSource, RegistryOptions};

/// Registry and cache flags shared by every command that fetches modules or talks to registries.
#[derive(clap::Args, Clone, Debug, Default)]
pub(crate) struct SourceArgs {
    /// Talk plain HTTP to the registry (for a registry on localhost without TLS).
    #[arg(long)]
    pub insecure: bool,
    /// Registry user name (the password comes from --password-stdin or PWX_REGISTRY_PASSWORD).
    #[arg(long, value_name = "USER")]
    pub username: Option<String>,
    /// Read the registry password from standard input.
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
    /// Docker `config.json` to read registry credentials from (default:
    /// $DOCKER_CONFIG/config.json, else ~/.docker/config.json).
    #[arg(long, value_name = "FILE", conflicts_with = "username")]
    pub docker_config: Option<PathBuf>,
    /// Module cache directory (default: $XDG_CACHE_HOME/pwx/modules or ~/.cache/pwx/modules;
    /// also PWX_CACHE_DIR).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// Environment variable holding the registry password for `--username`.
pub(crate) const PASSWORD_ENV: &str = "PWX_REGISTRY_PASSWORD";
/// Environment variable naming the module cache directory.
pub(crate) const CACHE_DIR_ENV: &str = "PWX_CACHE_DIR";

/// How [`resolve`] reaches registries and where it caches.
#[derive(Clone, Debug)]
pub(crate) struct SourceOptions {
    pub registry: RegistryOptions,
    pub cache: ModuleCache,
}

impl SourceArgs {
    /// Turns the flags into options; reads the password (stdin or environment) once.
    pub(crate) fn options(&self) -> anyhow::Result<SourceOptions> {
        let auth = match (&self.username, &self.docker_config) {
            (Some(user), _) => Auth::basic(user.clone(), self.password()?),
            (None, Some(file)) => Auth::DockerConfigFile(file.clone()),
            (None, None) => Auth::DockerConfig,
        };
        let cache = match self.cache_dir.clone().or_else(|| {
            std::env::var_os(CACHE_DIR_ENV)
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
        }) {
            Some(dir) => ModuleCache::new(dir),
            None => ModuleCache::open_default()?,
        };
        Ok(SourceOptions {
            registry: RegistryOptions {
                auth,
                insecure: self.insecure,
                ..RegistryOptions::default()
            },
            cache,
        })
    }

    fn password(&self) -> anyhow::Result<String> {
        if self.password_stdin {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("reading the registry password from standard input")?;
            return Ok(password.trim_end_matches(['\r', '\n']).to_string());
        }
        match std::env::var(PASSWORD_ENV) {
            Ok(p) => Ok(p),
            Err(_) => bail!(
                "--username needs a password: pass --password-stdin and pipe it in, or set {PASSWORD_ENV}"
            ),
        }
    }
}

/// A module ready to load: its bytes, where they are on disk, and where they came from.
#[derive(Clone, Debug)]
pub(crate) struct ResolvedModule {
    /// A file holding exactly these bytes: the file itself for file sources, else the cache entry.
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    /// Hex sha256 of `bytes`.
    pub sha256: String,
    /// ABI versions from the module's marker exports (or the image config).
    pub abi_versions: Vec<String>,
    /// The parsed source.
    pub source: ModuleSource,
    /// For `oci://` sources: the image it came from (digest, format, root ids).
    pub image: Option<ImageOrigin>,
    /// True when nothing was downloaded (file, or a cache hit).
    pub from_cache: bool,
}

impl ResolvedModule {
    /// A short name for logs and defaults: the file stem, or the last path segment of a URL or
    /// repository.
    pub(crate) fn name(&self) -> String {
        let raw = match &self.source {
            ModuleSource::File { path, .. } => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            ModuleSource::Url { url, .. } => url
                .path_segments()
                .and_then(|mut s| s.next_back())
                .map(|s| s.trim_end_matches(".wasm").to_string())
                .unwrap_or_default(),
            ModuleSource::Oci { reference, .. } => {
                let repo = reference.split(['@']).next().unwrap_or(reference);
                let last = repo.rsplit('/').next().unwrap_or(repo);
                last.split(':').next().unwrap_or(last).to_string()
            }
        };
        if raw.is_empty() {
            "filter".to_string()
        } else {
            raw
        }
    }
}

/// Resolves a module source string: reads a file, or fetches a URL or image into the cache
/// (verifying every checksum; a mismatch leaves nothing in the cache).
///
/// `sha256` is an optional expected module sha256 given separately (e.g. `--sha256`).
pub(crate) fn resolve(
    source: &str,
    sha256: Option<&str>,
    opts: &SourceOptions,
) -> anyhow::Result<ResolvedModule> {
    let parsed = match sha256 {
        Some(hex) => ModuleSource::parse_lenient(source)?.with_sha256(hex)?,
        None => ModuleSource::parse(source)?,
    };
    if let ModuleSource::File { path, sha256 } = &parsed {
        return resolve_file(path, sha256.as_deref(), parsed.clone());
    }
    let fetcher = Fetcher::new(opts.cache.clone(), opts.registry.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the download runtime")?;
    let fetched = runtime.block_on(fetcher.fetch(&parsed))?;
    Ok(ResolvedModule {
        path: fetched.path,
        bytes: fetched.bytes,
        sha256: fetched.sha256,
        abi_versions: fetched.abi_versions,
        source: parsed,
        image: fetched.image,
        from_cache: fetched.from_cache,
    })
}

/// A local file: read in place (not copied into the cache), checked if a sha256 was given.
fn resolve_file(
    path: &Path,
    expected: Option<&str>,
    source: ModuleSource,
) -> anyhow::Result<ResolvedModule> {
    if path.is_dir() {
        bail!(
            "{}: is a directory; give the built .wasm file (or a URL or oci:// image)",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "cannot read module {}; check the path (or give https://…#sha256=… or oci://…)",
            path.display()
        )
    })?;
    let origin = path.display().to_string();
    pwx_oci::fetch::verify(&origin, expected, &bytes)?;
    let info = pwx_oci::inspect(&bytes, &origin)?;
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    Ok(ResolvedModule {
        path,
        bytes,
        sha256: info.sha256,
        abi_versions: info.abi_versions,
        source,
        image: None,
        from_cache: true,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn options(dir: &Path) -> SourceOptions {
        SourceOptions {
            registry: RegistryOptions {
                auth: Auth::Anonymous,
                ..RegistryOptions::default()
            },
            cache: ModuleCache::new(dir.join("cache")),
        }
    }

    // The smallest module the inspector accepts: magic and version.
    const EMPTY_MODULE: &[u8] = b"\0asm\x01\0\0\0";

    #[test]
    fn files_are_read_in_place_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("my-filter.wasm");
        std::fs::write(&file, EMPTY_MODULE).unwrap();
        let opts = options(dir.path());
        let m = resolve(file.to_str().unwrap(), None, &opts).unwrap();
        assert_eq!(m.bytes, EMPTY_MODULE);
        assert_eq!(m.path, file);
        assert_eq!(m.name(), "my-filter");
        assert!(!opts.cache.dir().exists(), "files are not copied");

        let wrong = "00".repeat(32);
        let err = resolve(file.to_str().unwrap(), Some(&wrong), &opts).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(&wrong) && msg.contains(&m.sha256), "{msg}");

        let err = resolve(dir.path().to_str().unwrap(), None, &opts).unwrap_err();
        assert!(format!("{err:#}").contains("is a directory"), "{err:#}");
    }

    #[test]
    fn urls_without_sha256_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve("https://files.test/f.wasm", None, &options(dir.path())).unwrap_err();
        assert!(format!("{err:#}").contains("#sha256="), "{err:#}");
    }
}
