#!/usr/bin/env bash
# Builds every guest (wasm) module of the repository into target/fixtures/<name>.wasm:
#
#   Rust       every workspace package under fixtures/rust/*, examples/*, conformance/filters/*
#              with crate-type "cdylib"      -> <package-name>.wasm   (one cargo invocation)
#   AS         fixtures/assemblyscript/<dir>  -> as-<dir>.wasm        (npm ci, then `npm run build`,
#              examples/<dir> with package.json -> <dir>.wasm   which must write build/filter.wasm)
#   C          fixtures/c/<dir>/*.c           -> c-<dir>.wasm         (Debian clang + wasi-libc)
#
# Usage: scripts/build-fixtures.sh [rust] [as] [c]     (no argument = all three)
#
# Idempotent and cheap when nothing changed: cargo decides for Rust, timestamps decide for
# AssemblyScript and C, and an output file is only replaced when its bytes change. The output
# directory is <cargo target dir>/fixtures (target/fixtures unless CARGO_TARGET_DIR is set), or
# PWX_FIXTURES_DIR. Prerequisites are installed by scripts/setup.sh.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

die() {
  echo "build-fixtures: error: $*" >&2
  exit 1
}
note() { echo "build-fixtures: $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }
setup_hint="run scripts/setup.sh as root"

# --- what to build ---------------------------------------------------------------------------
want_rust=0 want_as=0 want_c=0
[[ $# -eq 0 ]] && set -- rust as c
for arg in "$@"; do
  case "$arg" in
    rust) want_rust=1 ;;
    as) want_as=1 ;;
    c) want_c=1 ;;
    -h | --help)
      sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown argument '$arg' (expected: rust, as, c)" ;;
  esac
done

# --- prerequisites that everything needs -----------------------------------------------------
have cargo || die "cargo not found: install Rust (rustup) first"
have python3 || die "python3 not found (needed to read cargo metadata): apt-get install -y python3"

metadata="$(cargo metadata --format-version 1 --no-deps)" \
  || die "cargo metadata failed: is $repo/Cargo.toml a valid workspace?"
target_dir="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' <<<"$metadata")" \
  || die "python3 could not read cargo metadata (is python3 working?)"
out_dir="${PWX_FIXTURES_DIR:-$target_dir/fixtures}"
mkdir -p "$out_dir"

# One build at a time per output directory (tests may call this script in parallel).
exec 9>"$out_dir/.lock"
if have flock; then
  flock 9
fi

# install_output SRC NAME: copy SRC to $out_dir/NAME atomically, only if the bytes differ.
built=()
install_output() {
  local src="$1" dest="$out_dir/$2"
  [[ -s "$src" ]] || die "expected build output $src is missing or empty"
  if ! cmp -s "$src" "$dest" 2>/dev/null; then
    cp "$src" "$dest.tmp.$$"
    mv -f "$dest.tmp.$$" "$dest"
  fi
  built+=("$dest")
}

# up_to_date OUTPUT INPUT...: true if OUTPUT exists and no INPUT (file or directory tree) is newer.
up_to_date() {
  local out="$1"
  shift
  [[ -e "$out" ]] || return 1
  [[ -z "$(find "$@" -newer "$out" -print -quit 2>/dev/null)" ]]
}

# --- Rust ------------------------------------------------------------------------------------
build_rust() {
  local sysroot
  sysroot="$(rustc --print sysroot)"
  if [[ ! -d "$sysroot/lib/rustlib/wasm32-wasip1" ]]; then
    die "the Rust target wasm32-wasip1 is not installed: rustup target add wasm32-wasip1 ($setup_hint)"
  fi

  # Lines "package<TAB>library file stem" for each cdylib package in the guest folders; dies on
  # a guest folder with a Cargo.toml that is not a workspace member.
  local listing
  listing="$(REPO="$repo" python3 -c '
import json, os, sys, glob
repo = os.environ["REPO"]
meta = json.load(sys.stdin)
roots = ("fixtures/rust/", "examples/", "conformance/filters/")
members = {}
for p in meta["packages"]:
    rel = os.path.relpath(os.path.dirname(p["manifest_path"]), repo) + "/"
    members[rel] = p
    if not rel.startswith(roots):
        continue
    for t in p["targets"]:
        if "cdylib" in t["crate_types"]:
            print(p["name"] + "\t" + t["name"].replace("-", "_"))
stray = [
    os.path.relpath(os.path.dirname(m), repo) + "/"
    for r in roots for m in glob.glob(os.path.join(repo, r, "*", "Cargo.toml"))
]
stray = [s for s in stray if s not in members]
if stray:
    sys.exit("not workspace members (add them to [workspace] members in Cargo.toml): " + ", ".join(stray))
' <<<"$metadata")" || die "discovering Rust guest crates failed (see above)"

  [[ -n "$listing" ]] || die "no cdylib packages found under fixtures/rust, examples or conformance/filters"
  local -a args=() pkgs=() stems=()
  local pkg stem
  while IFS=$'\t' read -r pkg stem; do
    args+=(-p "$pkg")
    pkgs+=("$pkg")
    stems+=("$stem")
  done <<<"$listing"

  cargo build --quiet --profile wasm --target wasm32-wasip1 "${args[@]}" \
    || die "cargo build of the Rust guest crates failed (see above)"
  local i
  for i in "${!pkgs[@]}"; do
    install_output "$target_dir/wasm32-wasip1/wasm/${stems[$i]}.wasm" "${pkgs[$i]}.wasm"
  done
}

