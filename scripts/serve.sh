#!/usr/bin/env bash
# One command: install what is missing, then serve the ML backend with the default model on :9090.
#   bash scripts/serve.sh [mtclar serve options, e.g. --port 9091 --dev]
# Settings come from the environment (README: LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY, MODEL_DIR, ...).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$REPO_ROOT/scripts/setup_venv.sh"
exec "${MTCLAR_VENV:-$REPO_ROOT/.venv}/bin/mtclar" serve "$@"
