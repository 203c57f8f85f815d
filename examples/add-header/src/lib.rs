//! Example proxy-wasm filter: adds configurable headers to requests and responses.
//!
//! Plugin configuration (JSON, optional; see README.md):
//!
//! ```json
//! {"request_headers": {"X-my-custom-header": "hello world"}, "response_headers": {"x-wasm-custom": "foo"}}
//! ```
//!
//! Without a configuration the filter adds exactly those two headers. With one, the configuration
//! is the whole truth: a missing field means "add nothing there". Invalid JSON, an unknown field
//! or a non-string value makes `on_configure` return false after logging what is wrong.

use std::fmt;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(AddHeaderRoot { config: Rc::new(Config::default()) })
    });
}}

/// Header name/value pairs in the order the configuration lists them.
#[derive(Debug, Default, PartialEq, Eq)]
struct Headers(Vec<(String, String)>);

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor;

        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = Headers;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object mapping header names to string values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
                let mut pairs = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, String>()? {
                    if name.is_empty() {
                        return Err(serde::de::Error::custom("header names must not be empty"));
                    }
                    pairs.push((name, value));
                }
                Ok(Headers(pairs))
            }
        }

        deserializer.deserialize_map(PairsVisitor)
    }
}

/// The plugin configuration.
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Added to every request in `on_http_request_headers`.
    #[serde(default)]
    request_headers: Headers,
    /// Added to every response in `on_http_response_headers`.
    #[serde(default)]
    response_headers: Headers,
}

impl Default for Config {
    /// What the filter does when it has no configuration.
    fn default() -> Self {
        Config {
            request_headers: Headers(vec![("X-my-custom-header".into(), "hello world".into())]),
            response_headers: Headers(vec![("x-wasm-custom".into(), "foo".into())]),
        }
    }
}

impl Config {
    /// Parses a plugin configuration; `None` or empty bytes mean the defaults.
    fn parse(bytes: Option<&[u8]>) -> Result<Config, serde_json::Error> {
        match bytes {
            None | Some([]) => Ok(Config::default()),
            Some(bytes) => serde_json::from_slice(bytes),
        }
    }
}

struct AddHeaderRoot {
    config: Rc<Config>,
}

impl Context for AddHeaderRoot {}

impl RootContext for AddHeaderRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        match Config::parse(self.get_plugin_configuration().as_deref()) {
            Ok(config) => {
                self.config = Rc::new(config);
                true
            }
            Err(e) => {
                log::error!("add-header: configuration: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(AddHeader {
            config: Rc::clone(&self.config),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct AddHeader {
    config: Rc<Config>,
}

impl Context for AddHeader {}

impl HttpContext for AddHeader {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for (name, value) in &self.config.request_headers.0 {
            self.add_http_request_header(name, value);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for (name, value) in &self.config.response_headers.0 {
            self.add_http_response_header(name, value);
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_or_empty_configuration_means_defaults() {
        assert_eq!(Config::parse(None).unwrap(), Config::default());
        assert_eq!(Config::parse(Some(b"")).unwrap(), Config::default());
    }

    #[test]
    fn shipped_config_json_equals_the_defaults() {
        let shipped = include_bytes!("../config.json");
        assert_eq!(Config::parse(Some(shipped)).unwrap(), Config::default());
    }

    #[test]
    fn order_is_kept_and_missing_fields_add_nothing() {
        let c = Config::parse(Some(br#"{"request_headers":{"b":"1","a":"2"}}"#)).unwrap();
        assert_eq!(
            c.request_headers.0,
            vec![("b".into(), "1".into()), ("a".into(), "2".into())]
        );
        assert!(c.response_headers.0.is_empty());
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = Config::parse(Some(br#"{"headers":{}}"#)).unwrap_err();
        assert!(e.to_string().contains("unknown field `headers`"), "{e}");
        let e = Config::parse(Some(br#"{"request_headers":{"a":1}}"#)).unwrap_err();
        assert!(e.to_string().contains("expected a string"), "{e}");
        let e = Config::parse(Some(br#"{"request_headers":{"":"x"}}"#)).unwrap_err();
        assert!(e.to_string().contains("must not be empty"), "{e}");
        assert!(Config::parse(Some(b"{not json")).is_err());
    }
}
