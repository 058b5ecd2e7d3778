#!/usr/bin/env bash
# Install Label Studio 1.23.2 into its own virtual environment (used by the e2e tests).
#   scripts/install_label_studio.sh [VENV_DIR]     default: <repo>/.venv-ls
# Idempotent: does nothing when the venv already has label-studio 1.23.2.
#
# The installed version is read from the package metadata, NOT with `label-studio --version`: in 1.23.2
# that flag prints the version and then carries on to migrate ~/.local/share/label-studio and start a
# server on port 8080 (it never exits); `label-studio version` also migrates that default data dir first.
set -euo pipefail

LS_VERSION="1.23.2"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="${1:-$REPO_ROOT/.venv-ls}"
PYTHON="${PYTHON:-python3}"

installed_version() {
    "$VENV_DIR/bin/python" -c 'import importlib.metadata as m; print(m.version("label-studio"))' 2>/dev/null || true
}

if [ -x "$VENV_DIR/bin/label-studio" ]; then
    installed="$(installed_version)"
    if [ "$installed" = "$LS_VERSION" ]; then
        echo "label-studio $LS_VERSION already installed in $VENV_DIR"
        exit 0
    fi
    echo "label-studio in $VENV_DIR is not $LS_VERSION (got: ${installed:-nothing}); reinstalling"
fi

if [ ! -x "$VENV_DIR/bin/python" ]; then
    echo "creating venv $VENV_DIR with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV_DIR"
fi
"$VENV_DIR/bin/python" -m pip install --quiet "label-studio==$LS_VERSION"

version="$(installed_version)"
if [ "$version" != "$LS_VERSION" ] || [ ! -x "$VENV_DIR/bin/label-studio" ]; then
    echo "error: after install the venv has label-studio ${version:-nothing}, expected $LS_VERSION" >&2
    exit 1
fi
echo "installed label-studio $LS_VERSION in $VENV_DIR"
