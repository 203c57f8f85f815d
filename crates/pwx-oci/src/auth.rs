//! Registry credentials: anonymous, explicit username/password, or docker's `config.json`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use crate::error::{Error, Result};

/// How to authenticate to a registry.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// No credentials.
    Anonymous,
    /// HTTP basic credentials (also used to obtain a bearer token when the registry asks).
    Basic {
        /// User name.
        username: String,
        /// Password or access token.
        password: String,
    },
    /// Look the registry up in docker's `config.json`; anonymous when it has no entry.
    ///
    /// The file is [`DockerConfig::default_path`]: `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`. A missing file means anonymous. This is the default.
    #[default]
    DockerConfig,
    /// Like [`Auth::DockerConfig`] with an explicit file.
    DockerConfigFile(PathBuf),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Anonymous => f.write_str("Anonymous"),
            Auth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Auth::DockerConfig => f.write_str("DockerConfig"),
            Auth::DockerConfigFile(p) => f.debug_tuple("DockerConfigFile").field(p).finish(),
        }
    }
}

impl Auth {
    /// Username/password credentials.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Auth::Basic {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The credentials to use for `registry` (`host[:port]`).
    pub fn resolve(&self, registry: &str) -> Result<Credentials> {
        match self {
            Auth::Anonymous => Ok(Credentials::Anonymous),
            Auth::Basic { username, password } => Ok(Credentials::Basic {
                username: username.clone(),
                password: password.clone(),
            }),
            Auth::DockerConfig => match DockerConfig::default_path() {
                Some(path) => DockerConfig::credentials_from_file(&path, registry),
                None => Ok(Credentials::Anonymous),
            },
            Auth::DockerConfigFile(path) => DockerConfig::credentials_from_file(path, registry),
        }
    }
}

/// Resolved credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials.
    Anonymous,
    /// Basic credentials.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

impl Credentials {
    pub(crate) fn to_registry_auth(&self) -> oci_client::secrets::RegistryAuth {
        match self {
            Credentials::Anonymous => oci_client::secrets::RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => {
                oci_client::secrets::RegistryAuth::Basic(username.clone(), password.clone())
            }
        }
    }
}

/// The parts of docker's `config.json` pwx reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DockerConfig {
    /// `auths`: per-registry entries.
    #[serde(default)]
    pub auths: BTreeMap<String, DockerAuthEntry>,
    /// `credsStore`: a credential helper for every registry.
    #[serde(rename = "credsStore", default)]
    pub creds_store: Option<String>,
    /// `credHelpers`: per-registry credential helpers.
    #[serde(rename = "credHelpers", default)]
    pub cred_helpers: BTreeMap<String, String>,
}

/// One `auths.<registry>` entry.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DockerAuthEntry {
    /// base64 of `user:password`.
    #[serde(default)]
    pub auth: Option<String>,
    /// Plain user name (older configs).
    #[serde(default)]
    pub username: Option<String>,
    /// Plain password (older configs).
    #[serde(default)]
    pub password: Option<String>,
    /// OAuth identity token; not supported.
    #[serde(rename = "identitytoken", default)]
    pub identity_token: Option<String>,
}

impl DockerConfig {
    /// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`; `None` if neither is set.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(dir).join("config.json"));
        }
        std::env::var_os("HOME")
            .filter(|d| !d.is_empty())
            .map(|home| PathBuf::from(home).join(".docker").join("config.json"))
    }

    /// Parses a `config.json` document; `path` is used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<DockerConfig> {
        serde_json::from_str(text).map_err(|e| Error::DockerConfig {
            path: path.to_path_buf(),
            reason: format!("not valid JSON ({e}); fix or move the file"),
        })
    }

    /// Reads `path` and returns the credentials for `registry`; anonymous if the file does not
    /// exist or has no entry for it.
    pub fn credentials_from_file(path: &Path, registry: &str) -> Result<Credentials> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Credentials::Anonymous);
            }
            Err(e) => return Err(Error::io("read", path, e)),
        };
        DockerConfig::parse(&text, path)?.credentials(registry, path)
    }

    /// The credentials for `registry` (`host[:port]`). `path` is used in errors.
    ///
    /// Entries are matched by host after removing any `http(s)://` scheme and path, so
    /// `https://host/v1/` matches `host`.
    pub fn credentials(&self, registry: &str, path: &Path) -> Result<Credentials> {
        let entry = self
            .auths
            .iter()
            .find(|(key, _)| normalize_host(key) == registry)
            .map(|(_, e)| e);
        if let Some(entry) = entry {
            if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
                return decode_auth(auth, registry, path);
            }
            if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
                return Ok(Credentials::Basic {
                    username: u.clone(),
                    password: p.clone(),
                });
            }
            if entry.identity_token.is_some() {
                return Err(Error::DockerConfig {
                    path: path.to_path_buf(),
                    reason: format!(
                        "the entry for {registry} holds an identity token, which pwx does not \
                         support; pass --username/--password instead"
                    ),
                });
            }
        }
        let helper = self
            .cred_helpers
            .iter()
            .find(|(key, _)| normalize_host(key) == registry)
            .map(|(_, h)| h.clone())
            .or_else(|| self.creds_store.clone().filter(|s| !s.is_empty()));
        if let Some(helper) = helper {
            return Err(Error::CredentialHelperUnsupported {
                registry: registry.to_string(),
                helper,
                path: path.to_path_buf(),
            });
        }
        Ok(Credentials::Anonymous)
    }
}

