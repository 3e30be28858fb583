# Shared by the scripts in this folder: paths, tool locations, and small helpers. Source it; don't run it.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$ROOT/node_modules/.bin:$PATH"

# Pinned tool versions (toolchain.md). The wasm-bindgen CLI must equal the crate in Cargo.lock.
WORKER_BUILD_VERSION="0.8.7"
WASM_BINDGEN_VERSION="0.2.130"
WRANGLER_VERSION="4.86.0"

# worker-build would download wasm-bindgen and esbuild from the internet; point it at local ones.
export WASM_BINDGEN_BIN="$HOME/.cargo/bin/wasm-bindgen"
export ESBUILD_BIN="$ROOT/node_modules/.bin/esbuild"
# wrangler: no telemetry, no prompts, no colour codes in logs.
export WRANGLER_SEND_METRICS=false

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Prints seconds since the epoch, for timing steps.
now() { date +%s; }

# True when every tool the build and the tests need is present at the pinned version.
tools_ready() {
  rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown || return 1
  [ "$(worker-build --version 2>/dev/null)" = "$WORKER_BUILD_VERSION" ] || return 1
  [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" = "$WASM_BINDGEN_VERSION" ] || return 1
  [ "$("$ROOT/node_modules/.bin/wrangler" --version 2>/dev/null)" = "$WRANGLER_VERSION" ] || return 1
  [ -x "$ROOT/node_modules/.bin/wasm-opt" ] || return 1
  [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || return 1
}
