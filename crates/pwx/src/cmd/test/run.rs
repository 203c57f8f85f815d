//! Runs one case on the pwx engine through pwx-testkit and lists what differs from `expect`.

use super::cases::{self, Case, UpstreamExpect};
use anyhow::Context as _;
use pwx_testkit::{CalloutAnswer, FilterBuilder, Outcome, Request, Response, Upstream};
use serde::Serialize;

/// One expectation that does not hold.
#[derive(Debug, Serialize)]
pub(crate) struct Mismatch {
    pub check: String,
    pub expected: String,
    pub actual: String,
}

/// How a case went.
#[derive(Debug, Serialize)]
pub(crate) struct CaseResult {
    pub name: String,
    pub passed: bool,
    pub failures: Vec<Mismatch>,
    /// The case could not run (start-up failed unexpectedly, an unanswered callout, …).
    pub error: Option<String>,
    pub seconds: f64,
    /// The same case on Envoy (`--envoy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envoy: Option<super::envoy::EnvoyResult>,
    /// What pwx did (for the comparison with Envoy).
    #[serde(skip)]
    pub observed: Option<Observed>,
}

/// What one run of a case produced: the last exchange, and the filter's log lines over all
/// repeats as `level message`.
#[derive(Debug, Clone)]
pub(crate) struct Observed {
    pub outcome: Outcome,
    pub logs: Vec<String>,
}

pub(crate) fn mismatch(
    check: impl Into<String>,
    expected: impl Into<String>,
    actual: impl Into<String>,
) -> Mismatch {
    Mismatch {
        check: check.into(),
        expected: expected.into(),
        actual: actual.into(),
    }
}

pub(crate) fn response(spec: &cases::ResponseSpec, what: &str) -> anyhow::Result<Response> {
    let mut response = Response::new(spec.status).body(spec.body.clone());
    for (k, v) in cases::pairs(&spec.headers, what)? {
        response = response.header(k, v.unwrap_or_default());
    }
    Ok(response)
}

/// Runs `case` on a filter started from `base` with `configuration`.
pub(crate) fn run_case(base: &FilterBuilder, configuration: &[u8], case: &Case) -> CaseResult {
    let started = std::time::Instant::now();
    let mut observed = None;
    let (failures, error) = match check_case(base, configuration, case, &mut observed) {
        Ok(failures) => (failures, None),
        Err(e) => (Vec::new(), Some(format!("{e:#}"))),
    };
    CaseResult {
        name: case.name.clone(),
        passed: failures.is_empty() && error.is_none(),
        failures,
        error,
        seconds: started.elapsed().as_secs_f64(),
        envoy: None,
        observed,
    }
}