fn normalize_host(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

fn decode_auth(auth: &str, registry: &str, path: &Path) -> Result<Credentials> {
    let bad = |why: &str| Error::DockerConfig {
        path: path.to_path_buf(),
        reason: format!(
            "auths.{registry}.auth {why}; it must be base64 of `user:password` (run `docker login` again or fix the entry)"
        ),
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|_| bad("is not valid base64"))?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad("is not UTF-8"))?;
    let (user, pass) = decoded
        .split_once(':')
        .ok_or_else(|| bad("has no `:` between user and password"))?;
    Ok(Credentials::Basic {
        username: user.to_string(),
        password: pass.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn reads_auth_entry() {
        let text = format!(
            r#"{{"auths": {{"registry.test:5000": {{"auth": "{}"}}, "https://other.test/v1/": {{"auth": "{}"}}}}}}"#,
            b64("alice:s3cr:et"),
            b64("bob:pw")
        );
        let cfg = DockerConfig::parse(&text, Path::new("c.json")).unwrap();
        assert_eq!(
            cfg.credentials("registry.test:5000", Path::new("c.json"))
                .unwrap(),
            Credentials::Basic {
                username: "alice".into(),
                password: "s3cr:et".into()
            }
        );
        assert_eq!(
            cfg.credentials("other.test", Path::new("c.json")).unwrap(),
            Credentials::Basic {
                username: "bob".into(),
                password: "pw".into()
            }
        );
        assert_eq!(
            cfg.credentials("unknown.test", Path::new("c.json"))
                .unwrap(),
            Credentials::Anonymous
        );
    }

    #[test]
    fn credential_helpers_are_reported() {
        let cfg = DockerConfig::parse(
            r#"{"auths": {}, "credHelpers": {"registry.test": "pass"}}"#,
            Path::new("c.json"),
        )
        .unwrap();
        let err = cfg
            .credentials("registry.test", Path::new("c.json"))
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("`pass`") && msg.contains("registry.test"),
            "{msg}"
        );
        assert!(msg.contains("--username"), "{msg}");

        let cfg = DockerConfig::parse(r#"{"credsStore": "desktop"}"#, Path::new("c.json")).unwrap();
        assert!(matches!(
            cfg.credentials("x.test", Path::new("c.json")),
            Err(Error::CredentialHelperUnsupported { .. })
        ));
    }

    #[test]
    fn bad_entries_name_the_file() {
        let cfg = DockerConfig::parse(
            r#"{"auths": {"r.test": {"auth": "!!!"}}}"#,
            Path::new("/x/config.json"),
        )
        .unwrap();
        let msg = cfg
            .credentials("r.test", Path::new("/x/config.json"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("/x/config.json") && msg.contains("base64"),
            "{msg}"
        );
        assert!(DockerConfig::parse("{", Path::new("c.json")).is_err());
    }

    #[test]
    fn missing_file_is_anonymous() {
        let dir = tempfile::tempdir().unwrap();
        let creds =
            DockerConfig::credentials_from_file(&dir.path().join("config.json"), "r.test").unwrap();
        assert_eq!(creds, Credentials::Anonymous);
    }

    #[test]
    fn debug_hides_password() {
        let s = format!("{:?}", Auth::basic("u", "hunter2"));
        assert!(!s.contains("hunter2"));
    }
}
