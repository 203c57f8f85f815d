//! Reports of a run: readable text with diffs, JSON, and JUnit XML for CI.

use super::run::{CaseResult, Mismatch};
use std::fmt::Write as _;

/// The text report.
pub(crate) fn text(results: &[CaseResult], file: &str, wasm: &str) -> String {
    let mut out = String::new();
    for result in results {
        let word = if result.passed { "ok  " } else { "FAIL" };
        let _ = writeln!(out, "{word}  {}", result.name);
        if let Some(error) = &result.error {
            let _ = writeln!(out, "      error: {error}");
        }
        for failure in &result.failures {
            out.push_str(&diff(failure));
        }
    }
    let failed = results.iter().filter(|r| !r.passed).count();
    let _ = writeln!(
        out,
        "\n{} passed, {failed} failed ({file} against {wasm})",
        results.len() - failed
    );
    out
}

/// One mismatch: short values on one line, longer ones as a line diff (- expected, + actual).
fn diff(m: &Mismatch) -> String {
    let mut out = String::new();
    if !m.expected.contains('\n')
        && !m.actual.contains('\n')
        && m.expected.len() + m.actual.len() < 100
    {
        let _ = writeln!(
            out,
            "      {}: expected {}, got {}",
            m.check, m.expected, m.actual
        );
        return out;
    }
    let _ = writeln!(out, "      {}: (- expected, + actual)", m.check);
    let expected: Vec<&str> = m.expected.lines().collect();
    let actual: Vec<&str> = m.actual.lines().collect();
    for line in &expected {
        let mark = if actual.contains(line) { ' ' } else { '-' };
        let _ = writeln!(out, "        {mark} {line}");
    }
    for line in &actual {
        if !expected.contains(line) {
            let _ = writeln!(out, "        + {line}");
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

/// JUnit XML: one testsuite (the file), one testcase per case.
pub(crate) fn junit(results: &[CaseResult], file: &str) -> String {
    let failed = results.iter().filter(|r| !r.passed).count();
    let total: f64 = results.iter().map(|r| r.seconds).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites tests=\"{}\" failures=\"{failed}\" time=\"{total:.3}\">",
        results.len()
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" time=\"{total:.3}\">",
        escape(file),
        results.len()
    );
    for result in results {
        let _ = write!(
            out,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            escape(file),
            escape(&result.name),
            result.seconds
        );
        if result.passed {
            out.push_str("/>\n");
            continue;
        }
        out.push_str(">\n");
        let mut detail = String::new();
        if let Some(error) = &result.error {
            let _ = writeln!(detail, "error: {error}");
        }
        for failure in &result.failures {
            detail.push_str(&diff(failure));
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
        let _ = writeln!(
            out,
            "      <failure message=\"{}\">{}</failure>",
            escape(&first),
            escape(&detail)
        );
        out.push_str("    </testcase>\n");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}
