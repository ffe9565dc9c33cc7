#!/usr/bin/env bash
# Browser test of the operator dashboard: Debian's Chromium + playwright-core
# (no browser download), keel and the fake upstream built in release mode.
# Usage: bash tests/browser/run.sh   (or `make test-browser`)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if [ ! -x /usr/bin/chromium ]; then
  echo "run.sh: /usr/bin/chromium missing, installing Debian's chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq chromium
fi

if ! command -v redis-server >/dev/null; then
  echo "run.sh: redis-server missing, installing Debian's redis-server" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq redis-server
fi

command -v node >/dev/null || { echo "run.sh: node is required (Node.js 20+)" >&2; exit 1; }

cd "$here"
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund

cd "$root"
"${CARGO:-cargo}" build --release --bin keel --bin fake_llm

target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac

KEEL_BIN="$target/release/keel" \
FAKE_LLM_BIN="$target/release/fake_llm" \
  node "$here/dashboard.mjs"
