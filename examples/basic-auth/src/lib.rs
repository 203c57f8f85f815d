//! Example proxy-wasm filter: HTTP Basic authentication for configured path prefixes and methods.
//!
//! Plugin configuration (JSON, required; see README.md):
//!
//! ```json
//! {"basic_auth_rules": [{"prefix": "/productpage", "request_methods": ["GET", "POST"],
//!                        "credentials": ["ok:test", "YWRtaW4zOmFkbWluMw=="]}]}
//! ```
//!
//! A request whose path starts with a rule's prefix and whose method the rule lists must carry
//! `Authorization: Basic <base64 of user:password>` with one of the rule's credentials, or it is
//! answered 401 with `WWW-Authenticate`. Requests that match no rule pass untouched.

mod config;

use std::rc::Rc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

use config::Config;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(BasicAuthRoot { config: None })
    });
}}

struct BasicAuthRoot {
    config: Option<Rc<Config>>,
}

impl Context for BasicAuthRoot {}

impl RootContext for BasicAuthRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        match Config::parse(self.get_plugin_configuration().as_deref()) {
            Ok(config) => {
                self.config = Some(Rc::new(config));
                true
            }
            Err(e) => {
                log::error!("basic-auth: configuration: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // The host only creates streams after on_configure succeeded, so `config` is set.
        let config = self.config.as_ref().map(Rc::clone)?;
        Some(Box::new(BasicAuth { config }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct BasicAuth {
    config: Rc<Config>,
}

impl Context for BasicAuth {}

/// Why a request that matched a rule was refused (logged, never sent to the client).
enum Refusal {
    NoHeader,
    NotBasic,
    BadEncoding,
    WrongCredentials,
}

impl Refusal {
    fn reason(&self) -> &'static str {
        match self {
            Refusal::NoHeader => "no Authorization header",
            Refusal::NotBasic => "Authorization is not of the Basic scheme",
            Refusal::BadEncoding => "Authorization: Basic value is not base64 of user:password",
            Refusal::WrongCredentials => "unknown user or wrong password",
        }
    }
}

/// Checks an `Authorization` header value against the accepted `user:password` strings.
fn check(header: Option<&str>, accepted: &[String]) -> Result<(), Refusal> {
    let header = header.ok_or(Refusal::NoHeader)?;
    let (scheme, token) = header.trim().split_once(' ').ok_or(Refusal::NotBasic)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(Refusal::NotBasic);
    }
    let decoded = STANDARD
        .decode(token.trim())
        .map_err(|_| Refusal::BadEncoding)?;
    let decoded = String::from_utf8(decoded).map_err(|_| Refusal::BadEncoding)?;
    if !decoded.contains(':') {
        return Err(Refusal::BadEncoding);
    }
    if accepted.contains(&decoded) {
        Ok(())
    } else {
        Err(Refusal::WrongCredentials)
    }
}

impl HttpContext for BasicAuth {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let path = self.get_http_request_header(":path").unwrap_or_default();
        let method = self.get_http_request_header(":method").unwrap_or_default();
        let Some(rule) = self.config.rule_for(&path, &method) else {
            return Action::Continue;
        };
        let header = self.get_http_request_header("authorization");
        match check(header.as_deref(), &rule.credentials) {
            Ok(()) => Action::Continue,
            Err(refusal) => {
                log::info!(
                    "basic-auth: 401 for {method} {path} (rule {}): {}",
                    rule.prefix,
                    refusal.reason()
                );
                let challenge = format!("Basic realm=\"{}\"", self.config.realm);
                self.send_http_response(
                    401,
                    vec![
                        ("www-authenticate", challenge.as_str()),
                        ("content-type", "text/plain"),
                    ],
                    Some(b"Unauthorized\n"),
                );
                Action::Pause
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted() -> Vec<String> {
        vec!["ok:test".into(), "admin3:admin3".into()]
    }

    #[test]
    fn accepts_listed_credentials_in_any_scheme_case() {
        assert!(check(Some("Basic b2s6dGVzdA=="), &accepted()).is_ok());
        assert!(check(Some("basic YWRtaW4zOmFkbWluMw=="), &accepted()).is_ok());
    }

    #[test]
    fn refuses_with_the_right_reason() {
        let a = accepted();
        assert!(matches!(check(None, &a), Err(Refusal::NoHeader)));
        assert!(matches!(
            check(Some("Bearer b2s6dGVzdA=="), &a),
            Err(Refusal::NotBasic)
        ));
        assert!(matches!(check(Some("Basic"), &a), Err(Refusal::NotBasic)));
        assert!(matches!(
            check(Some("Basic !!!"), &a),
            Err(Refusal::BadEncoding)
        ));
        // base64 of "oktest" (no colon)
        assert!(matches!(
            check(Some("Basic b2t0ZXN0"), &a),
            Err(Refusal::BadEncoding)
        ));
        // base64 of "ok:wrong"
        assert!(matches!(
            check(Some("Basic b2s6d3Jvbmc="), &a),
            Err(Refusal::WrongCredentials)
        ));
    }
}
