//! The testkit driving real filters: the add-header and ext-auth examples built by
//! `scripts/build-fixtures.sh rust` (headers both ways, a body as Envoy delivers it, callouts
//! answered, refused and failed, missing answers and timers reported).
#![allow(clippy::unwrap_used)]

use pwx_testkit::{CalloutAnswer, Error, Filter, Request, Response};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("../fixtures/{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-fixtures.sh rust first",
        path.display()
    );
    path
}

#[test]
fn add_header_adds_both_ways_and_passes_the_body() {
    let mut filter = Filter::load(fixture("add-header"))
        .unwrap()
        .start()
        .unwrap();
    let outcome = filter
        .send(&Request::post("/echo", "ping").header("Content-Type", "text/plain"))
        .unwrap();
    assert_eq!(outcome.status, 200);
    assert_eq!(outcome.header("x-wasm-custom"), Some("foo"));
    assert_eq!(outcome.body_text(), "ping");
    let upstream = outcome.upstream_request.unwrap();
    assert_eq!(upstream.header("x-my-custom-header"), Some("hello world"));
    assert_eq!(upstream.header(":path"), Some("/echo"));
    assert_eq!(upstream.body, b"ping");
    assert!(outcome.local_reply.is_none());
    assert!(matches!(filter.tick(), Err(Error::NoTimer)));
    let refused = Filter::load(fixture("add-header"))
        .unwrap()
        .configuration("{\"x\":1}")
        .start();
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("unknown field `x`")
    );
}

fn ext_auth(answer: Option<CalloutAnswer>) -> Filter {
    let config = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/ext-auth/config.json"
    ))
    .unwrap();
    let mut builder = Filter::load(fixture("ext-auth"))
        .unwrap()
        .configuration(config);
    builder = match answer {
        Some(answer) => builder.answer_callouts(answer),
        None => builder.cluster("auth"),
    };
    builder.start().unwrap()
}

#[test]
fn ext_auth_callout_allowed_resumes_the_request() {
    let allow = CalloutAnswer::new("auth", Response::new(200).header("x-user", "alice"));
    let mut filter = ext_auth(Some(allow));
    let outcome = filter
        .send(&Request::get("/orders").header("authorization", "Bearer t"))
        .unwrap();
    assert_eq!(outcome.status, 200, "{outcome:?}");
    assert_eq!(outcome.callouts.len(), 1);
    let call = &outcome.callouts[0];
    assert_eq!(call.cluster, "auth");
    assert!(
        call.headers
            .contains(&(":path".into(), "/check/orders".into())),
        "{call:?}"
    );
    assert!(
        call.headers
            .contains(&("authorization".into(), "Bearer t".into())),
        "{call:?}"
    );
    let upstream = outcome.upstream_request.unwrap();
    assert_eq!(upstream.header("x-user"), Some("alice"));
}

#[test]
fn ext_auth_callout_denied_or_failed_answers_locally() {
    let deny = CalloutAnswer::new("auth", Response::new(403).body("no"));
    let mut filter = ext_auth(Some(deny));
    let outcome = filter.send(&Request::get("/orders")).unwrap();
    assert_eq!(outcome.status, 403);
    assert_eq!(outcome.body_text(), "no");
    assert!(outcome.upstream_request.is_none());
    assert_eq!(outcome.local_reply.as_ref().unwrap().status, 403);
    assert!(
        outcome.logged("denied by the auth service: 403"),
        "{:?}",
        outcome.logs
    );

    let mut filter = ext_auth(Some(CalloutAnswer::failure("auth")));
    let outcome = filter.send(&Request::get("/orders")).unwrap();
    // A transport failure: zero headers, so the example refuses with its status_on_error (403).
    assert_eq!(outcome.status, 403, "{outcome:?}");
    assert!(
        outcome.logged("without a valid :status"),
        "{:?}",
        outcome.logs
    );
    assert!(outcome.upstream_request.is_none());
}

#[test]
fn a_callout_without_an_answer_is_an_error_that_says_what_to_add() {
    let mut filter = ext_auth(None);
    let error = filter.send(&Request::get("/orders")).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, Error::UnansweredCallout { .. }), "{text}");
    assert!(
        text.contains("cluster \"auth\" (GET /check/orders)"),
        "{text}"
    );
}
