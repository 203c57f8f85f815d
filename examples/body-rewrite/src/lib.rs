//! Example proxy-wasm filter: buffers request and response bodies and replaces strings in them.
//!
//! Plugin configuration (JSON, required; see README.md):
//!
//! ```json
//! {"request": [{"from": "foo", "to": "bar"}], "response": [{"from": "hello", "to": "goodbye"}]}
//! ```
//!
//! A direction with replacements is buffered whole (the proxy's buffer limit applies: Envoy
//! answers 413 to a larger request), every replacement runs in order over the whole body, and
//! the result replaces the body. The new length is not known when the headers leave, so the
//! filter removes `content-length` from a message it will rewrite; the proxy then frames the
//! rewritten body itself (chunked on HTTP/1.1) instead of sending a stale length.

mod config;

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

use config::{Config, Replacement};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(BodyRewriteRoot { config: None })
    });
}}

struct BodyRewriteRoot {
    config: Option<Rc<Config>>,
}

impl Context for BodyRewriteRoot {}

impl RootContext for BodyRewriteRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        match Config::parse(self.get_plugin_configuration().as_deref()) {
            Ok(config) => {
                self.config = Some(Rc::new(config));
                true
            }
            Err(e) => {
                log::error!("body-rewrite: configuration: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Streams only exist after on_configure succeeded.
        let config = self.config.as_ref().map(Rc::clone)?;
        Some(Box::new(BodyRewrite { config }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct BodyRewrite {
    config: Rc<Config>,
}

impl Context for BodyRewrite {}

/// Applies every replacement in order; `None` when nothing matched (the body stays as it is).
fn rewrite(body: &[u8], replacements: &[Replacement]) -> Option<Vec<u8>> {
    let mut current = body.to_vec();
    let mut changed = false;
    for r in replacements {
        if let Some(next) = replace_all(&current, r.from.as_bytes(), r.to.as_bytes()) {
            current = next;
            changed = true;
        }
    }
    changed.then_some(current)
}

/// Replaces every non-overlapping occurrence of `from` (non-empty), left to right.
fn replace_all(haystack: &[u8], from: &[u8], to: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    let mut found = false;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
            found = true;
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    found.then_some(out)
}

impl HttpContext for BodyRewrite {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if !end_of_stream && !self.config.request.is_empty() {
            self.set_http_request_header("content-length", None);
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.config.request.is_empty() {
            return Action::Continue;
        }
        if !end_of_stream {
            // Keep buffering: the host hands the whole body over at end of stream.
            return Action::Pause;
        }
        let body = self.get_http_request_body(0, body_size).unwrap_or_default();
        if let Some(new) = rewrite(&body, &self.config.request) {
            log::info!(
                "body-rewrite: request body {} -> {} bytes",
                body.len(),
                new.len()
            );
            self.set_http_request_body(0, body_size, &new);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if !end_of_stream && !self.config.response.is_empty() {
            self.set_http_response_header("content-length", None);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.config.response.is_empty() {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = self
            .get_http_response_body(0, body_size)
            .unwrap_or_default();
        if let Some(new) = rewrite(&body, &self.config.response) {
            log::info!(
                "body-rewrite: response body {} -> {} bytes",
                body.len(),
                new.len()
            );
            self.set_http_response_body(0, body_size, &new);
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(from: &str, to: &str) -> Replacement {
        Replacement {
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn replaces_every_occurrence_in_order() {
        let out = rewrite(b"foo foo bar", &[r("foo", "x"), r("x bar", "y")]).unwrap();
        assert_eq!(out, b"x y");
        assert_eq!(rewrite(b"aaa", &[r("aa", "b")]).unwrap(), b"ba");
        assert_eq!(rewrite(b"abc", &[r("zz", "y")]), None);
        assert_eq!(rewrite(b"", &[r("a", "b")]), None);
        assert_eq!(rewrite(b"abc", &[r("b", "")]).unwrap(), b"ac");
    }
}
