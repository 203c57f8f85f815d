//! `pwx test --envoy`: the same cases on a real Envoy. One Envoy process serves every case of a
//! file (one listener and one VM per case, so state never leaks between cases), in front of a
//! local upstream and local callout clusters that answer as each case says. Each case's result
//! on Envoy is checked against its expectations and against what pwx did.

mod bootstrap;
mod compare;
mod http1;
mod process;
mod servers;

use super::cases::{self, Case};
use super::run::{self, Mismatch, Observed};
use crate::modules::ResolvedModule;
use anyhow::Context as _;
pub(crate) use compare::Difference;
use process::{Envoy, StartFailure};
use pwx_testkit::{Callout, LogLine, Outcome, UpstreamRequest};
use serde::Serialize;
use servers::{Answer, LocalServer};
use std::collections::BTreeMap;
use std::io::BufReader;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

/// How long a response may take (a filter that stalls the stream forever ends here).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a case with `ticks` is not run on Envoy (see docs/authoring.md).
pub(crate) const TICKS_SKIP: &str = "uses `ticks`: Envoy's timers run on wall-clock time from \
start-up, so \"N ticks before the request\" cannot be reproduced on Envoy; ran on pwx only";

/// How a case went on Envoy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Verdict {
    /// Expectations hold on Envoy and Envoy did what pwx did.
    Passed,
    /// An expectation failed on Envoy, or Envoy and pwx differ.
    Failed,
    /// Not run on Envoy (`reason` says why); not counted as passed.
    Skipped,
    /// The case could not run on Envoy (`reason` says why).
    Error,
}

/// A case's result on Envoy.
#[derive(Debug, Serialize)]
pub(crate) struct EnvoyResult {
    pub verdict: Verdict,
    pub reason: Option<String>,
    /// Expectations that do not hold on Envoy.
    pub failures: Vec<Mismatch>,
    /// What pwx did against what Envoy did, where they differ.
    pub differences: Vec<Difference>,
    pub seconds: f64,
    #[serde(skip)]
    pub observed: Option<Observed>,
}

impl EnvoyResult {
    fn skipped(reason: &str) -> EnvoyResult {
        EnvoyResult {
            verdict: Verdict::Skipped,
            reason: Some(reason.to_string()),
            failures: Vec::new(),
            differences: Vec::new(),
            seconds: 0.0,
            observed: None,
        }
    }

    fn error(reason: String, seconds: f64) -> EnvoyResult {
        EnvoyResult {
            verdict: Verdict::Error,
            reason: Some(reason),
            failures: Vec::new(),
            differences: Vec::new(),
            seconds,
            observed: None,
        }
    }

    /// Sets the differences against pwx and the verdict.
    pub(crate) fn conclude(&mut self, pwx: Option<&Observed>) {
        if let (Some(p), Some(e)) = (pwx, &self.observed) {
            self.differences = compare::differences(&p.outcome, &e.outcome, &p.logs, &e.logs);
        }
        if self.verdict == Verdict::Passed
            && (!self.failures.is_empty() || !self.differences.is_empty())
        {
            self.verdict = Verdict::Failed;
        }
    }
}

/// What the Envoy runs share.
pub(crate) struct Setup<'a> {
    pub envoy: PathBuf,
    pub module: &'a ResolvedModule,
    pub root_id: &'a str,
    pub vm_configuration: Option<Vec<u8>>,
    /// The file's configuration (a case may replace it).
    pub configuration: &'a [u8],
    /// Scratch directory (bootstraps, logs).
    pub dir: &'a Path,
}

fn utf8(bytes: &[u8], what: &str) -> anyhow::Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        anyhow::anyhow!(
            "{what} is not UTF-8 text; Envoy's StringValue configuration cannot carry it"
        )
    })
}

