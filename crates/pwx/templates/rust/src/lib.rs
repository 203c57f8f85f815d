//! {{name}}: a proxy-wasm HTTP filter.
//!
//! - adds the configured headers to every request before it goes upstream, and to every response;
//! - refuses requests whose path starts with one of `deny_path_prefixes` with a 403 local reply,
//!   logs the refusal and counts it in the `{{name_snake}}_denied_total` counter.
//!
//! The configuration is JSON (see `config.json` and README.md); an invalid one makes the proxy
//! refuse the filter at start-up, with the reason in its log.

use std::collections::BTreeMap;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};
use serde::Deserialize;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { config: Rc::new(Config::default()), denied_metric: None })
    });
}}

/// The plugin configuration.
#[derive(Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Added to every request before it is forwarded upstream.
    #[serde(default)]
    request_headers: BTreeMap<String, String>,
    /// Added to every response.
    #[serde(default)]
    response_headers: BTreeMap<String, String>,
    /// Requests whose path starts with one of these get a 403.
    #[serde(default)]
    deny_path_prefixes: Vec<String>,
}

impl Config {
    /// Parses a configuration; an absent or empty one means the defaults (do nothing).
    fn parse(bytes: Option<&[u8]>) -> Result<Config, String> {
        let config: Config = match bytes {
            None | Some([]) => return Ok(Config::default()),
            Some(bytes) => serde_json::from_slice(bytes).map_err(|e| e.to_string())?,
        };
        for name in config.request_headers.keys().chain(config.response_headers.keys()) {
            if name.is_empty() || name.starts_with(':') {
                return Err(format!("header name {name:?} is empty or a pseudo-header"));
            }
        }
        if let Some(prefix) = config.deny_path_prefixes.iter().find(|p| !p.starts_with('/')) {
            return Err(format!("deny_path_prefixes: {prefix:?} does not start with '/'"));
        }
        Ok(config)
    }
}

struct Root {
    config: Rc<Config>,
    denied_metric: Option<u32>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        match Config::parse(self.get_plugin_configuration().as_deref()) {
            Ok(config) => self.config = Rc::new(config),
            Err(e) => {
                log::error!("{{name}}: configuration: {e}");
                return false;
            }
        }
        match hostcalls::define_metric(MetricType::Counter, "{{name_snake}}_denied_total") {
            Ok(id) => self.denied_metric = Some(id),
            Err(status) => log::warn!("{{name}}: cannot define the denied counter: {status:?}"),
        }
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Filter {
            config: Rc::clone(&self.config),
            denied_metric: self.denied_metric,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Filter {
    config: Rc<Config>,
    denied_metric: Option<u32>,
}

impl Context for Filter {}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let path = self.get_http_request_header(":path").unwrap_or_default();
        if self.config.deny_path_prefixes.iter().any(|p| path.starts_with(p.as_str())) {
            log::info!("{{name}}: denied {path}");
            if let Some(id) = self.denied_metric {
                let _ = hostcalls::increment_metric(id, 1);
            }
            self.send_http_response(403, vec![("x-denied-by", "{{name}}")], Some(b"forbidden\n"));
            return Action::Pause;
        }
        for (name, value) in &self.config.request_headers {
            self.add_http_request_header(name, value);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for (name, value) in &self.config.response_headers {
            self.add_http_response_header(name, value);
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_configuration_parses() {
        let config = Config::parse(Some(include_bytes!("../config.json"))).unwrap();
        assert_eq!(config.deny_path_prefixes, ["/admin"]);
    }

    #[test]
    fn empty_configuration_means_defaults() {
        assert_eq!(Config::parse(None).unwrap(), Config::default());
        assert_eq!(Config::parse(Some(b"")).unwrap(), Config::default());
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = Config::parse(Some(br#"{"headers": {}}"#)).unwrap_err();
        assert!(e.contains("unknown field `headers`"), "{e}");
        let e = Config::parse(Some(br#"{"deny_path_prefixes": ["admin"]}"#)).unwrap_err();
        assert!(e.contains("does not start with '/'"), "{e}");
        let e = Config::parse(Some(br#"{"request_headers": {":path": "x"}}"#)).unwrap_err();
        assert!(e.contains("pseudo-header"), "{e}");
    }
}
