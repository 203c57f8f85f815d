//! `pwx test [CASES.yaml]`: declarative cases (request in; status, headers, body, upstream
//! request, logs, metrics, local reply out; configuration, timer ticks, callout answers) run
//! against the compiled module on the pwx engine through pwx-testkit; `--envoy` runs them on a
//! real Envoy too and shows where the two differ. Text with diffs, `--json`, `--junit FILE`.

mod cases;
mod envoy;
mod report;
mod run;

use crate::cmd::deploy::envoy_bin::find_envoy;
use crate::cmd::deploy::output::TempDir;
use crate::modules::{ResolvedModule, SourceArgs, resolve};
use crate::project::Project;
use anyhow::{Context as _, bail};
use pwx_oci::ModuleSource;
use std::path::{Path, PathBuf};

/// Arguments of `pwx test`.
#[derive(clap::Args)]
pub(crate) struct TestArgs {
    /// The cases file (format: see the authoring docs and the tests.yaml `pwx new` writes).
    #[arg(value_name = "CASES.yaml", default_value = "tests.yaml")]
    cases: PathBuf,
    /// The module to test: a .wasm file, https://…#sha256=HEX or oci://REGISTRY/REPO:TAG|@DIGEST
    /// (default: the file's `wasm`, else the project's build/NAME.wasm).
    #[arg(long, value_name = "SOURCE")]
    wasm: Option<String>,
    /// Expected module sha256 (64 hex digits); a mismatch is refused with both values.
    #[arg(long, value_name = "HEX")]
    sha256: Option<String>,
    /// Run only the cases whose name contains this text.
    #[arg(long, short = 'k', value_name = "TEXT")]
    filter: Option<String>,
    /// Also run every case on a real Envoy and report where Envoy and pwx differ.
    #[arg(long)]
    envoy: bool,
    /// The Envoy binary for --envoy (default: $ENVOY_BIN, else `envoy` on PATH, else
    /// .venv/bin/envoy in this directory or a parent).
    #[arg(long, value_name = "PATH", requires = "envoy")]
    envoy_bin: Option<PathBuf>,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
    /// Also write a JUnit XML report to this file.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    #[command(flatten)]
    sources: SourceArgs,
}

/// The module source to test: the flag, the file's `wasm` (a relative path is relative to the
/// file), or the project's build output.
fn module_source(args: &TestArgs, suite: &cases::Suite, base: &Path) -> anyhow::Result<String> {
    if let Some(wasm) = &args.wasm {
        return Ok(wasm.clone());
    }
    if let Some(wasm) = &suite.wasm {
        let parsed = ModuleSource::parse_lenient(wasm)
            .with_context(|| format!("`wasm` in {}", args.cases.display()))?;
        return Ok(match parsed {
            ModuleSource::File { path, .. } if path.is_relative() => {
                base.join(path).display().to_string()
            }
            _ => wasm.clone(),
        });
    }
    let project = Project::open(base).with_context(|| {
        format!(
            "no module to test: pass --wasm SOURCE, or put `wasm:` in {}",
            args.cases.display()
        )
    })?;
    let output = project.output();
    if !output.is_file() {
        bail!(
            "{} does not exist: run `pwx build` in {} first, or pass --wasm SOURCE",
            output.display(),
            base.display()
        );
    }
    Ok(output.display().to_string())
}

fn configuration(args: &TestArgs, suite: &cases::Suite, base: &Path) -> anyhow::Result<Vec<u8>> {
    Ok(match (&suite.configuration, &suite.configuration_file) {
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
    })
}

pub(crate) fn execute(args: TestArgs) -> anyhow::Result<()> {
    let suite = cases::load(&args.cases)?;
    let base = args
        .cases
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let source = module_source(&args, &suite, &base)?;
    // Found before anything runs, so a missing Envoy is the first thing reported.
    let envoy_binary = if args.envoy {
        Some(find_envoy(args.envoy_bin.as_deref())?)
    } else {
        None
    };
    let module = resolve(&source, args.sha256.as_deref(), &args.sources.options()?)?;
    let configuration = configuration(&args, &suite, &base)?;
    let mut builder = pwx_testkit::Filter::from_bytes(&module.bytes)
        .with_context(|| format!("cannot load {source}"))?
        .root_id(suite.root_id.clone());
    let vm_configuration = suite
        .vm_configuration
        .as_ref()
        .map(cases::configuration_bytes)
        .transpose()?;
    if let Some(bytes) = &vm_configuration {
        builder = builder.vm_configuration(bytes.clone());
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
    let mut results: Vec<run::CaseResult> = selected
        .iter()
        .map(|case| run::run_case(&builder, &configuration, case))
        .collect();
    if let Some(envoy) = envoy_binary {
        run_on_envoy(
            envoy,
            &module,
            &suite,
            vm_configuration,
            &configuration,
            &selected,
            &mut results,
        )?;
    }
    let file = args.cases.display().to_string();
    if let Some(path) = &args.junit {
        std::fs::write(path, report::junit(&results, &file))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let failed = results.iter().filter(|r| !r.passed).count();
    if args.json {
        let skipped = results
            .iter()
            .filter(|r| {
                r.envoy
                    .as_ref()
                    .is_some_and(|e| e.verdict == envoy::Verdict::Skipped)
            })
            .count();
        let mut report = serde_json::json!({
            "file": file,
            "wasm": source,
            "sha256": module.sha256,
            "passed": results.len() - failed,
            "failed": failed,
            "cases": results,
        });
        if args.envoy {
            report["envoy_skipped"] = skipped.into();
        }
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report::text(&results, &file, &source));
    }
    if failed > 0 {
        bail!("{failed} of {} cases failed", results.len());
    }
    Ok(())
}

/// Runs the selected cases on Envoy and folds the results into `results`.
fn run_on_envoy(
    envoy: PathBuf,
    module: &ResolvedModule,
    suite: &cases::Suite,
    vm_configuration: Option<Vec<u8>>,
    configuration: &[u8],
    selected: &[&cases::Case],
    results: &mut [run::CaseResult],
) -> anyhow::Result<()> {
    let scratch = TempDir::new()?;
    let setup = envoy::Setup {
        envoy,
        module,
        root_id: &suite.root_id,
        vm_configuration,
        configuration,
        dir: scratch.path(),
    };
    let on_envoy = envoy::run_all(&setup, selected)?;
    for (result, mut envoy_result) in results.iter_mut().zip(on_envoy) {
        envoy_result.conclude(result.observed.as_ref());
        if matches!(
            envoy_result.verdict,
            envoy::Verdict::Failed | envoy::Verdict::Error
        ) {
            result.passed = false;
        }
        result.envoy = Some(envoy_result);
    }
    Ok(())
}