fn check_case(
    base: &FilterBuilder,
    configuration: &[u8],
    case: &Case,
    observed: &mut Option<Observed>,
) -> anyhow::Result<Vec<Mismatch>> {
    let configuration = match &case.configuration {
        Some(value) => cases::configuration_bytes(value)?,
        None => configuration.to_vec(),
    };
    let mut builder = base.clone().configuration(configuration);
    for (i, callout) in case.callouts.iter().enumerate() {
        let what = format!("callouts[{i}]");
        let mut answer = match (&callout.respond, callout.fail) {
            (Some(spec), false) => CalloutAnswer::new(&callout.cluster, response(spec, &what)?),
            (None, true) => CalloutAnswer::failure(&callout.cluster),
            _ => anyhow::bail!("{what}: give either `respond` or `fail: true`"),
        };
        if let Some(path) = &callout.path {
            answer = answer.path(path);
        }
        builder = builder.answer_callouts(answer);
    }
    let expect = &case.expect;
    let mut filter = match (builder.start(), &expect.start_error) {
        (Ok(_), Some(text)) => {
            return Ok(vec![mismatch(
                "start",
                format!("refused with an error containing {text:?}"),
                "started",
            )]);
        }
        (Err(e), Some(text)) => {
            let message = e.to_string();
            return Ok(if message.contains(text.as_str()) {
                Vec::new()
            } else {
                vec![mismatch(
                    "start error",
                    format!("contains {text:?}"),
                    message,
                )]
            });
        }
        (Err(e), None) => return Err(e).context("the filter did not start"),
        (Ok(filter), None) => filter,
    };
    for _ in 0..case.ticks {
        filter.tick().context("ticks")?;
    }
    let request = request(case)?;
    let upstream = match &case.upstream {
        Some(spec) => Upstream::Respond(response(spec, "upstream")?),
        None => Upstream::Echo,
    };
    let mut outcome = Outcome::default();
    let mut logs = Vec::new();
    let mut leveled = Vec::new();
    for _ in 0..case.repeat.max(1) {
        outcome = filter.send_to(&request, &upstream)?;
        logs.extend(outcome.logs.iter().map(|l| l.message.clone()));
        leveled.extend(
            outcome
                .logs
                .iter()
                .map(|l| format!("{} {}", l.level, l.message)),
        );
    }
    let mut failures = compare(case, &outcome, &logs)?;
    *observed = Some(Observed {
        outcome: outcome.clone(),
        logs: leveled,
    });
    for (name, want) in &expect.metrics {
        match filter.metric(name) {
            Some(got) if got == *want => {}
            Some(got) => failures.push(mismatch(
                format!("metric {name}"),
                want.to_string(),
                got.to_string(),
            )),
            None => {
                let known: Vec<String> = filter.metrics().into_iter().map(|(n, _)| n).collect();
                failures.push(mismatch(
                    format!("metric {name}"),
                    want.to_string(),
                    format!(
                        "not defined (defined: {})",
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        }
    }
    Ok(failures)
}

pub(crate) fn request(case: &Case) -> anyhow::Result<Request> {
    let spec = &case.request;
    let mut request = Request::new(&spec.method, &spec.path).body(spec.body.clone());
    if let Some(authority) = &spec.authority {
        request = request.authority(authority);
    }
    for (k, v) in cases::pairs(&spec.headers, "request.headers")? {
        request = request.header(k, v.unwrap_or_default());
    }
    for (k, v) in cases::pairs(&spec.trailers, "request.trailers")? {
        request = request.trailer(k, v.unwrap_or_default());
    }
    Ok(request)
}

fn shown(value: Option<&str>) -> String {
    match value {
        Some(v) => format!("{v:?}"),
        None => "(absent)".into(),
    }
}

fn compare_headers(
    failures: &mut Vec<Mismatch>,
    what: &str,
    expected: &serde_yaml::Mapping,
    present: &[String],
    get: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<()> {
    for (name, want) in cases::pairs(expected, what)? {
        let got = get(&name);
        if got != want {
            failures.push(mismatch(
                format!("{what} {name}"),
                shown(want.as_deref()),
                shown(got.as_deref()),
            ));
        }
    }
    for name in present {
        if get(name).is_none() {
            failures.push(mismatch(format!("{what} {name}"), "present", "(absent)"));
        }
    }
    Ok(())
}

pub(crate) fn compare(
    case: &Case,
    outcome: &Outcome,
    logs: &[String],
) -> anyhow::Result<Vec<Mismatch>> {
    let expect = &case.expect;
    let mut failures = Vec::new();
    if let Some(reason) = &outcome.vm_failure {
        failures.push(mismatch("vm", "running", format!("failed: {reason}")));
    }
    if let Some(status) = expect.status
        && outcome.status != status
    {
        failures.push(mismatch(
            "status",
            status.to_string(),
            outcome.status.to_string(),
        ));
    }
    compare_headers(
        &mut failures,
        "header",
        &expect.headers,
        &expect.headers_present,
        &|n| outcome.header(n).map(str::to_string),
    )?;
    if let Some(body) = &expect.body
        && outcome.body != body.as_bytes()
    {
        failures.push(mismatch("body", body.clone(), outcome.body_text()));
    }
    if let Some(part) = &expect.body_contains
        && !outcome.body_text().contains(part.as_str())
    {
        failures.push(mismatch(
            "body",
            format!("contains {part:?}"),
            outcome.body_text(),
        ));
    }
    if let Some(want) = expect.local_reply {
        let got = outcome.local_reply.is_some();
        if got != want {
            let actual = match &outcome.local_reply {
                Some(reply) => format!("a local reply (status {})", reply.status),
                None => "no local reply".into(),
            };
            failures.push(mismatch(
                "local reply",
                if want { "a local reply" } else { "none" },
                actual,
            ));
        }
    }
    if let Some(want) = expect.reset
        && outcome.reset != want
    {
        failures.push(mismatch(
            "reset",
            want.to_string(),
            outcome.reset.to_string(),
        ));
    }
    if let Some(want) = expect.callouts
        && outcome.callouts.len() != want
    {
        let made: Vec<String> = outcome.callouts.iter().map(|c| c.cluster.clone()).collect();
        failures.push(mismatch(
            "callouts",
            want.to_string(),
            format!("{} ({})", made.len(), made.join(", ")),
        ));
    }
    match (&expect.upstream, &outcome.upstream_request) {
        (None, _) => {}
        (Some(serde_yaml::Value::Null), None) => {}
        (Some(serde_yaml::Value::Null), Some(_)) => {
            failures.push(mismatch("upstream", "not reached", "reached"));
        }
        (Some(spec), got) => {
            let spec: UpstreamExpect = serde_yaml::from_value(spec.clone())
                .with_context(|| format!("case {:?}: expect.upstream", case.name))?;
            match got {
                None => failures.push(mismatch("upstream", "reached", "not reached")),
                Some(request) => {
                    compare_headers(
                        &mut failures,
                        "upstream header",
                        &spec.headers,
                        &spec.headers_present,
                        &|n| request.header(n).map(str::to_string),
                    )?;
                    if let Some(body) = &spec.body
                        && request.body != body.as_bytes()
                    {
                        failures.push(mismatch(
                            "upstream body",
                            body.clone(),
                            String::from_utf8_lossy(&request.body).into_owned(),
                        ));
                    }
                }
            }
        }
    }
    for part in &expect.logs {
        if !logs.iter().any(|l| l.contains(part.as_str())) {
            let actual = if logs.is_empty() {
                "(no log lines)".to_string()
            } else {
                logs.join("\n")
            };
            failures.push(mismatch(
                "log",
                format!("a line containing {part:?}"),
                actual,
            ));
        }
    }
    Ok(failures)
}
