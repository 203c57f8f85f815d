//! `pwx run` without any filter: a plain proxy in front of the upstream (what the bench measures
//! as "pwx without filters"), and `--config` flags that name no filter refused.
#![allow(clippy::unwrap_used)] // test code

mod support;

use support::{get, header, pwx_run};

#[test]
fn without_a_filter_pwx_proxies_the_request_unchanged() {
    let mut pwx = pwx_run(&["--listen", "127.0.0.1:0", "--workers", "1"]);
    let port = pwx.listener("http").port();
    let (status, headers, body) = get(port, "/plain?x=1");
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    let echo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(echo["path"], "/plain?x=1");
    assert_eq!(echo["authority"], "test.local");
    // What the connection manager adds before the (empty) chain still reaches the upstream.
    assert!(echo["headers"]["x-request-id"].is_string(), "{body}");
    assert!(pwx.process.terminate().success());
}

#[test]
fn a_config_for_a_filter_that_is_not_there_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pwx"))
        .args(["run", "--config", "{}", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--config is given 1 times but there are 0 filters"),
        "{stderr}"
    );
}
