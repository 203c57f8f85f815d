//! The basic-auth plugin configuration: parsing, validation and rule lookup.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

/// The configuration as written (JSON).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    basic_auth_rules: Vec<RawRule>,
    #[serde(default)]
    realm: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    prefix: String,
    #[serde(default)]
    request_methods: Option<Vec<String>>,
    credentials: Vec<String>,
}

/// A validated configuration.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Config {
    pub(crate) rules: Vec<Rule>,
    /// The realm named in `WWW-Authenticate`.
    pub(crate) realm: String,
}

/// One protected prefix.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) prefix: String,
    /// Upper-case methods; `None` means every method.
    pub(crate) methods: Option<Vec<String>>,
    /// Accepted credentials, decoded to `user:password`.
    pub(crate) credentials: Vec<String>,
}

const DEFAULT_REALM: &str = "proxy-wasm";

impl Config {
    /// Parses and validates; the error says what is wrong and where.
    pub(crate) fn parse(bytes: Option<&[u8]>) -> Result<Config, String> {
        let bytes = match bytes {
            None | Some([]) => {
                return Err(
                    "no configuration: give {\"basic_auth_rules\": [...]} (see README)".into(),
                );
            }
            Some(b) => b,
        };
        let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if raw.basic_auth_rules.is_empty() {
            return Err("basic_auth_rules is empty: nothing to protect".into());
        }
        let realm = raw.realm.unwrap_or_else(|| DEFAULT_REALM.into());
        if realm.is_empty() || realm.contains(['"', '\\']) || realm.chars().any(char::is_control) {
            return Err(format!(
                "realm {realm:?} must be non-empty, without quotes, backslashes or control characters"
            ));
        }
        let mut rules = Vec::new();
        for (i, rule) in raw.basic_auth_rules.into_iter().enumerate() {
            rules.push(Rule::validate(i, rule)?);
        }
        Ok(Config { rules, realm })
    }

    /// The first rule that covers this request, if any.
    pub(crate) fn rule_for(&self, path: &str, method: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| {
            path.starts_with(&r.prefix)
                && r.methods
                    .as_ref()
                    .is_none_or(|ms| ms.iter().any(|m| m.eq_ignore_ascii_case(method)))
        })
    }
}

impl Rule {
    fn validate(i: usize, raw: RawRule) -> Result<Rule, String> {
        if !raw.prefix.starts_with('/') {
            return Err(format!(
                "basic_auth_rules[{i}].prefix {:?} must start with '/'",
                raw.prefix
            ));
        }
        let methods = match raw.request_methods {
            None => None,
            Some(ms) if ms.is_empty() => {
                return Err(format!(
                    "basic_auth_rules[{i}].request_methods is empty: leave it out to cover every method"
                ));
            }
            Some(ms) => {
                for (j, m) in ms.iter().enumerate() {
                    if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                        return Err(format!(
                            "basic_auth_rules[{i}].request_methods[{j}] {m:?} is not an HTTP method"
                        ));
                    }
                }
                Some(ms.into_iter().map(|m| m.to_ascii_uppercase()).collect())
            }
        };
        if raw.credentials.is_empty() {
            return Err(format!("basic_auth_rules[{i}].credentials is empty"));
        }
        let mut credentials = Vec::new();
        for (j, c) in raw.credentials.iter().enumerate() {
            credentials.push(decode_credential(c).ok_or_else(|| {
                format!(
                    "basic_auth_rules[{i}].credentials[{j}] is neither user:password nor base64 of user:password"
                )
            })?);
        }
        Ok(Rule {
            prefix: raw.prefix,
            methods,
            credentials,
        })
    }
}

/// `user:password` as is, or base64 of it decoded; `None` if it is neither.
fn decode_credential(c: &str) -> Option<String> {
    let plain = |s: &str| s.split_once(':').is_some_and(|(user, _)| !user.is_empty());
    if plain(c) {
        return Some(c.to_string());
    }
    let decoded = String::from_utf8(STANDARD.decode(c).ok()?).ok()?;
    plain(&decoded).then_some(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &[u8] = include_bytes!("../config.json");

    #[test]
    fn shipped_configuration_is_valid_and_decodes_base64() {
        let c = Config::parse(Some(SHIPPED)).unwrap();
        assert_eq!(c.rules.len(), 1);
        assert_eq!(c.rules[0].credentials, vec!["ok:test", "admin3:admin3"]);
        assert_eq!(c.realm, "proxy-wasm");
    }

    #[test]
    fn rule_matching_by_prefix_and_method() {
        let c = Config::parse(Some(SHIPPED)).unwrap();
        assert!(c.rule_for("/productpage", "GET").is_some());
        assert!(c.rule_for("/productpage/x?y", "post").is_some());
        assert!(c.rule_for("/productpage", "DELETE").is_none());
        assert!(c.rule_for("/other", "GET").is_none());
        let all = Config::parse(Some(
            br#"{"basic_auth_rules":[{"prefix":"/","credentials":["a:b"]}]}"#,
        ))
        .unwrap();
        assert!(all.rule_for("/x", "PATCH").is_some());
    }

    #[test]
    fn rejections_say_what_is_wrong() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "no configuration"),
            (b"{not json", "key must be a string at line 1 column 2"),
            (br#"{"rules":[]}"#, "unknown field `rules`"),
            (br#"{"basic_auth_rules":[]}"#, "basic_auth_rules is empty"),
            (
                br#"{"basic_auth_rules":[{"prefix":"/a","credentials":[]}]}"#,
                "basic_auth_rules[0].credentials is empty",
            ),
            (
                br#"{"basic_auth_rules":[{"prefix":"a","credentials":["a:b"]}]}"#,
                "basic_auth_rules[0].prefix \"a\" must start with '/'",
            ),
            (
                br#"{"basic_auth_rules":[{"prefix":"/","credentials":["a:b","nocolon"]}]}"#,
                "basic_auth_rules[0].credentials[1] is neither",
            ),
            (
                br#"{"basic_auth_rules":[{"prefix":"/","request_methods":[],"credentials":["a:b"]}]}"#,
                "basic_auth_rules[0].request_methods is empty",
            ),
            (
                br#"{"basic_auth_rules":[{"prefix":"/","request_methods":["G T"],"credentials":["a:b"]}]}"#,
                "request_methods[0] \"G T\" is not an HTTP method",
            ),
            (
                br#"{"basic_auth_rules":[{"prefix":"/","credentials":["a:b"],"extra":1}]}"#,
                "unknown field `extra`",
            ),
            (
                br#"{"realm":"a\"b","basic_auth_rules":[{"prefix":"/","credentials":["a:b"]}]}"#,
                "realm",
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
