"""What the editor's curve and suggestions cost per prediction: the curve's JSON size in the task data and the
time of labelling vs. choosing the K frames to label next, on one video with anchors at its start, middle, end.

    python benchmarks/curve.py [--video PATH] [--k 3 10]

Prints a table (and a JSON line).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mtclar.model.labeling import VideoLabeler  # noqa: E402
from mtclar_backend.curve import MAX_POINTS, build_curve  # noqa: E402
from mtclar_backend.label_configs import VIDEO_CURVE  # noqa: E402
from mtclar_backend.ls_format import parse_label_config  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=SHARED / "WolfgangLanger_Pexels.mp4")
    parser.add_argument("--k", type=int, nargs="+", default=[3, 10])
    args = parser.parse_args()
    setup = parse_label_config(VIDEO_CURVE)
    labeler = VideoLabeler()
    video = labeler.embed(args.video)
    n = video.n_frames
    anchors = {0: (-0.4, -0.2), n // 2: (0.2, 0.3), n - 1: (0.7, 0.5)}
    labeler.label(video, anchors)  # warm-up
    started = time.perf_counter()
    labels = labeler.label(video, anchors)
    label_ms = 1000 * (time.perf_counter() - started)
    curve = build_curve(setup.curve, labels, video.time_s, setup.valence.from_model, setup.arousal.from_model)
    size = len(json.dumps(curve))
    points = len(curve["time"])
    out = {"video": args.video.name, "frames": n, "label_ms": round(label_ms, 1), "curve_points": points,
           "curve_bytes": size, "bytes_per_point": round(size / points, 1),
           "bytes_at_cap": round(MAX_POINTS * size / points)}
    print(f"{args.video.name}: {n} frames, label {label_ms:.1f} ms; curve {points} points, {size} bytes "
          f"({size / points:.0f} B/point, about {out['bytes_at_cap'] / 1000:.0f} kB at the {MAX_POINTS}-point cap)")
    print(f"{'K':>4} {'suggest ms':>11}  frames")
    for k in args.k:
        started = time.perf_counter()
        frames = labeler.suggest(video, anchors, k)
        ms = 1000 * (time.perf_counter() - started)
        out[f"suggest_k{k}_ms"] = round(ms, 1)
        print(f"{k:>4} {ms:>11.1f}  {frames}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
