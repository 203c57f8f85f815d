//! `pwx test [CASES.yaml]`: declarative cases (request in; status, headers, body, upstream
//! request, logs, metrics, local reply out; configuration, timer ticks, callout answers) run
//! against the compiled module on the pwx engine through pwx-testkit. Text with diffs, `--json`,
//! `--junit FILE`.

mod cases;
mod report;
mod run;

use crate::project::Project;
use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};

/// Arguments of `pwx test`.
#[derive(clap::Args)]
pub(crate) struct TestArgs {
    /// The cases file (format: see the authoring docs and the tests.yaml `pwx new` writes).
    #[arg(value_name = "CASES.yaml", default_value = "tests.yaml")]
    cases: PathBuf,
    /// The module to test (default: the file's `wasm`, else the project's build/NAME.wasm).
    #[arg(long, value_name = "FILE.wasm")]
    wasm: Option<PathBuf>,
    /// Run only the cases whose name contains this text.
    #[arg(long, short = 'k', value_name = "TEXT")]
    filter: Option<String>,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
    /// Also write a JUnit XML report to this file.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

fn locate_wasm(args: &TestArgs, suite: &cases::Suite, base: &Path) -> anyhow::Result<PathBuf> {
    if let Some(wasm) = &args.wasm {
        return Ok(wasm.clone());
    }
    if let Some(wasm) = &suite.wasm {
        return Ok(base.join(wasm));
    }
    let project = Project::open(base).with_context(|| {
        format!(
            "no module to test: pass --wasm FILE, or put `wasm:` in {}",
            args.cases.display()
        )
    })?;
    let output = project.output();
    if !output.is_file() {
        bail!(
            "{} does not exist: run `pwx build` in {} first, or pass --wasm FILE",
            output.display(),
            base.display()
        );
    }
    Ok(output)
}

pub(crate) fn execute(args: TestArgs) -> anyhow::Result<()> {
    let suite = cases::load(&args.cases)?;
    let base = args
        .cases
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let wasm = locate_wasm(&args, &suite, &base)?;
    let configuration = match (&suite.configuration, &suite.configuration_file) {
        (Some(_), Some(_)) => bail!(
            "{}: give `configuration` or `configuration_file`, not both",
            args.cases.display()
        ),
        (Some(value), None) => cases::configuration_bytes(value)?,
        (None, Some(file)) => {
            let path = base.join(file);
            std::fs::read(&path).with_context(|| {
                format!(
                    "cannot read {} (configuration_file in {})",
                    path.display(),
                    args.cases.display()
                )
            })?
        }
        (None, None) => Vec::new(),
    };
    let mut builder = pwx_testkit::Filter::load(&wasm)
        .with_context(|| format!("cannot load {}", wasm.display()))?
        .root_id(suite.root_id.clone());
    if let Some(value) = &suite.vm_configuration {
        builder = builder.vm_configuration(cases::configuration_bytes(value)?);
    }
    let selected: Vec<&cases::Case> = suite
        .cases
        .iter()
        .filter(|c| args.filter.as_deref().is_none_or(|f| c.name.contains(f)))
        .collect();
    if selected.is_empty() {
        bail!(
            "no case name contains {:?}",
            args.filter.unwrap_or_default()
        );
    }
    let results: Vec<run::CaseResult> = selected
        .iter()
        .map(|case| run::run_case(&builder, &configuration, case))
        .collect();
    let file = args.cases.display().to_string();
    if let Some(path) = &args.junit {
        std::fs::write(path, report::junit(&results, &file))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let failed = results.iter().filter(|r| !r.passed).count();
    if args.json {
        let report = serde_json::json!({
            "file": file,
            "wasm": wasm.display().to_string(),
            "passed": results.len() - failed,
            "failed": failed,
            "cases": results,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!(
            "{}",
            report::text(&results, &file, &wasm.display().to_string())
        );
    }
    if failed > 0 {
        bail!("{failed} of {} cases failed", results.len());
    }
    Ok(())
}
