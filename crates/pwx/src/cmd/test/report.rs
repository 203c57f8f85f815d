//! Reports of a run: readable text with diffs, JSON, and JUnit XML for CI.

use super::envoy::{EnvoyResult, Verdict};
use super::run::{CaseResult, Mismatch};
use std::fmt::Write as _;

/// The text report.
pub(crate) fn text(results: &[CaseResult], file: &str, wasm: &str) -> String {
    let mut out = String::new();
    for result in results {
        let word = if result.passed { "ok  " } else { "FAIL" };
        let on_envoy = match &result.envoy {
            None => String::new(),
            Some(e) => match e.verdict {
                Verdict::Passed => "  (envoy: same)".into(),
                Verdict::Failed => "  (envoy: FAIL)".into(),
                Verdict::Error => "  (envoy: ERROR)".into(),
                Verdict::Skipped => "  (envoy: skipped)".into(),
            },
        };
        let _ = writeln!(out, "{word}  {}{on_envoy}", result.name);
        if let Some(error) = &result.error {
            let _ = writeln!(out, "      error: {error}");
        }
        for failure in &result.failures {
            out.push_str(&mismatch_text(failure, "      "));
        }
        if let Some(envoy) = &result.envoy {
            out.push_str(&envoy_text(envoy));
        }
    }
    let failed = results.iter().filter(|r| !r.passed).count();
    let _ = writeln!(
        out,
        "\n{} passed, {failed} failed ({file} against {wasm})",
        results.len() - failed
    );
    let on_envoy: Vec<&EnvoyResult> = results.iter().filter_map(|r| r.envoy.as_ref()).collect();
    if !on_envoy.is_empty() {
        let count = |v: Verdict| on_envoy.iter().filter(|e| e.verdict == v).count();
        let _ = writeln!(
            out,
            "envoy: {} same as pwx and as expected, {} failed or differ, {} skipped, {} errors",
            count(Verdict::Passed),
            count(Verdict::Failed),
            count(Verdict::Skipped),
            count(Verdict::Error)
        );
    }
    out
}

/// A case's Envoy section: why it was skipped or could not run, the expectations that failed on
/// Envoy, and what pwx did against what Envoy did.
fn envoy_text(envoy: &EnvoyResult) -> String {
    let mut out = String::new();
    if let Some(reason) = &envoy.reason {
        let what = if envoy.verdict == Verdict::Skipped {
            "skipped on envoy"
        } else {
            "envoy error"
        };
        let _ = writeln!(out, "      {what}: {reason}");
    }
    if !envoy.failures.is_empty() {
        let _ = writeln!(out, "      on envoy:");
        for failure in &envoy.failures {
            out.push_str(&mismatch_text(failure, "        "));
        }
    }
    if !envoy.differences.is_empty() {
        let _ = writeln!(out, "      pwx and envoy differ:");
        for d in &envoy.differences {
            out.push_str(&two_sided(
                &d.check,
                ("pwx", &d.pwx),
                ("envoy", &d.envoy),
                "        ",
            ));
        }
    }
    out
}

fn mismatch_text(m: &Mismatch, indent: &str) -> String {
    two_sided(
        &m.check,
        ("expected", &m.expected),
        ("got", &m.actual),
        indent,
    )
}

/// Two values of one check: short ones on one line, longer ones as a line diff
/// (- left, + right).
fn two_sided(check: &str, left: (&str, &str), right: (&str, &str), indent: &str) -> String {
    let mut out = String::new();
    if !left.1.contains('\n') && !right.1.contains('\n') && left.1.len() + right.1.len() < 100 {
        let _ = writeln!(
            out,
            "{indent}{check}: {} {}, {} {}",
            left.0, left.1, right.0, right.1
        );
        return out;
    }
    let (l, r) = match (left.0, right.0) {
        ("expected", _) => ("expected", "actual"),
        other => other,
    };
    let _ = writeln!(out, "{indent}{check}: (- {l}, + {r})");
    let before: Vec<&str> = left.1.lines().collect();
    let after: Vec<&str> = right.1.lines().collect();
    for line in &before {
        let mark = if after.contains(line) { ' ' } else { '-' };
        let _ = writeln!(out, "{indent}  {mark} {line}");
    }
    for line in &after {
        if !before.contains(line) {
            let _ = writeln!(out, "{indent}  + {line}");
        }
    }
    out
}

