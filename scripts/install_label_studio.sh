#!/usr/bin/env bash
# Install Label Studio 1.23.2 into its own virtual environment (used by the e2e tests).
#   scripts/install_label_studio.sh [VENV_DIR]     default: <repo>/.venv-ls
# Idempotent: does nothing when VENV_DIR/bin/label-studio already reports 1.23.2.
set -euo pipefail

LS_VERSION="1.23.2"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="${1:-$REPO_ROOT/.venv-ls}"
PYTHON="${PYTHON:-python3}"

if [ -x "$VENV_DIR/bin/label-studio" ]; then
    installed="$("$VENV_DIR/bin/label-studio" --version 2>/dev/null || true)"
    if grep -q "$LS_VERSION" <<<"$installed"; then
        echo "label-studio $LS_VERSION already installed in $VENV_DIR"
        exit 0
    fi
    echo "label-studio in $VENV_DIR is not $LS_VERSION (got: ${installed:-nothing}); reinstalling"
fi

if [ ! -x "$VENV_DIR/bin/python" ]; then
    echo "creating venv $VENV_DIR with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV_DIR"
fi
"$VENV_DIR/bin/python" -m pip install --quiet --upgrade pip
"$VENV_DIR/bin/python" -m pip install --quiet "label-studio==$LS_VERSION"

version="$("$VENV_DIR/bin/label-studio" --version 2>/dev/null || true)"
if ! grep -q "$LS_VERSION" <<<"$version"; then
    echo "error: label-studio --version after install says: ${version:-nothing}" >&2
    exit 1
fi
echo "installed label-studio $LS_VERSION in $VENV_DIR"
