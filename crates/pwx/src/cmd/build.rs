//! `pwx build [DIR]`: detects the project's language, makes sure the toolchain is ready (adds
//! the wasm32-wasip1 Rust target, runs npm ci for AssemblyScript; for C++ and Go says what is
//! missing and how to get it), builds in release mode into `build/<name>.wasm` and prints the
//! module's size, sha256 and ABI version.

use crate::module_summary;
use crate::project::{Language, Project};
use anyhow::{Context as _, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Arguments of `pwx build`.
#[derive(clap::Args)]
pub(crate) struct BuildArgs {
    /// The project directory (default: the current directory).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Show the toolchain's own output as it runs (otherwise shown only when the build fails).
    #[arg(long, short)]
    verbose: bool,
}

pub(crate) fn execute(args: BuildArgs) -> anyhow::Result<()> {
    let project = Project::open(&args.dir)?;
    let started = Instant::now();
    let output = build_project(&project, args.json, args.verbose)?;
    let (bytes, module) = module_summary::read(&output)?;
    let summary = module_summary::summarize(&bytes, &module);
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let report = serde_json::json!({
            "project": project.name,
            "language": project.language,
            "wasm": output.display().to_string(),
            "seconds": (seconds * 10.0).round() / 10.0,
            "module": summary,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "built {} ({}, {seconds:.1} s)",
            output.display(),
            project.language.label()
        );
        for (label, value) in summary.lines() {
            if matches!(label, "size" | "sha256" | "abi") {
                println!("{label:<10} {value}");
            }
        }
    }
    if summary.abi_version.is_none() {
        bail!(
            "{} declares no proxy-wasm ABI version Envoy accepts: run `pwx check {}` for details",
            output.display(),
            output.display()
        );
    }
    Ok(())
}

/// Builds `project` with its language's toolchain (a spinner on a terminal unless `quiet`; the
/// toolchain's output live with `verbose`, else only on failure) and returns the module's path.
/// `pwx build` and `pwx run DIR` both build through here.
pub(crate) fn build_project(
    project: &Project,
    quiet: bool,
    verbose: bool,
) -> anyhow::Result<PathBuf> {
    let progress = Progress::start(quiet, verbose);
    let result = match project.language {
        Language::Rust => build_rust(project, &progress),
        Language::AssemblyScript => build_assemblyscript(project, &progress),
        Language::Go => build_go(project, &progress),
        Language::Cpp => build_cpp(project, &progress),
    };
    progress.finish();
    result?;
    Ok(project.output())
}

/// A spinner on stderr while the toolchain runs (nothing when stderr is not a terminal or
/// with --json).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    verbose: bool,
}

impl Progress {
    fn start(quiet: bool, verbose: bool) -> Progress {
        use std::io::IsTerminal as _;
        let bar = (!quiet && !verbose && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress { bar, verbose }
    }

    fn step(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(message.to_string()),
            None if self.verbose => eprintln!("pwx build: {message}"),
            None => {}
        }
    }

    /// Runs `command`; its output is shown live with --verbose, else only when it fails.
    fn run(&self, command: &mut Command, what: &str) -> anyhow::Result<String> {
        self.step(what);
        let program = command.get_program().to_string_lossy().into_owned();
        if self.verbose {
            command.stderr(std::process::Stdio::inherit());
        }
        let output = command
            .output()
            .with_context(|| format!("cannot run {program}"))?;
        if !output.status.success() {
            if let Some(bar) = &self.bar {
                bar.finish_and_clear();
            }
            eprint!("{}", String::from_utf8_lossy(&output.stderr));
            if !self.verbose {
                // Tools like npm and make report errors on stdout too.
                eprint!("{}", String::from_utf8_lossy(&output.stdout));
            }
            bail!("{what} failed ({})", output.status);
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn copy_output(from: &Path, project: &Project) -> anyhow::Result<()> {
    let to = project.output();
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::copy(from, &to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

fn build_rust(project: &Project, progress: &Progress) -> anyhow::Result<()> {
    if !have("cargo") {
        bail!(
            "cargo not found: install Rust with rustup (see the Rust website), then run pwx build again"
        );
    }
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .context("cannot run rustc")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if !sysroot.join("lib/rustlib/wasm32-wasip1").is_dir() {
        if !have("rustup") {
            bail!(
                "the Rust target wasm32-wasip1 is missing and rustup is not available to add it: \
                 install the target for {} (with rustup: rustup target add wasm32-wasip1)",
                sysroot.display()
            );
        }
        progress.run(
            Command::new("rustup").args(["target", "add", "wasm32-wasip1"]),
            "rustup target add wasm32-wasip1",
        )?;
    }
    let stdout = progress.run(
        Command::new("cargo").current_dir(&project.dir).args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip1",
            "--message-format=json-render-diagnostics",
        ]),
        "cargo build --release --target wasm32-wasip1",
    )?;
    // The artifact's path from cargo itself: right whatever CARGO_TARGET_DIR says.
    let artifact = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "cdylib"))
        })
        .filter_map(|m| {
            m["filenames"].as_array().and_then(|files| {
                files
                    .iter()
                    .filter_map(|f| f.as_str())
                    .find(|f| f.ends_with(".wasm"))
                    .map(PathBuf::from)
            })
        })
        .next_back()
        .context(
            "cargo built no .wasm: the package needs `crate-type = [\"cdylib\"]` under [lib]",
        )?;
    copy_output(&artifact, project)
}

