//! Example proxy-wasm filter: lets a request through only if its `token` header holds a prime.
//!
//! Every request header is logged at trace level. A request whose token header is missing, not
//! a decimal number, or not prime is answered `403` with body `Access forbidden.\n` and the
//! header `Powered-By: proxy-wasm`. Plugin configuration (JSON, optional):
//! `{"header": "token"}` — which request header holds the token.

mod prime;

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use serde::Deserialize;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(TokenAuthRoot { config: Rc::new(Config::default()) })
    });
}}

/// The plugin configuration.
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The request header that must hold a prime number.
    #[serde(default = "default_header")]
    header: String,
}

fn default_header() -> String {
    "token".into()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            header: default_header(),
        }
    }
}

impl Config {
    /// Parses a plugin configuration; absent or empty means the defaults.
    fn parse(bytes: Option<&[u8]>) -> Result<Config, String> {
        let config: Config = match bytes {
            None | Some([]) => return Ok(Config::default()),
            Some(b) => serde_json::from_slice(b).map_err(|e| e.to_string())?,
        };
        let valid_name = !config.header.is_empty()
            && config
                .header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
        if !valid_name {
            return Err(format!(
                "header {:?} is not a header name (letters, digits, '-' and '_')",
                config.header
            ));
        }
        Ok(Config {
            header: config.header.to_ascii_lowercase(),
        })
    }
}

struct TokenAuthRoot {
    config: Rc<Config>,
}

impl Context for TokenAuthRoot {}

impl RootContext for TokenAuthRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        match Config::parse(self.get_plugin_configuration().as_deref()) {
            Ok(config) => {
                self.config = Rc::new(config);
                true
            }
            Err(e) => {
                log::error!("token-auth: configuration: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(TokenAuth {
            context_id,
            config: Rc::clone(&self.config),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct TokenAuth {
    context_id: u32,
    config: Rc<Config>,
}

impl Context for TokenAuth {}

impl HttpContext for TokenAuth {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for (name, value) in self.get_http_request_headers() {
            log::trace!("token-auth: #{} -> {name}: {value}", self.context_id);
        }
        let token = self.get_http_request_header(&self.config.header);
        let verdict = match token.as_deref() {
            None => Err("missing"),
            Some(t) => match prime::parse_decimal(t) {
                None => Err("not a decimal number"),
                Some(n) if prime::is_prime(n) => Ok(()),
                Some(_) => Err("not prime"),
            },
        };
        match verdict {
            Ok(()) => Action::Continue,
            Err(why) => {
                log::info!(
                    "token-auth: #{} 403: {} header {why}",
                    self.context_id,
                    self.config.header
                );
                self.send_http_response(
                    403,
                    vec![("Powered-By", "proxy-wasm")],
                    Some(b"Access forbidden.\n"),
                );
                Action::Pause
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration() {
        assert_eq!(Config::parse(None).unwrap().header, "token");
        assert_eq!(Config::parse(Some(b"{}")).unwrap().header, "token");
        assert_eq!(
            Config::parse(Some(br#"{"header":"X-Token"}"#))
                .unwrap()
                .header,
            "x-token"
        );
        let e = Config::parse(Some(br#"{"header":""}"#)).unwrap_err();
        assert!(e.contains("is not a header name"), "{e}");
        let e = Config::parse(Some(br#"{"heade":"x"}"#)).unwrap_err();
        assert!(e.contains("unknown field `heade`"), "{e}");
        let e = Config::parse(Some(b"[")).unwrap_err();
        assert!(e.contains("line 1 column 1"), "{e}");
    }
}
