//! `pwx check SOURCE --target T`: reports everything the target proxy would reject in a
//! module (ABI marker, imports, signatures, allocator, callbacks, memory), each with the fix.
//! The module is a file, `https://…#sha256=…` or `oci://…` (fetched into the module cache).
//! Exit status is non-zero when the target would reject the module.

mod profiles;
mod rules;

use crate::module_summary::{self, ModuleSummary};
use crate::modules::{SourceArgs, resolve};
use anyhow::Context as _;
use pwx_abi::inspect::ModuleInterface;
use pwx_oci::ModuleSource;
use rules::{Finding, Severity};
use serde::Serialize;

/// Arguments of `pwx check`.
#[derive(clap::Args)]
pub(crate) struct CheckArgs {
    /// The module to check: a .wasm file, https://…#sha256=HEX, or
    /// oci://REGISTRY/REPO:TAG|@sha256:DIGEST.
    #[arg(value_name = "SOURCE", required_unless_present = "list_targets")]
    file: Option<String>,
    /// Expected module sha256 (64 hex digits); a mismatch is refused with both values.
    #[arg(long, value_name = "HEX")]
    sha256: Option<String>,
    /// The proxy to check against: envoy-1.40, envoy-1.33, envoy-1.24, istio-1.20 … istio-1.29,
    /// istio-1.6, istio-1.7, istio-1.8 or pwx (see --list-targets).
    #[arg(long, short, default_value = profiles::DEFAULT_TARGET)]
    target: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// List the targets and the sources of their facts, then exit.
    #[arg(long)]
    list_targets: bool,
    #[command(flatten)]
    sources: SourceArgs,
}

#[derive(Serialize)]
struct Report<'a> {
    file: String,
    target: &'a str,
    profile: &'a str,
    profile_description: &'a str,
    mapping: Option<&'a str>,
    accepted: bool,
    module: &'a ModuleSummary,
    findings: &'a [Finding],
}

pub(crate) fn execute(args: CheckArgs) -> anyhow::Result<()> {
    if args.list_targets {
        return list_targets();
    }
    let Some(file) = args.file else {
        anyhow::bail!("no module given: pwx check SOURCE (a .wasm file, https://… or oci://…)");
    };
    let profile = profiles::resolve(&args.target)?;
    let (bytes, module) = read_module(&file, args.sha256.as_deref(), &args.sources)?;
    let summary = module_summary::summarize(&bytes, &module);
    let findings = rules::check(&module, &profile);
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let report = Report {
        file: file.clone(),
        target: &profile.requested,
        profile: &profile.name,
        profile_description: &profile.description,
        mapping: profile.mapping.as_deref(),
        accepted: errors == 0,
        module: &summary,
        findings: &findings,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    if errors > 0 {
        anyhow::bail!(
            "{} would reject {} ({errors} problem{})",
            profile.requested,
            file,
            if errors == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

/// The module's bytes and interface. A file is read as it is (a module the inspector cannot
/// parse gets check's own report of why); URLs and images go through the module cache, checked
/// against their sha256 like everywhere else.
fn read_module(
    source: &str,
    sha256: Option<&str>,
    sources: &SourceArgs,
) -> anyhow::Result<(Vec<u8>, ModuleInterface)> {
    let parsed = match sha256 {
        Some(hex) => ModuleSource::parse_lenient(source)?.with_sha256(hex)?,
        None => ModuleSource::parse(source)?,
    };
    if let ModuleSource::File { path, sha256 } = &parsed {
        let (bytes, module) = module_summary::read(path)?;
        pwx_oci::fetch::verify(&path.display().to_string(), sha256.as_deref(), &bytes)?;
        return Ok((bytes, module));
    }
    let resolved = resolve(source, sha256, &sources.options()?)?;
    let module = ModuleInterface::parse(&resolved.bytes)
        .with_context(|| format!("{source} cannot be inspected"))?;
    Ok((resolved.bytes, module))
}

fn render(report: &Report<'_>) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "{:<10} {}", "module", report.file);
    for (label, value) in report.module.lines() {
        let _ = writeln!(out, "{label:<10} {value}");
    }
    let _ = writeln!(
        out,
        "{:<10} {} ({})",
        "target", report.target, report.profile_description
    );
    if let Some(mapping) = report.mapping {
        let _ = writeln!(out, "{:<10} {mapping}", "");
    }
    let _ = writeln!(out);
    for finding in report.findings {
        let word = match finding.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "{word}[{}]: {}", finding.code, finding.message);
        let _ = writeln!(out, "  fix: {}", finding.fix);
        let _ = writeln!(out);
    }
    let warnings = report.findings.len()
        - report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count();
    if report.accepted {
        let _ = writeln!(
            out,
            "ok: {} would load this module{}",
            report.target,
            match warnings {
                0 => String::new(),
                1 => " (1 warning)".into(),
                n => format!(" ({n} warnings)"),
            }
        );
    }
    out
}

fn list_targets() -> anyhow::Result<()> {
    for name in [
        "pwx",
        "envoy-1.40",
        "envoy-1.33",
        "envoy-1.24",
        "istio-1.8",
        "istio-1.7",
        "istio-1.6",
    ] {
        let p = profiles::resolve(name)?;
        let abi: Vec<&str> = p.abi_versions.iter().map(|v| v.as_str()).collect();
        println!("{:<11} {}", p.name, p.description);
        println!("{:<11} abi {}: {}", "", abi.join(", "), p.abi_source);
        println!(
            "{:<11} wasi: {} functions: {}",
            "",
            p.wasi.len(),
            p.wasi_source
        );
        if !p.env_missing.is_empty() {
            println!(
                "{:<11} lacks {}: {}",
                "",
                p.env_missing.join(", "),
                p.env_source
            );
        }
    }
    println!(
        "\nistio-1.20 … istio-1.29 and envoy-1.NN (1.24 or newer) map onto these profiles; all names: {}",
        profiles::names()?.join(", ")
    );
    Ok(())
}
