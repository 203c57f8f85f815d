#!/usr/bin/env bash
# The author loop on a fresh machine: `pwx new demo --lang rust|assemblyscript`, `pwx build`,
# `pwx test` in a temporary directory, plus `cargo test` of the Rust template, and when the
# conformance venv has Envoy: `pwx test --envoy` of the Rust template (its cases on Envoy too,
# about two seconds) and `envoy --mode validate` of each generated envoy.yaml.
# Usage: scripts/author-loop.sh [PWX]   (default: builds and uses target/debug/pwx)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ $# -ge 1 ]]; then
  pwx="$(realpath "$1")"
else
  cargo build --quiet -p pwx --manifest-path "$repo/Cargo.toml"
  target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$repo/Cargo.toml" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
  pwx="$target_dir/debug/pwx"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
envoy="$repo/.venv/bin/envoy"
for lang in rust assemblyscript; do
  echo "== pwx new demo-$lang --lang $lang; pwx build; pwx test"
  (cd "$work" && "$pwx" new "demo-$lang" --lang "$lang" >/dev/null)
  on_envoy=()
  if [[ $lang == rust && -x $envoy ]]; then on_envoy=(--envoy --envoy-bin "$envoy"); fi
  (cd "$work/demo-$lang" && "$pwx" build && "$pwx" test --junit junit.xml "${on_envoy[@]}")
  if [[ $lang == rust ]]; then
    (cd "$work/demo-$lang" && cargo test --quiet)
  fi
  if [[ -x $envoy ]]; then
    (cd "$work/demo-$lang" && "$envoy" --mode validate -c envoy.yaml --log-level warn >/dev/null) \
      || { echo "author-loop: envoy rejects the generated envoy.yaml ($lang)" >&2; exit 1; }
    echo "envoy --mode validate: ok"
  fi
done
