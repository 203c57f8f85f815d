#!/usr/bin/env bash
# Installs what building and testing pwx needs on a fresh Debian 12 machine. Run as root.
# Idempotent: a re-run on a machine that has everything only checks and returns within a second.
#
#   Rust target     wasm32-wasip1 (guest modules: fixtures, examples, conformance filters)
#   Debian          clang, lld, wasi-libc, libclang-rt-dev-wasm32 (C fixtures),
#                   docker-registry (pwx-oci tests)
#   Node/npm        expected to be present already (AssemblyScript fixtures); not installed here
set -euo pipefail

die() {
  echo "setup: error: $*" >&2
  exit 1
}
note() { echo "setup: $*" >&2; }

# --- Rust ------------------------------------------------------------------------------------
command -v rustup >/dev/null 2>&1 || die "rustup not found: install Rust with rustup first"
if rustup target list --installed | grep -qx wasm32-wasip1; then
  note "rust target wasm32-wasip1: present"
else
  note "rustup target add wasm32-wasip1"
  rustup target add wasm32-wasip1
fi

# --- Debian packages -------------------------------------------------------------------------
packages=(
  clang                  # C fixtures (Debian 12: clang 14)
  lld                    # wasm-ld
  wasi-libc              # WASI sysroot under /usr (include/wasm32-wasi, lib/wasm32-wasi)
  libclang-rt-dev-wasm32 # compiler-rt builtins for wasm32, linked by clang into every module
  docker-registry        # local OCI registry for pwx-oci tests
  curl                   # run_tls: curl --cacert over HTTP/1.1 and --http2 through pwx run
)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  note "debian packages: present (${packages[*]})"
else
  [[ $(id -u) -eq 0 ]] || die "need root to install: ${missing[*]} (re-run as root: sudo $0)"
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script supports Debian 12; install ${missing[*]} by hand"
  note "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- Node / npm ------------------------------------------------------------------------------
for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 \
    || die "$tool not found: the AssemblyScript fixtures need Node.js and npm (apt-get install -y nodejs npm)"
done
note "node $(node --version), npm $(npm --version): present"
note "done; now run scripts/build-fixtures.sh"