# --- AssemblyScript --------------------------------------------------------------------------
build_as() {
  local dir name
  for dir in fixtures/assemblyscript/*/ examples/*/; do
    dir="${dir%/}"
    [[ -f "$dir/package.json" ]] || continue
    # Fixtures get an "as-" prefix; examples keep their directory name (already as-*).
    case "$dir" in
      examples/*) name="$(basename "$dir").wasm" ;;
      *) name="as-$(basename "$dir").wasm" ;;
    esac
    have node || die "node not found (needed for $dir): apt-get install -y nodejs npm"
    have npm || die "npm not found (needed for $dir): apt-get install -y npm"
    [[ -f "$dir/package-lock.json" ]] || die "$dir has no package-lock.json: run 'npm install' in it and commit the lock file"
    if ! up_to_date "$dir/node_modules/.package-lock.json" "$dir/package.json" "$dir/package-lock.json"; then
      note "npm ci in $dir"
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2) \
        || die "npm ci failed in $dir (is the npm registry reachable? is node >= 12?)"
    fi
    local out="$dir/build/filter.wasm"
    if ! up_to_date "$out" "$dir/assembly" "$dir/package.json" "$dir/package-lock.json" "$dir"/asconfig.json; then
      note "npm run build in $dir"
      (cd "$dir" && npm run --silent build >&2) || die "AssemblyScript build failed in $dir (see above)"
    fi
    install_output "$out" "$name"
  done
}

# --- C ---------------------------------------------------------------------------------------
build_c() {
  local dir name
  local -a sources
  for dir in fixtures/c/*/; do
    dir="${dir%/}"
    sources=("$dir"/*.c)
    [[ -e "${sources[0]}" ]] || continue
    name="c-$(basename "$dir").wasm"
    local out="$out_dir/$name"
    if up_to_date "$out" "$dir" "${BASH_SOURCE[0]}"; then
      built+=("$out")
      continue
    fi
    have clang || die "clang not found (needed for $dir): apt-get install -y clang lld wasi-libc libclang-rt-dev-wasm32 ($setup_hint)"
    have wasm-ld || die "wasm-ld not found (needed for $dir): apt-get install -y lld ($setup_hint)"
    [[ -f /usr/include/wasm32-wasi/stdio.h ]] \
      || die "the WASI sysroot is missing (/usr/include/wasm32-wasi): apt-get install -y wasi-libc ($setup_hint)"
    note "clang $dir -> $name"
    # A reactor (exports _initialize) that exports libc's malloc, like the C++ SDK's modules.
    clang --target=wasm32-wasi --sysroot=/usr -O2 -mexec-model=reactor \
      -Wall -Wextra -Wl,--export=malloc -Wl,--strip-debug \
      -o "$out.tmp.$$" "${sources[@]}" \
      || die "clang failed for $dir; if it cannot find libclang_rt.builtins-wasm32.a: apt-get install -y libclang-rt-dev-wasm32 ($setup_hint)"
    mv -f "$out.tmp.$$" "$out"
    built+=("$out")
  done
}

[[ $want_rust -eq 1 ]] && build_rust
[[ $want_as -eq 1 ]] && build_as
[[ $want_c -eq 1 ]] && build_c

for f in "${built[@]}"; do
  echo "$f"
done
