//! The ext-auth plugin configuration: parsing and validation.

use serde::Deserialize;

/// The configuration as written (JSON).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    cluster: String,
    #[serde(default)]
    authority: Option<String>,
    #[serde(default)]
    path_prefix: String,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default)]
    headers_to_auth: Vec<String>,
    #[serde(default)]
    headers_to_upstream: Vec<String>,
    #[serde(default)]
    headers_to_client: Vec<String>,
    #[serde(default = "default_status_on_error")]
    status_on_error: u32,
}

fn default_timeout_ms() -> u64 {
    1000
}

fn default_status_on_error() -> u32 {
    403
}

/// A validated configuration; header names are lower case.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Config {
    /// The cluster (Envoy) or named upstream (pwx) the auth service is reached through.
    pub(crate) cluster: String,
    /// `:authority` of the check request.
    pub(crate) authority: String,
    /// The check request's path is this prefix followed by the original path.
    pub(crate) path_prefix: String,
    pub(crate) timeout_ms: u64,
    /// Client request headers copied into the check request.
    pub(crate) headers_to_auth: Vec<String>,
    /// Headers of an allowing (200) auth response set on the request sent upstream.
    pub(crate) headers_to_upstream: Vec<String>,
    /// Headers of the auth response passed to the client: added to the upstream's response when
    /// allowed, sent with the denial otherwise.
    pub(crate) headers_to_client: Vec<String>,
    /// Status sent when the auth service cannot decide (call failed, or it answered 5xx).
    pub(crate) status_on_error: u32,
}

impl Config {
    /// Parses and validates; the error says what is wrong and where.
    pub(crate) fn parse(bytes: Option<&[u8]>) -> Result<Config, String> {
        let bytes = match bytes {
            None | Some([]) => {
                return Err("no configuration: give at least {\"cluster\": \"<auth cluster>\"} (see README)".into());
            }
            Some(b) => b,
        };
        let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if raw.cluster.is_empty() {
            return Err("cluster is empty: name the cluster of the auth service".into());
        }
        if !raw.path_prefix.is_empty() && !raw.path_prefix.starts_with('/') {
            return Err(format!(
                "path_prefix {:?} must start with '/' (or be left out)",
                raw.path_prefix
            ));
        }
        if !(1..=60_000).contains(&raw.timeout_ms) {
            return Err(format!(
                "timeout_ms {} is outside 1..=60000",
                raw.timeout_ms
            ));
        }
        if !(200..=599).contains(&raw.status_on_error) {
            return Err(format!(
                "status_on_error {} is not an HTTP status (200..=599)",
                raw.status_on_error
            ));
        }
        let names = |field: &str, list: Vec<String>| -> Result<Vec<String>, String> {
            list.into_iter()
                .enumerate()
                .map(|(i, h)| {
                    let ok = !h.is_empty()
                        && h.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                    if ok {
                        Ok(h.to_ascii_lowercase())
                    } else {
                        Err(format!("{field}[{i}] {h:?} is not a header name"))
                    }
                })
                .collect()
        };
        Ok(Config {
            authority: raw.authority.unwrap_or_else(|| raw.cluster.clone()),
            cluster: raw.cluster,
            path_prefix: raw.path_prefix,
            timeout_ms: raw.timeout_ms,
            headers_to_auth: names("headers_to_auth", raw.headers_to_auth)?,
            headers_to_upstream: names("headers_to_upstream", raw.headers_to_upstream)?,
            headers_to_client: names("headers_to_client", raw.headers_to_client)?,
            status_on_error: raw.status_on_error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_configuration_is_valid() {
        let c = Config::parse(Some(include_bytes!("../config.json"))).unwrap();
        assert_eq!(c.cluster, "auth");
        assert_eq!(c.authority, "auth");
        assert_eq!(c.headers_to_auth, vec!["authorization"]);
        assert_eq!(c.status_on_error, 403);
    }

    #[test]
    fn rejections_say_what_is_wrong() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "no configuration"),
            (
                b"{\"cluster\":",
                "EOF while parsing a value at line 1 column 11",
            ),
            (b"{}", "missing field `cluster`"),
            (br#"{"cluster":""}"#, "cluster is empty"),
            (
                br#"{"cluster":"a","clusters":1}"#,
                "unknown field `clusters`",
            ),
            (
                br#"{"cluster":"a","path_prefix":"x"}"#,
                "path_prefix \"x\" must start",
            ),
            (
                br#"{"cluster":"a","timeout_ms":0}"#,
                "timeout_ms 0 is outside",
            ),
            (
                br#"{"cluster":"a","status_on_error":99}"#,
                "status_on_error 99",
            ),
            (
                br#"{"cluster":"a","headers_to_client":["ok","bad header"]}"#,
                "headers_to_client[1] \"bad header\" is not a header name",
            ),
        ];
        for (input, want) in cases {
            let e = Config::parse(Some(input)).unwrap_err();
            assert!(
                e.contains(want),
                "{}: got {e:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