fn escape(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .flat_map(|c| match c {
            '&' => "&amp;".chars().collect::<Vec<_>>(),
            '<' => "&lt;".chars().collect(),
            '>' => "&gt;".chars().collect(),
            '"' => "&quot;".chars().collect(),
            other => vec![other],
        })
        .collect()
}

/// A JUnit testcase's non-passing outcome: element (`failure`, `error`, `skipped`), message,
/// detail.
type JunitOutcome = (&'static str, String, String);

/// JUnit XML: one testsuite (the file), one testcase per case, and with `--envoy` one more
/// per case (`NAME [envoy]`): failed, errored or skipped with the reason.
pub(crate) fn junit(results: &[CaseResult], file: &str) -> String {
    let mut cases: Vec<(String, f64, Option<JunitOutcome>)> = Vec::new();
    let mut skipped = 0;
    for result in results {
        let pwx_failed = result.error.is_some() || !result.failures.is_empty();
        let outcome = pwx_failed.then(|| {
            let mut detail = String::new();
            if let Some(error) = &result.error {
                let _ = writeln!(detail, "error: {error}");
            }
            for failure in &result.failures {
                detail.push_str(&mismatch_text(failure, "      "));
            }
            let first = result
                .error
                .clone()
                .or_else(|| {
                    result
                        .failures
                        .first()
                        .map(|f| format!("{}: expected {}", f.check, f.expected))
                })
                .unwrap_or_default();
            ("failure", first, detail)
        });
        cases.push((result.name.clone(), result.seconds, outcome));
        if let Some(envoy) = &result.envoy {
            let detail = envoy_text(envoy);
            let outcome = match envoy.verdict {
                Verdict::Passed => None,
                Verdict::Skipped => {
                    skipped += 1;
                    Some((
                        "skipped",
                        envoy.reason.clone().unwrap_or_default(),
                        String::new(),
                    ))
                }
                Verdict::Error => Some(("error", envoy.reason.clone().unwrap_or_default(), detail)),
                Verdict::Failed => {
                    let first = envoy
                        .failures
                        .first()
                        .map(|f| format!("on envoy: {}: expected {}", f.check, f.expected))
                        .or_else(|| {
                            envoy
                                .differences
                                .first()
                                .map(|d| format!("pwx and envoy differ: {}", d.check))
                        })
                        .unwrap_or_default();
                    Some(("failure", first, detail))
                }
            };
            cases.push((format!("{} [envoy]", result.name), envoy.seconds, outcome));
        }
    }
    let failed = cases
        .iter()
        .filter(|c| matches!(c.2, Some(("failure", ..))))
        .count();
    let errors = cases
        .iter()
        .filter(|c| matches!(c.2, Some(("error", ..))))
        .count();
    let total: f64 = cases.iter().map(|c| c.1).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let counts = format!(
        "tests=\"{}\" failures=\"{failed}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{total:.3}\"",
        cases.len()
    );
    let _ = writeln!(out, "<testsuites {counts}>");
    let _ = writeln!(out, "  <testsuite name=\"{}\" {counts}>", escape(file));
    for (name, seconds, outcome) in &cases {
        let _ = write!(
            out,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{seconds:.3}\"",
            escape(file),
            escape(name),
        );
        let Some((tag, message, detail)) = outcome else {
            out.push_str("/>\n");
            continue;
        };
        out.push_str(">\n");
        if detail.is_empty() {
            let _ = writeln!(out, "      <{tag} message=\"{}\"/>", escape(message));
        } else {
            let _ = writeln!(
                out,
                "      <{tag} message=\"{}\">{}</{tag}>",
                escape(message),
                escape(detail)
            );
        }
        out.push_str("    </testcase>\n");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}
