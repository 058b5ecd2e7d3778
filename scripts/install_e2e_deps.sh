#!/usr/bin/env bash
# Everything the end-to-end tests (tests/e2e) need, for CI and for a fresh machine. Idempotent.
#   1. Debian's chromium (/usr/bin/chromium), through apt-get;
#   2. playwright-core from tests/e2e/browser/package-lock.json (npm ci; needs node >= 20);
#   3. Label Studio 1.23.2 in its own venv (scripts/install_label_studio.sh [VENV_DIR], default .venv-ls).
# Then: MTCLAR_REQUIRE_E2E=1 python -m pytest tests/e2e -m e2e
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BROWSER_DIR="$REPO_ROOT/tests/e2e/browser"
CHROMIUM="${MTCLAR_CHROMIUM:-/usr/bin/chromium}"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# 1. Chromium
if [ -x "$CHROMIUM" ]; then
    echo "chromium: $CHROMIUM already installed"
else
    echo "chromium: installing Debian's chromium with apt-get"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
    [ -x "$CHROMIUM" ] || { echo "error: apt-get installed chromium but $CHROMIUM is missing" >&2; exit 1; }
fi

# 2. playwright-core
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "error: node and npm are needed (node >= 20, for playwright-core)" >&2
    exit 1
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
    echo "error: node $(node --version) is too old; playwright-core needs node >= 20" >&2
    exit 1
fi
locked="$(node -p "require('$BROWSER_DIR/package-lock.json').packages['node_modules/playwright-core'].version")"
installed="$(node -p "try { require('$BROWSER_DIR/node_modules/playwright-core/package.json').version } catch { '' }")"
if [ "$installed" = "$locked" ]; then
    echo "playwright-core: $installed already installed in $BROWSER_DIR/node_modules"
else
    echo "playwright-core: npm ci in $BROWSER_DIR (locked $locked)"
    (cd "$BROWSER_DIR" && npm ci --no-audit --no-fund)
fi

# 3. Label Studio
"$REPO_ROOT/scripts/install_label_studio.sh" "$@"

echo "e2e dependencies ready: $("$CHROMIUM" --version 2>/dev/null | head -1), playwright-core $locked, label-studio 1.23.2"