/// Runs `cases` on Envoy; one result per case, in order.
pub(crate) fn run_all(setup: &Setup<'_>, cases: &[&Case]) -> anyhow::Result<Vec<EnvoyResult>> {
    let mut results: Vec<Option<EnvoyResult>> = cases.iter().map(|_| None).collect();
    let mut exchanges = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        if case.ticks > 0 {
            results[i] = Some(EnvoyResult::skipped(TICKS_SKIP));
        } else if let Some(text) = &case.expect.start_error {
            results[i] = Some(start_error_case(setup, i, case, text));
        } else {
            exchanges.push(i);
        }
    }
    if !exchanges.is_empty() {
        let group: Vec<(usize, &Case)> = exchanges.iter().map(|&i| (i, cases[i])).collect();
        match run_group(setup, &group, "all")? {
            Ok(done) => {
                for (i, r) in exchanges.iter().zip(done) {
                    results[*i] = Some(r);
                }
            }
            // Envoy refused one of the configurations: run each case alone so the refusal
            // lands on the case that caused it.
            Err(StartFailure(why)) if group.len() > 1 => {
                eprintln!(
                    "note: Envoy refused the combined bootstrap ({why}); running each case in its own Envoy"
                );
                for (i, case) in group {
                    let started = Instant::now();
                    results[i] = Some(
                        match run_group(setup, &[(i, case)], &format!("case-{i}"))? {
                            Ok(mut one) => one.remove(0),
                            Err(StartFailure(why)) => EnvoyResult::error(
                                format!(
                                    "Envoy did not start with this case's configuration: {why}"
                                ),
                                started.elapsed().as_secs_f64(),
                            ),
                        },
                    );
                }
            }
            Err(StartFailure(why)) => {
                let i = group[0].0;
                results[i] = Some(EnvoyResult::error(
                    format!("Envoy did not start with this case's configuration: {why}"),
                    0.0,
                ));
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.context("internal error: a case has no Envoy result"))
        .collect()
}

/// A case that expects start-up to fail: `envoy --mode validate` runs the plugin's start-up too.
fn start_error_case(setup: &Setup<'_>, index: usize, case: &Case, text: &str) -> EnvoyResult {
    let started = Instant::now();
    let result = (|| -> anyhow::Result<EnvoyResult> {
        let dir = setup.dir.join(format!("validate-{index}"));
        std::fs::create_dir_all(&dir)?;
        let listener = case_listener(setup, index, case, &dir)?;
        let common = bootstrap::Common {
            module: setup.module,
            root_id: setup.root_id,
            vm_configuration: vm_configuration(setup)?,
            upstream_port: 9,
            callout_clusters: &BTreeMap::new(),
        };
        let doc = bootstrap::render_bootstrap(&common, &[listener])?;
        let config = bootstrap::write(&doc, &dir)?;
        let output = std::process::Command::new(&setup.envoy)
            .arg("--mode")
            .arg("validate")
            .arg("-c")
            .arg(&config)
            .args(["--disable-hot-restart", "--log-level", "info"])
            .stdin(std::process::Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", setup.envoy.display()))?;
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let failures = if output.status.success() {
            vec![run::mismatch(
                "start",
                format!("refused with an error containing {text:?}"),
                "Envoy accepted the configuration (envoy --mode validate)",
            )]
        } else if all.contains(text) {
            Vec::new()
        } else {
            let lines: Vec<&str> = all
                .lines()
                .filter(|l| l.contains("wasm") || l.contains("rror"))
                .collect();
            let tail = lines[lines.len().saturating_sub(6)..].join("\n");
            vec![run::mismatch(
                "start error",
                format!("contains {text:?}"),
                tail,
            )]
        };
        Ok(EnvoyResult {
            verdict: Verdict::Passed,
            reason: None,
            failures,
            differences: Vec::new(),
            seconds: started.elapsed().as_secs_f64(),
            observed: None,
        })
    })();
    result.unwrap_or_else(|e| EnvoyResult::error(format!("{e:#}"), started.elapsed().as_secs_f64()))
}

fn vm_configuration(setup: &Setup<'_>) -> anyhow::Result<Option<String>> {
    setup
        .vm_configuration
        .as_deref()
        .map(|b| utf8(b, "vm_configuration"))
        .transpose()
}

fn case_listener(
    setup: &Setup<'_>,
    index: usize,
    case: &Case,
    dir: &Path,
) -> anyhow::Result<bootstrap::CaseListener> {
    let configuration = match &case.configuration {
        Some(value) => cases::configuration_bytes(value)?,
        None => setup.configuration.to_vec(),
    };
    let name = format!("case-{index}");
    Ok(bootstrap::CaseListener {
        access_log: dir.join(format!("{name}.access.log")),
        configuration: (!configuration.is_empty())
            .then(|| utf8(&configuration, "the configuration"))
            .transpose()?,
        name,
    })
}

/// The servers one Envoy run talks to.
struct Servers {
    upstream: LocalServer,
    callouts: BTreeMap<String, LocalServer>,
}

/// Starts one Envoy for `group` (index in the file, case) and runs each case on it.
fn run_group(
    setup: &Setup<'_>,
    group: &[(usize, &Case)],
    label: &str,
) -> anyhow::Result<Result<Vec<EnvoyResult>, StartFailure>> {
    let dir = setup.dir.join(format!("envoy-{label}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let seq = Arc::new(AtomicU64::new(0));
    let mut callouts = BTreeMap::new();
    for (_, case) in group {
        for c in &case.callouts {
            if !callouts.contains_key(&c.cluster) {
                callouts.insert(c.cluster.clone(), LocalServer::start(seq.clone())?);
            }
        }
    }
    let servers = Servers {
        upstream: LocalServer::start(seq)?,
        callouts,
    };
    let ports: BTreeMap<String, u16> = servers
        .callouts
        .iter()
        .map(|(name, s)| (name.clone(), s.port))
        .collect();
    let mut listeners = Vec::new();
    let mut failed_early: BTreeMap<usize, String> = BTreeMap::new();
    for (i, case) in group {
        match case_listener(setup, *i, case, &dir) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                failed_early.insert(*i, format!("{e:#}"));
            }
        }
    }
    let common = bootstrap::Common {
        module: setup.module,
        root_id: setup.root_id,
        vm_configuration: vm_configuration(setup)?,
        upstream_port: servers.upstream.port,
        callout_clusters: &ports,
    };
    let mut results = Vec::new();
    let envoy = if listeners.is_empty() {
        None
    } else {
        let doc = bootstrap::render_bootstrap(&common, &listeners)?;
        let config = bootstrap::write(&doc, &dir)?;
        let names: Vec<String> = listeners.iter().map(|l| l.name.clone()).collect();
        match Envoy::start(&setup.envoy, &config, &dir, &names)? {
            Ok(envoy) => Some(envoy),
            Err(failure) => return Ok(Err(failure)),
        }
    };
    for (i, case) in group {
        if let Some(why) = failed_early.remove(i) {
            results.push(EnvoyResult::error(why, 0.0));
            continue;
        }
        let Some(envoy) = &envoy else { continue };
        let listener = listeners
            .iter()
            .find(|l| l.name == format!("case-{i}"))
            .context("internal error: a case has no listener")?;
        let started = Instant::now();
        results.push(
            run_case(envoy, &servers, listener, case).unwrap_or_else(|e| {
                EnvoyResult::error(format!("{e:#}"), started.elapsed().as_secs_f64())
            }),
        );
    }
    if let Some(envoy) = envoy {
        envoy.stop();
    }
    Ok(Ok(results))
}

/// Envoy's own local replies (not a filter's): these response code details.
fn is_envoy_reply(details: &str) -> bool {
    details == "via_upstream"
        || details.starts_with("upstream_")
        || details.starts_with("wasm_fail")
        || details.starts_with("request_overall_timeout")
        || details == "route_not_found"
}

fn run_case(
    envoy: &Envoy,
    servers: &Servers,
    listener: &bootstrap::CaseListener,
    case: &Case,
) -> anyhow::Result<EnvoyResult> {
    let started = Instant::now();
    let port = *envoy
        .ports
        .get(&listener.name)
        .context("internal error: no port for the case's listener")?;
    servers.upstream.reset(vec![(
        None,
        match &case.upstream {
            Some(spec) => Answer::Respond(run::response(spec, "upstream")?),
            None => Answer::Echo,
        },
    )]);
    for (name, server) in &servers.callouts {
        let mut answers = Vec::new();
        for (k, c) in case.callouts.iter().enumerate() {
            if &c.cluster != name {
                continue;
            }
            let answer = match (&c.respond, c.fail) {
                (Some(spec), false) => {
                    Answer::Respond(run::response(spec, &format!("callouts[{k}]"))?)
                }
                (None, true) => Answer::Fail,
                _ => anyhow::bail!("callouts[{k}]: give either `respond` or `fail: true`"),
            };
            answers.push((c.path.clone(), answer));
        }
        server.reset(answers);
    }
    let request = run::request(case)?;
    let metrics_before = if case.expect.metrics.is_empty() {
        BTreeMap::new()
    } else {
        envoy.metrics()?
    };
    let log_start = envoy.log_offset();
    let access_before = access_lines(&listener.access_log).len();
    let repeat = case.repeat.max(1) as usize;
    let mut outcome = Outcome::default();
    for _ in 0..repeat {
        servers.upstream.clear_received();
        for server in servers.callouts.values() {
            server.clear_received();
        }
        outcome = exchange(port, &request)?;
    }
    // The stream is complete once its access log line is written (after the filter's on_log).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut access = access_lines(&listener.access_log);
    while access.len() < access_before + repeat && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        access = access_lines(&listener.access_log);
    }
    envoy.wait_quiet();
    let details = access
        .last()
        .and_then(|l| l.split_once('|'))
        .map(|(_, d)| d.to_string())
        .unwrap_or_default();
    if !outcome.reset && !is_envoy_reply(&details) {
        outcome.local_reply = Some(pwx_host::LocalReply {
            status: u32::from(outcome.status),
            details: details.clone(),
            body: outcome.body.clone(),
            headers: Vec::new(),
            grpc_status: None,
        });
    }
    if details.starts_with("wasm_fail") {
        outcome.vm_failure = Some(format!(
            "Envoy answered with response code details {details}"
        ));
    }
    outcome.upstream_request = servers.upstream.received().last().map(|r| UpstreamRequest {
        headers: with_pseudo(&r.method, &r.path, &r.message.headers),
        body: r.message.body.clone(),
        trailers: r.message.trailers.clone(),
    });
    let mut calls: Vec<(u64, Callout)> = servers
        .callouts
        .iter()
        .flat_map(|(name, server)| {
            server.received().into_iter().map(move |r| {
                (
                    r.seq,
                    Callout {
                        cluster: name.clone(),
                        headers: with_pseudo(&r.method, &r.path, &r.message.headers),
                        body: r.message.body.clone(),
                    },
                )
            })
        })
        .collect();
    calls.sort_by_key(|(seq, _)| *seq);
    outcome.callouts = calls.into_iter().map(|(_, c)| c).collect();
    let lines = process::filter_logs(&envoy.log_since(log_start));
    outcome.logs = lines
        .iter()
        .map(|(level, message)| LogLine {
            level: match level.as_str() {
                "trace" => "trace",
                "debug" => "debug",
                "warning" => "warn",
                "error" => "error",
                "critical" => "critical",
                _ => "info",
            },
            message: message.clone(),
        })
        .collect();
    let messages: Vec<String> = outcome.logs.iter().map(|l| l.message.clone()).collect();
    let mut failures = run::compare(case, &outcome, &messages)?;
    if !case.expect.metrics.is_empty() {
        let after = envoy.metrics()?;
        for (name, want) in &case.expect.metrics {
            match after.get(name) {
                Some(value) => {
                    let change = value - metrics_before.get(name).copied().unwrap_or(0);
                    if change != *want {
                        failures.push(run::mismatch(
                            format!("metric {name}"),
                            want.to_string(),
                            format!("{change} (the change during the case; Envoy shows {value})"),
                        ));
                    }
                }
                None => failures.push(run::mismatch(
                    format!("metric {name}"),
                    want.to_string(),
                    format!(
                        "not defined (defined: {})",
                        if after.is_empty() {
                            "none".to_string()
                        } else {
                            after.keys().cloned().collect::<Vec<_>>().join(", ")
                        }
                    ),
                )),
            }
        }
    }
    let logs = outcome
        .logs
        .iter()
        .map(|l| format!("{} {}", l.level, l.message))
        .collect();
    Ok(EnvoyResult {
        verdict: Verdict::Passed,
        reason: None,
        failures,
        differences: Vec::new(),
        seconds: started.elapsed().as_secs_f64(),
        observed: Some(Observed { outcome, logs }),
    })
}

fn access_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The pseudo-headers pwx-testkit records (`:authority`, `:path`, `:method`), then the rest.
fn with_pseudo(method: &str, path: &str, headers: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = vec![(
        ":authority".to_string(),
        headers
            .iter()
            .find(|(k, _)| k == "host")
            .map(|(_, v)| v.clone())
            .unwrap_or_default(),
    )];
    out.push((":path".into(), path.into()));
    out.push((":method".into(), method.into()));
    out.extend(headers.iter().filter(|(k, _)| k != "host").cloned());
    out
}

/// Sends the request to Envoy on a fresh connection and reads the response.
fn exchange(port: u16, request: &pwx_testkit::Request) -> anyhow::Result<Outcome> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("cannot connect to Envoy's listener 127.0.0.1:{port}"))?;
    stream.set_read_timeout(Some(RESPONSE_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut headers = vec![("host".to_string(), request.authority.clone())];
    headers.extend(request.headers.iter().cloned());
    http1::write_message(
        &mut writer,
        &format!("{} {} HTTP/1.1", request.method, request.path),
        &headers,
        &request.body,
        &request.trailers,
    )
    .context("sending the request to Envoy")?;
    let mut reader = BufReader::new(stream);
    let head_only = request.method.eq_ignore_ascii_case("HEAD");
    let mut outcome = Outcome::default();
    match http1::read_message(&mut reader, true, head_only) {
        Ok(Some(response)) => {
            outcome.status = http1::status_of(&response.start).unwrap_or(0);
            outcome.headers = response.headers;
            outcome.body = response.body;
        }
        Ok(None) => outcome.reset = true,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            anyhow::bail!("Envoy sent no response within {RESPONSE_TIMEOUT:?} (the stream stalled)")
        }
        Err(_) => outcome.reset = true,
    }
    Ok(outcome)
}
