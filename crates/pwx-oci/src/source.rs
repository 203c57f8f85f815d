//! Module source syntax: a .wasm path, `file://`, `https://…#sha256=…` or `oci://registry/repo:tag`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use reqwest::Url;

use crate::error::{Error, Result};
use crate::http::is_loopback_host;
use crate::registry::parse_reference;

/// Where a module comes from.
///
/// Syntax accepted by [`ModuleSource::parse`]:
///
/// | form | meaning |
/// |---|---|
/// | `path/to/filter.wasm` | a local file (any string without a `scheme://`) |
/// | `file:///abs/path/filter.wasm` | a local file, absolute |
/// | `https://host/filter.wasm#sha256=<64 hex>` | a download; the sha256 is required |
/// | `http://127.0.0.1:8080/f.wasm#sha256=<hex>` | plain HTTP, accepted for loopback hosts only |
/// | `oci://registry[:port]/repo:tag` | an image, by tag |
/// | `oci://registry[:port]/repo@sha256:<hex>` | an image, by digest |
///
/// The sha256 of a download may instead be given separately with
/// [`ModuleSource::with_sha256`] (e.g. from a `--sha256` flag); any source can carry one, and
/// the fetched module is refused if it does not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleSource {
    /// A local file.
    File {
        /// The path as given.
        path: PathBuf,
        /// Expected module sha256 (hex), if given.
        sha256: Option<String>,
    },
    /// An HTTPS (or loopback HTTP) download.
    Url {
        /// The URL, without the `#sha256=` fragment.
        url: Url,
        /// Expected module sha256 (hex). `None` only until [`ModuleSource::with_sha256`] is
        /// applied; fetching refuses a URL without one.
        sha256: Option<String>,
    },
    /// An OCI image.
    Oci {
        /// `registry/repository:tag` or `registry/repository@sha256:…`.
        reference: String,
        /// Expected module sha256 (hex), if given.
        sha256: Option<String>,
    },
}

impl ModuleSource {
    /// Parses a module source. A URL must carry its sha256 as `#sha256=<hex>` unless one is
    /// given afterwards with [`ModuleSource::with_sha256`]; [`ModuleSource::parse`] alone refuses
    /// it. Use [`ModuleSource::parse_lenient`] to allow that.
    pub fn parse(input: &str) -> Result<ModuleSource> {
        let source = ModuleSource::parse_lenient(input)?;
        if let ModuleSource::Url { sha256: None, .. } = source {
            return Err(invalid(
                input,
                "a download needs the module's sha256: append #sha256=<64 hex digits>",
            ));
        }
        Ok(source)
    }

    /// Like [`ModuleSource::parse`], but accepts a URL without `#sha256=` (for callers that take
    /// the checksum as a separate argument and then call [`ModuleSource::with_sha256`]).
    pub fn parse_lenient(input: &str) -> Result<ModuleSource> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(invalid(input, "it is empty"));
        }
        let Some((scheme, rest)) = trimmed.split_once("://") else {
            return Ok(ModuleSource::File {
                path: PathBuf::from(trimmed),
                sha256: None,
            });
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                let url = Url::parse(trimmed).map_err(|e| invalid(input, &e.to_string()))?;
                if !rest.starts_with('/') && url.host_str().is_some_and(|h| h != "localhost") {
                    return Err(invalid(
                        input,
                        "file:// needs an absolute path (file:///path/to/filter.wasm); write a \
                         relative path without the scheme",
                    ));
                }
                let path = url
                    .to_file_path()
                    .map_err(|()| invalid(input, "it does not name an absolute local path"))?;
                Ok(ModuleSource::File { path, sha256: None })
            }
            "https" | "http" => {
                let mut url = Url::parse(trimmed).map_err(|e| invalid(input, &e.to_string()))?;
                let host = url.host_str().unwrap_or_default().to_string();
                if host.is_empty() {
                    return Err(invalid(input, "the URL has no host"));
                }
                if url.scheme() == "http" && !is_loopback_host(&host) {
                    return Err(invalid(
                        input,
                        "plain http:// is accepted only for localhost/127.0.0.1; use https://",
                    ));
                }
                let sha256 = match url.fragment() {
                    None => None,
                    Some(fragment) => {
                        let Some(hex) = fragment.strip_prefix("sha256=") else {
                            return Err(invalid(
                                input,
                                "the URL fragment must be #sha256=<64 hex digits>",
                            ));
                        };
                        Some(check_sha256(hex, input)?)
                    }
                };
                url.set_fragment(None);
                Ok(ModuleSource::Url { url, sha256 })
            }
            "oci" => {
                let reference = parse_reference(rest)?;
                Ok(ModuleSource::Oci {
                    reference: reference.whole(),
                    sha256: None,
                })
            }
            other => Err(invalid(input, &format!("unknown scheme `{other}://`"))),
        }
    }

    /// Sets the expected module sha256 (hex, optionally prefixed `sha256:`). Refused if the
    /// source already names a different one.
    pub fn with_sha256(mut self, sha256: &str) -> Result<ModuleSource> {
        let origin = self.to_string();
        let hex = check_sha256(sha256.strip_prefix("sha256:").unwrap_or(sha256), &origin)?;
        let slot = match &mut self {
            ModuleSource::File { sha256, .. }
            | ModuleSource::Url { sha256, .. }
            | ModuleSource::Oci { sha256, .. } => sha256,
        };
        if let Some(existing) = slot.as_deref()
            && existing != hex
        {
            return Err(invalid(
                &origin,
                &format!("it names sha256 {existing} and {hex} was also given; give one"),
            ));
        }
        *slot = Some(hex);
        Ok(self)
    }

    /// The expected module sha256 (hex), if any.
    pub fn expected_sha256(&self) -> Option<&str> {
        match self {
            ModuleSource::File { sha256, .. }
            | ModuleSource::Url { sha256, .. }
            | ModuleSource::Oci { sha256, .. } => sha256.as_deref(),
        }
    }
}

