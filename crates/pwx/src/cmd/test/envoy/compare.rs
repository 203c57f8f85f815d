//! What pwx did against what Envoy did for one case: status, reset, local reply, response
//! headers and body, the request the upstream got, the callouts, and the filter's log lines.
//! Headers Envoy adds on its own (date, server, request ids, timing) are left out: they say
//! nothing about the filter.

use pwx_testkit::Outcome;
use serde::Serialize;

/// One way pwx and Envoy differ.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Difference {
    pub check: String,
    pub pwx: String,
    pub envoy: String,
}

/// Response headers left out: Envoy's own, and framing (the bodies are compared instead).
const RESPONSE_IGNORED: &[&str] = &[
    "date",
    "server",
    "x-envoy-upstream-service-time",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
];

/// Upstream (and callout) request headers left out: what Envoy's connection manager and router
/// add to every request, and framing.
const REQUEST_IGNORED: &[&str] = &[
    ":scheme",
    "x-forwarded-proto",
    "x-request-id",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-internal",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
];

fn shown(values: &[&str]) -> String {
    match values {
        [] => "(absent)".into(),
        [one] => format!("{one:?}"),
        many => format!("{many:?}"),
    }
}

fn headers(
    out: &mut Vec<Difference>,
    what: &str,
    pwx: &[(String, String)],
    envoy: &[(String, String)],
    ignored: &[&str],
) {
    let mut names: Vec<String> = pwx
        .iter()
        .chain(envoy)
        .map(|(k, _)| k.to_ascii_lowercase())
        .filter(|k| !ignored.contains(&k.as_str()))
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        let values = |list: &'_ [(String, String)]| -> Vec<String> {
            list.iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(&name))
                .map(|(_, v)| v.clone())
                .collect()
        };
        let (p, e) = (values(pwx), values(envoy));
        if p != e {
            let p: Vec<&str> = p.iter().map(String::as_str).collect();
            let e: Vec<&str> = e.iter().map(String::as_str).collect();
            out.push(Difference {
                check: format!("{what} {name}"),
                pwx: shown(&p),
                envoy: shown(&e),
            });
        }
    }
}

/// Log lines with request ids (UUIDs, random on both sides) replaced by `<uuid>`.
fn normalized(lines: &[String]) -> String {
    let joined = lines.join("\n");
    match regex::Regex::new(
        "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    ) {
        Ok(uuid) => uuid.replace_all(&joined, "<uuid>").into_owned(),
        Err(_) => joined,
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn differ(out: &mut Vec<Difference>, check: &str, pwx: String, envoy: String) {
    if pwx != envoy {
        out.push(Difference {
            check: check.into(),
            pwx,
            envoy,
        });
    }
}

/// Every difference between the two outcomes; `pwx_logs` and `envoy_logs` are the filter's
/// lines (`level message`) over all repeats of the case.
pub(crate) fn differences(
    pwx: &Outcome,
    envoy: &Outcome,
    pwx_logs: &[String],
    envoy_logs: &[String],
) -> Vec<Difference> {
    let mut out = Vec::new();
    differ(
        &mut out,
        "status",
        pwx.status.to_string(),
        envoy.status.to_string(),
    );
    differ(
        &mut out,
        "reset",
        pwx.reset.to_string(),
        envoy.reset.to_string(),
    );
    let reply = |o: &Outcome| match &o.local_reply {
        Some(r) => format!("a local reply ({})", r.status),
        None => "none".into(),
    };
    differ(&mut out, "local reply", reply(pwx), reply(envoy));
    headers(
        &mut out,
        "header",
        &pwx.headers,
        &envoy.headers,
        RESPONSE_IGNORED,
    );
    differ(&mut out, "body", text(&pwx.body), text(&envoy.body));
    match (&pwx.upstream_request, &envoy.upstream_request) {
        (Some(p), Some(e)) => {
            headers(
                &mut out,
                "upstream header",
                &p.headers,
                &e.headers,
                REQUEST_IGNORED,
            );
            differ(&mut out, "upstream body", text(&p.body), text(&e.body));
        }
        (None, None) => {}
        (p, e) => {
            let reached = |r: bool| if r { "reached" } else { "not reached" }.to_string();
            differ(
                &mut out,
                "upstream",
                reached(p.is_some()),
                reached(e.is_some()),
            );
        }
    }
    let clusters = |o: &Outcome| -> String {
        let list: Vec<&str> = o.callouts.iter().map(|c| c.cluster.as_str()).collect();
        format!("{} ({})", list.len(), list.join(", "))
    };
    differ(&mut out, "callouts", clusters(pwx), clusters(envoy));
    if pwx.callouts.len() == envoy.callouts.len() {
        for (i, (p, e)) in pwx.callouts.iter().zip(&envoy.callouts).enumerate() {
            headers(
                &mut out,
                &format!("callout[{i}] header"),
                &p.headers,
                &e.headers,
                REQUEST_IGNORED,
            );
            differ(
                &mut out,
                &format!("callout[{i}] body"),
                text(&p.body),
                text(&e.body),
            );
        }
    }
    differ(
        &mut out,
        "logs",
        normalized(pwx_logs),
        normalized(envoy_logs),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pwx_testkit::UpstreamRequest;

    #[test]
    fn envoy_own_headers_are_not_differences() {
        let pwx = Outcome {
            status: 200,
            headers: vec![("x-a".into(), "1".into())],
            upstream_request: Some(UpstreamRequest::default()),
            ..Outcome::default()
        };
        let mut envoy = pwx.clone();
        envoy.headers.push(("server".into(), "envoy".into()));
        envoy.headers.push(("date".into(), "today".into()));
        assert!(differences(&pwx, &envoy, &[], &[]).is_empty());
        envoy.headers[0].1 = "2".into();
        envoy.status = 403;
        let found = differences(&pwx, &envoy, &["info a".into()], &[]);
        let checks: Vec<&str> = found.iter().map(|d| d.check.as_str()).collect();
        assert_eq!(checks, ["status", "header x-a", "logs"]);
        assert_eq!(
            (found[1].pwx.as_str(), found[1].envoy.as_str()),
            ("\"1\"", "\"2\"")
        );
    }
}
