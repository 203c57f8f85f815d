//! The crate's error type: each variant says what failed, where, and what to do about it.

use std::path::PathBuf;

/// Result alias used throughout `pwx-oci`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while building, moving or caching a module.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A local file or directory operation failed.
    #[error("cannot {action} `{}`: {source}; check that the path exists and is accessible", path.display())]
    Io {
        /// What was being done ("read", "write", "create directory", ...).
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A module source string could not be parsed.
    #[error(
        "invalid module source `{input}`: {reason}; use a path to a .wasm file, file://PATH, \
         https://HOST/PATH#sha256=HEX or oci://REGISTRY/REPOSITORY:TAG (or @sha256:DIGEST)"
    )]
    InvalidSource {
        /// The string as given.
        input: String,
        /// Why it was refused.
        reason: String,
    },

    /// An image reference could not be parsed.
    #[error(
        "invalid image reference `{input}`: {reason}; write REGISTRY[:PORT]/REPOSITORY:TAG or \
         REGISTRY[:PORT]/REPOSITORY@sha256:DIGEST"
    )]
    InvalidReference {
        /// The reference as given.
        input: String,
        /// Why it was refused.
        reason: String,
    },

    /// A sha256 given by the user is not 64 hex digits.
    #[error("invalid sha256 `{value}` for {origin}: expected 64 hexadecimal digits")]
    InvalidSha256 {
        /// The value as given.
        value: String,
        /// Which module it was meant for.
        origin: String,
    },

    /// Downloaded or read content does not have the sha256 the caller expected.
    #[error(
        "checksum mismatch for {origin}: expected sha256 {expected}, got sha256 {actual}; the \
         content changed or the checksum is wrong — verify the source before updating the checksum"
    )]
    ChecksumMismatch {
        /// Where the content came from (file path, URL or image reference).
        origin: String,
        /// The sha256 the caller asked for (hex).
        expected: String,
        /// The sha256 of what was actually received (hex).
        actual: String,
    },

    /// The bytes are not a WebAssembly core module.
    #[error(
        "{origin} is not a valid WebAssembly module: {reason}; build the filter for wasm32 (e.g. wasm32-wasip1) and pass the .wasm output"
    )]
    InvalidModule {
        /// Where the bytes came from.
        origin: String,
        /// What is wrong with them.
        reason: String,
    },

    /// An image was found but is none of the shapes Istio accepts.
    #[error(
        "unsupported image {reference}: {reason}; pwx reads OCI or Docker \"compat\" images (plugin.wasm in a tar+gzip layer) and Wasm artifacts (application/vnd.module.wasm.content.layer.v1+wasm)"
    )]
    UnsupportedImage {
        /// The image reference.
        reference: String,
        /// What was found instead.
        reason: String,
    },

    /// A registry operation failed.
    #[error("{operation} {reference} failed: {detail}; {hint}")]
    Registry {
        /// "push", "pull", "tag", "list tags of", ...
        operation: &'static str,
        /// The image or repository reference.
        reference: String,
        /// The error reported by the OCI client.
        #[source]
        source: Box<oci_client::errors::OciDistributionError>,
        /// The error and its causes, as one line.
        detail: String,
        /// What the user can do about it.
        hint: String,
    },

    /// An HTTPS download failed.
    #[error("download of {url} failed: {reason}; check the URL and your network connection")]
    Download {
        /// The URL.
        url: String,
        /// What went wrong (transport error or HTTP status).
        reason: String,
    },

    /// Docker's `config.json` could not be used.
    #[error("cannot use registry credentials from `{}`: {reason}", path.display())]
    DockerConfig {
        /// The config file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// Credentials for a registry live in a credential helper, which pwx does not run.
    #[error(
        "credentials for {registry} are kept by the docker credential helper `{helper}` (in `{}`), \
         which pwx does not run; pass --username/--password instead, or add an `auths` entry with \
         `auth` (base64 of user:password) for {registry}",
        path.display()
    )]
    CredentialHelperUnsupported {
        /// The registry host.
        registry: String,
        /// The helper's name (e.g. `desktop`, `pass`).
        helper: String,
        /// The config file that names it.
        path: PathBuf,
    },

    /// No cache directory could be chosen.
    #[error(
        "cannot choose a module cache directory: neither XDG_CACHE_HOME nor HOME is set; pass a cache directory explicitly"
    )]
    NoCacheDir,

    /// The local store index is damaged.
    #[error("the local image index `{}` is damaged: {reason}; delete it (the cached modules stay valid) and pull again", path.display())]
    StoreIndex {
        /// The index file.
        path: PathBuf,
        /// The parse error.
        reason: String,
    },

    /// Building the image failed (JSON or archive encoding).
    #[error("cannot build the image: {reason}")]
    Build {
        /// What failed.
        reason: String,
    },
}

impl Error {
    /// Wraps an I/O error with the action and path it concerns.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// An error and all its causes on one line, `outer: inner: innermost`.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string().trim_end().to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        let s = s.trim_end();
        if !out.contains(s) {
            out.push_str(": ");
            out.push_str(s);
        }
        cur = e.source();
    }
    out
}
