//! The body-rewrite plugin configuration: parsing and validation.

use serde::Deserialize;

/// A validated configuration: the replacements for each direction, in order.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    #[serde(default)]
    pub(crate) request: Vec<Replacement>,
    #[serde(default)]
    pub(crate) response: Vec<Replacement>,
}

/// Replace every occurrence of `from` with `to`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Replacement {
    pub(crate) from: String,
    pub(crate) to: String,
}

impl Config {
    /// Parses and validates; the error says what is wrong and where.
    pub(crate) fn parse(bytes: Option<&[u8]>) -> Result<Config, String> {
        let bytes = match bytes {
            None | Some([]) => {
                return Err(
                    "no configuration: give {\"request\": [{\"from\": ..., \"to\": ...}], \"response\": [...]}"
                        .into(),
                );
            }
            Some(b) => b,
        };
        let config: Config = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if config.request.is_empty() && config.response.is_empty() {
            return Err("request and response are both empty: nothing to rewrite".into());
        }
        for (direction, list) in [("request", &config.request), ("response", &config.response)] {
            if let Some(i) = list.iter().position(|r| r.from.is_empty()) {
                return Err(format!("{direction}[{i}].from is empty"));
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_configuration_is_valid() {
        let c = Config::parse(Some(include_bytes!("../config.json"))).unwrap();
        assert_eq!(c.request.len(), 1);
        assert_eq!(c.response.len(), 1);
    }

    #[test]
    fn rejections_say_what_is_wrong() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "no configuration"),
            (
                b"{\"request\":",
                "EOF while parsing a value at line 1 column 11",
            ),
            (br#"{"requests":[]}"#, "unknown field `requests`"),
            (br#"{}"#, "both empty"),
            (
                br#"{"response":[{"from":"","to":"x"}]}"#,
                "response[0].from is empty",
            ),
            (br#"{"request":[{"from":"a"}]}"#, "missing field `to`"),
            (
                br#"{"request":[{"from":"a","to":"b","all":true}]}"#,
                "unknown field `all`",
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