impl FromStr for ModuleSource {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ModuleSource::parse(s)
    }
}

impl fmt::Display for ModuleSource {
    /// The source in the syntax [`ModuleSource::parse`] reads (URLs with their `#sha256=`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModuleSource::File { path, .. } => write!(f, "{}", path.display()),
            ModuleSource::Url { url, sha256 } => match sha256 {
                Some(h) => write!(f, "{url}#sha256={h}"),
                None => write!(f, "{url}"),
            },
            ModuleSource::Oci { reference, .. } => write!(f, "oci://{reference}"),
        }
    }
}

fn invalid(input: &str, reason: &str) -> Error {
    Error::InvalidSource {
        input: input.to_string(),
        reason: reason.to_string(),
    }
}

fn check_sha256(hex: &str, origin: &str) -> Result<String> {
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex.to_ascii_lowercase())
    } else {
        Err(Error::InvalidSha256 {
            value: hex.to_string(),
            origin: origin.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h() -> String {
        "ab".repeat(32)
    }

    #[test]
    fn paths() {
        assert_eq!(
            ModuleSource::parse("target/filter.wasm").unwrap(),
            ModuleSource::File {
                path: "target/filter.wasm".into(),
                sha256: None
            }
        );
        assert_eq!(
            ModuleSource::parse("file:///opt/f%20x.wasm").unwrap(),
            ModuleSource::File {
                path: "/opt/f x.wasm".into(),
                sha256: None
            }
        );
        assert!(ModuleSource::parse("file://relative/x.wasm").is_err());
        assert!(ModuleSource::parse("").is_err());
    }

    #[test]
    fn urls_need_sha256() {
        let s =
            ModuleSource::parse(&format!("https://files.test/a/f.wasm#sha256={}", h())).unwrap();
        match &s {
            ModuleSource::Url { url, sha256 } => {
                assert_eq!(url.as_str(), "https://files.test/a/f.wasm");
                assert_eq!(sha256.as_deref(), Some(h().as_str()));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            s.to_string(),
            format!("https://files.test/a/f.wasm#sha256={}", h())
        );

        let err = ModuleSource::parse("https://files.test/f.wasm").unwrap_err();
        assert!(err.to_string().contains("#sha256="), "{err}");
        // given separately
        let s = ModuleSource::parse_lenient("https://files.test/f.wasm")
            .unwrap()
            .with_sha256(&format!("sha256:{}", h().to_uppercase()))
            .unwrap();
        assert_eq!(s.expected_sha256(), Some(h().as_str()));
        // conflicting
        let s = ModuleSource::parse(&format!("https://files.test/f.wasm#sha256={}", h())).unwrap();
        assert!(s.with_sha256(&"cd".repeat(32)).is_err());
        // malformed
        assert!(matches!(
            ModuleSource::parse("https://files.test/f.wasm#sha256=abc"),
            Err(Error::InvalidSha256 { .. })
        ));
        assert!(ModuleSource::parse("https://files.test/f.wasm#md5=abc").is_err());
    }

    #[test]
    fn plain_http_only_for_loopback() {
        assert!(
            ModuleSource::parse(&format!("http://127.0.0.1:8080/f.wasm#sha256={}", h())).is_ok()
        );
        assert!(ModuleSource::parse(&format!("http://localhost/f.wasm#sha256={}", h())).is_ok());
        let err =
            ModuleSource::parse(&format!("http://files.test/f.wasm#sha256={}", h())).unwrap_err();
        assert!(err.to_string().contains("use https://"), "{err}");
    }

    #[test]
    fn oci_references() {
        let s = ModuleSource::parse("oci://127.0.0.1:5000/filters/auth:v1").unwrap();
        assert_eq!(
            s,
            ModuleSource::Oci {
                reference: "127.0.0.1:5000/filters/auth:v1".into(),
                sha256: None
            }
        );
        let d = format!("sha256:{}", h());
        let s = ModuleSource::parse(&format!("oci://registry.test/f@{d}")).unwrap();
        assert_eq!(s.to_string(), format!("oci://registry.test/f@{d}"));
        assert!(ModuleSource::parse("oci://filter:v1").is_err());
        assert!(ModuleSource::parse("ftp://x/y").is_err());
    }
}
