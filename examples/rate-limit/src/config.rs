//! The rate-limit plugin configuration: parsing and validation.

use serde::Deserialize;

/// A validated configuration.
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// Most tokens a bucket holds (the burst size); a new client starts full.
    pub(crate) capacity: u64,
    /// Tokens added to every bucket per refill interval (up to `capacity`).
    pub(crate) refill_tokens: u64,
    /// How often buckets are refilled, in milliseconds (the tick period).
    pub(crate) refill_interval_ms: u64,
    /// Request header naming the client; without it (or when a request lacks it) the client's
    /// IP address is the key.
    #[serde(default)]
    pub(crate) key_header: Option<String>,
}

/// Longest refill interval: one day (a typo such as an extra zero should not go unnoticed).
const MAX_INTERVAL_MS: u64 = 86_400_000;

impl Config {
    /// Parses and validates; the error says what is wrong and where.
    pub(crate) fn parse(bytes: Option<&[u8]>) -> Result<Config, String> {
        let bytes = match bytes {
            None | Some([]) => {
                return Err("no configuration: give {\"capacity\": N, \"refill_tokens\": N, \"refill_interval_ms\": N} (see README)".into());
            }
            Some(b) => b,
        };
        let mut config: Config = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if config.capacity == 0 {
            return Err("capacity is 0: every request would be refused".into());
        }
        if config.refill_tokens == 0 {
            return Err("refill_tokens is 0: buckets would never refill".into());
        }
        if !(1..=MAX_INTERVAL_MS).contains(&config.refill_interval_ms) {
            return Err(format!(
                "refill_interval_ms {} is outside 1..={MAX_INTERVAL_MS}",
                config.refill_interval_ms
            ));
        }
        if let Some(h) = &config.key_header {
            if h.is_empty()
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            {
                return Err(format!("key_header {h:?} is not a header name"));
            }
            config.key_header = Some(h.to_ascii_lowercase());
        }
        Ok(config)
    }

    /// `retry-after` in whole seconds: the longest a client waits for the next refill.
    pub(crate) fn retry_after_secs(&self) -> u64 {
        self.refill_interval_ms.div_ceil(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_configuration_is_valid() {
        let c = Config::parse(Some(include_bytes!("../config.json"))).unwrap();
        assert_eq!(c.key_header.as_deref(), Some("x-api-key"));
        assert_eq!(c.retry_after_secs(), 10);
    }

    #[test]
    fn retry_after_rounds_up() {
        let c = Config::parse(Some(
            br#"{"capacity":1,"refill_tokens":1,"refill_interval_ms":1500}"#,
        ))
        .unwrap();
        assert_eq!(c.retry_after_secs(), 2);
    }

    #[test]
    fn rejections_say_what_is_wrong() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "no configuration"),
            (b"{", "EOF while parsing an object at line 1 column 1"),
            (
                br#"{"capacity":1,"refill_tokens":1}"#,
                "missing field `refill_interval_ms`",
            ),
            (
                br#"{"capacity":0,"refill_tokens":1,"refill_interval_ms":1}"#,
                "capacity is 0",
            ),
            (
                br#"{"capacity":1,"refill_tokens":0,"refill_interval_ms":1}"#,
                "refill_tokens is 0",
            ),
            (
                br#"{"capacity":1,"refill_tokens":1,"refill_interval_ms":0}"#,
                "refill_interval_ms 0 is outside",
            ),
            (
                br#"{"capacity":-1,"refill_tokens":1,"refill_interval_ms":1}"#,
                "invalid value: integer `-1`, expected u64",
            ),
            (
                br#"{"capacity":1,"refill_tokens":1,"refill_interval_ms":1,"burst":2}"#,
                "unknown field `burst`",
            ),
            (
                br#"{"capacity":1,"refill_tokens":1,"refill_interval_ms":1,"key_header":"a b"}"#,
                "key_header \"a b\" is not a header name",
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
