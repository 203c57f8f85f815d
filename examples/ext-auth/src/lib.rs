//! Example proxy-wasm filter: asks an external HTTP auth service before letting a request through.
//!
//! Plugin configuration (JSON; see README.md):
//!
//! ```json
//! {"cluster": "auth", "path_prefix": "/check", "headers_to_auth": ["authorization"],
//!  "headers_to_upstream": ["x-user"], "headers_to_client": ["x-auth-reason", "www-authenticate"]}
//! ```
//!
//! For every request the filter sends a check request (same method, path = `path_prefix` +
//! original path, the listed client headers, no body) to `cluster` and pauses. The auth service
//! decides: `200` lets the request continue (with `headers_to_upstream` copied onto it), any
//! other status below 500 is sent to the client as the denial (status, body and
//! `headers_to_client`). A failed call or a 5xx answer means the service could not decide: the
//! client gets `status_on_error` (403 by default, like Envoy's ext_authz filter).

mod config;

use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

use config::Config;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(ExtAuthRoot { config: None })
    });
}}

struct ExtAuthRoot {
    config: Option<Rc<Config>>,
}

impl Context for ExtAuthRoot {}

impl RootContext for ExtAuthRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        match Config::parse(self.get_plugin_configuration().as_deref()) {
            Ok(config) => {
                self.config = Some(Rc::new(config));
                true
            }
            Err(e) => {
                log::error!("ext-auth: configuration: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Streams only exist after on_configure succeeded.
        let config = self.config.as_ref().map(Rc::clone)?;
        Some(Box::new(ExtAuth {
            context_id,
            config,
            client_headers: Vec::new(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct ExtAuth {
    context_id: u32,
    config: Rc<Config>,
    /// `headers_to_client` taken from an allowing auth response, added to the response.
    client_headers: Vec<(String, String)>,
}

const ERROR_BODY: &[u8] = b"ext-auth: the authorization service could not decide\n";

impl ExtAuth {
    /// The auth response's headers named in `names`, in the order of the list.
    fn pick_call_headers(&self, names: &[String]) -> Vec<(String, String)> {
        let all = self.get_http_call_response_headers();
        names
            .iter()
            .flat_map(|n| all.iter().filter(move |(k, _)| k.eq_ignore_ascii_case(n)))
            .cloned()
            .collect()
    }

    fn refuse_on_error(&self, why: &str) {
        log::warn!(
            "ext-auth: #{} {} ({why})",
            self.context_id,
            self.config.status_on_error
        );
        self.send_http_response(
            self.config.status_on_error,
            vec![("content-type", "text/plain")],
            Some(ERROR_BODY),
        );
    }
}

impl Context for ExtAuth {
    fn on_http_call_response(
        &mut self,
        _token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let status = self
            .get_http_call_response_header(":status")
            .and_then(|s| s.parse::<u32>().ok());
        match status {
            Some(200) => {
                for (name, value) in self.pick_call_headers(&self.config.headers_to_upstream) {
                    self.set_http_request_header(&name, Some(&value));
                }
                self.client_headers = self.pick_call_headers(&self.config.headers_to_client);
                self.resume_http_request();
            }
            Some(status @ 100..=499) => {
                let body = self
                    .get_http_call_response_body(0, body_size)
                    .unwrap_or_default();
                log::info!(
                    "ext-auth: #{} denied by the auth service: {status}",
                    self.context_id
                );
                let headers = self.pick_call_headers(&self.config.headers_to_client);
                self.send_http_response(
                    status,
                    headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect(),
                    Some(&body),
                );
            }
            Some(status) => self.refuse_on_error(&format!("auth service answered {status}")),
            None => self.refuse_on_error("auth response without a valid :status"),
        }
    }
}

impl HttpContext for ExtAuth {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let method = self.get_http_request_header(":method").unwrap_or_default();
        let path = self.get_http_request_header(":path").unwrap_or_default();
        let check_path = format!("{}{path}", self.config.path_prefix);
        let forwarded: Vec<(String, String)> = self
            .config
            .headers_to_auth
            .iter()
            .filter_map(|n| self.get_http_request_header(n).map(|v| (n.clone(), v)))
            .collect();
        let mut headers = vec![
            (":method", method.as_str()),
            (":path", check_path.as_str()),
            (":authority", self.config.authority.as_str()),
        ];
        headers.extend(forwarded.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let timeout = Duration::from_millis(self.config.timeout_ms);
        match self.dispatch_http_call(&self.config.cluster, headers, None, vec![], timeout) {
            Ok(_token) => Action::Pause,
            Err(status) => {
                self.refuse_on_error(&format!(
                    "calling cluster {:?} failed: {status:?}",
                    self.config.cluster
                ));
                Action::Pause
            }
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        for (name, value) in std::mem::take(&mut self.client_headers) {
            self.add_http_response_header(&name, &value);
        }
        Action::Continue
    }
}