fn build_assemblyscript(project: &Project, progress: &Progress) -> anyhow::Result<()> {
    for tool in ["node", "npm"] {
        if !have(tool) {
            bail!(
                "{tool} not found: install Node.js and npm (Debian: apt-get install nodejs npm), then run pwx build again"
            );
        }
    }
    let installed = project.dir.join("node_modules/.package-lock.json");
    let lock = project.dir.join("package-lock.json");
    let stale = match (modified(&installed), modified(&lock)) {
        (Some(installed), Some(lock)) => lock > installed,
        _ => true,
    };
    if stale {
        let verb = if lock.is_file() { "ci" } else { "install" };
        progress.run(
            Command::new("npm").current_dir(&project.dir).args([
                verb,
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
            ]),
            &format!("npm {verb}"),
        )?;
    }
    progress.run(
        Command::new("npm")
            .current_dir(&project.dir)
            .args(["run", "--silent", "build"]),
        "npm run build",
    )?;
    if !project.output().is_file() {
        bail!(
            "npm run build did not write {}: its \"build\" script must (asc ... -b build/{}.wasm)",
            project.output().display(),
            project.name
        );
    }
    Ok(())
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn build_go(project: &Project, progress: &Progress) -> anyhow::Result<()> {
    let version = Command::new("go").arg("version").output();
    let Ok(version) = version.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()) else {
        bail!(
            "go not found: the Go template needs Go 1.24 or newer (WASI reactors); install it \
             from the Go website, then `go mod tidy` and pwx build. pwx cannot install Go."
        );
    };
    // "go version go1.24.1 linux/amd64"
    let minor = version
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.strip_prefix("go1."))
        .and_then(|v| v.split('.').next())
        .and_then(|v| v.parse::<u32>().ok());
    match minor {
        Some(minor) if minor >= 24 => {}
        _ => bail!(
            "{} is too old or unknown: the Go template needs Go 1.24 or newer (go:wasmexport)",
            version.trim()
        ),
    }
    if !project.dir.join("go.sum").is_file() {
        bail!(
            "{} has no go.sum: run `go mod tidy` there first (it fetches proxy-wasm-go-sdk)",
            project.dir.display()
        );
    }
    std::fs::create_dir_all(project.dir.join("build"))?;
    progress.run(
        Command::new("go")
            .current_dir(&project.dir)
            .env("GOOS", "wasip1")
            .env("GOARCH", "wasm")
            .args(["build", "-buildmode=c-shared", "-o"])
            .arg(format!("build/{}.wasm", project.name))
            .arg("."),
        "GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared",
    )?;
    Ok(())
}

fn build_cpp(project: &Project, progress: &Progress) -> anyhow::Result<()> {
    let mut missing = Vec::new();
    match std::env::var_os("PROXY_WASM_CPP_SDK").map(PathBuf::from) {
        Some(sdk) if sdk.join("proxy_wasm_intrinsics.h").is_file() => {}
        Some(sdk) => missing.push(format!(
            "PROXY_WASM_CPP_SDK={} has no proxy_wasm_intrinsics.h: point it at a proxy-wasm-cpp-sdk checkout",
            sdk.display()
        )),
        None => missing.push(
            "the proxy-wasm C++ SDK: clone proxy-wasm-cpp-sdk, check out the commit in README.md, \
             export PROXY_WASM_CPP_SDK=<that directory>"
                .into(),
        ),
    }
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "/opt/wasi-sdk/bin/clang++".into());
    if !have(&cxx) {
        missing.push(format!(
            "a clang++ for wasm32-wasi ({cxx} not found): unpack wasi-sdk to /opt/wasi-sdk, or set CXX"
        ));
    }
    let sysroot =
        std::env::var("WASI_SYSROOT").unwrap_or_else(|_| "/opt/wasi-sdk/share/wasi-sysroot".into());
    let libcxx = ["include/c++/v1", "include/wasm32-wasi/c++/v1"]
        .iter()
        .any(|p| Path::new(&sysroot).join(p).is_dir());
    if !libcxx {
        missing.push(format!(
            "a WASI sysroot with libc++ ({sysroot} has no include/c++/v1): wasi-sdk ships one; set WASI_SYSROOT"
        ));
    }
    if !have("make") {
        missing.push("make (Debian: apt-get install make)".into());
    }
    if !missing.is_empty() {
        bail!(
            "the C++ toolchain is not ready; pwx cannot install it. Missing:\n  - {}",
            missing.join("\n  - ")
        );
    }
    progress.run(
        Command::new("make")
            .current_dir(&project.dir)
            .arg(format!("WASI_SYSROOT={sysroot}"))
            .arg(format!("CXX={cxx}")),
        "make",
    )?;
    Ok(())
}
