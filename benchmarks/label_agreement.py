"""Inter-rater agreement of the two independent labelling passes, the truth (their mean) and the clip split.

    python benchmarks/label_agreement.py [--write]

Reads benchmarks/data/labels/pass1/*.csv and pass2/*.csv (protocol: ../shared/design/labelling.md), prints
per clip the CCC and RMSE between the passes for valence and arousal, and with --write writes
benchmarks/data/labels/truth.csv (video,frame,valence,arousal,unsure = mean of the passes; unsure if either
pass said so) and benchmarks/data/labels/split.csv. The split into development and held-out clips is drawn
once, by clip, with a fixed seed, before anything is tuned on the labels (a clip an earlier model was tuned
on is always development); an existing split.csv is never redrawn.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mtclar.model.metrics import ccc, rmse  # noqa: E402

LABELS = Path(__file__).resolve().parent / "data" / "labels"
SPLIT_SEED = 20261127
ALREADY_TUNED_ON = ("single_face",)  # the first cold start was tuned on it: never a held-out clip


def read_pass(folder: Path) -> dict[str, dict[int, tuple[float, float, int]]]:
    out: dict[str, dict[int, tuple[float, float, int]]] = {}
    for path in sorted(folder.glob("*.csv")):
        with open(path) as f:
            for row in csv.DictReader(f):
                out.setdefault(row["video"], {})[int(row["frame"])] = (float(row["valence"]), float(row["arousal"]),
                                                                       int(row.get("unsure") or 0))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="write truth.csv (and split.csv if absent)")
    args = parser.parse_args()
    first, second = read_pass(LABELS / "pass1"), read_pass(LABELS / "pass2")
    if set(first) != set(second):
        raise SystemExit(f"the passes label different clips: {sorted(set(first) ^ set(second))}")
    rows, truth, pooled = [], [], {"v1": [], "v2": [], "a1": [], "a2": []}
    for video in sorted(first):
        frames = sorted(first[video])
        if frames != sorted(second[video]):
            raise SystemExit(f"{video}: the passes label different frames")
        one = np.array([first[video][f][:2] for f in frames])
        two = np.array([second[video][f][:2] for f in frames])
        rows.append({"video": video, "frames": len(frames),
                     "valence_ccc": ccc(one[:, 0], two[:, 0]), "arousal_ccc": ccc(one[:, 1], two[:, 1]),
                     "valence_rmse": rmse(one[:, 0], two[:, 0]), "arousal_rmse": rmse(one[:, 1], two[:, 1]),
                     "valence_sd": float(np.mean([one[:, 0].std(), two[:, 0].std()])),
                     "arousal_sd": float(np.mean([one[:, 1].std(), two[:, 1].std()]))})
        for k, f in enumerate(frames):
            unsure = int(first[video][f][2] or second[video][f][2])
            truth.append((video, f, round(float((one[k, 0] + two[k, 0]) / 2), 3),
                          round(float((one[k, 1] + two[k, 1]) / 2), 3), unsure))
        pooled["v1"] += list(one[:, 0])
        pooled["v2"] += list(two[:, 0])
        pooled["a1"] += list(one[:, 1])
        pooled["a2"] += list(two[:, 1])
    p = {k: np.array(v) for k, v in pooled.items()}
    rows.append({"video": "POOLED", "frames": len(truth), "valence_ccc": ccc(p["v1"], p["v2"]),
                 "arousal_ccc": ccc(p["a1"], p["a2"]), "valence_rmse": rmse(p["v1"], p["v2"]),
                 "arousal_rmse": rmse(p["a1"], p["a2"]), "valence_sd": float(p["v1"].std()),
                 "arousal_sd": float(p["a1"].std())})

    split_path = LABELS / "split.csv"
    if split_path.exists():
        with open(split_path) as f:
            split = {row["video"]: row["set"] for row in csv.DictReader(f)}
    else:
        clips = [c for c in sorted(first) if c not in ALREADY_TUNED_ON]
        order = np.random.default_rng(SPLIT_SEED).permutation(len(clips))
        heldout = {clips[i] for i in order[: len(clips) // 2]}
        split = {c: ("heldout" if c in heldout else "dev") for c in sorted(first)}

    print("video | set | frames | V ccc | A ccc | V rmse | A rmse | V sd | A sd")
    for row in rows:
        print(f"{row['video']} | {split.get(row['video'], '')} | {row['frames']} | {row['valence_ccc']:.3f} | "
              f"{row['arousal_ccc']:.3f} | {row['valence_rmse']:.3f} | {row['arousal_rmse']:.3f} | "
              f"{row['valence_sd']:.3f} | {row['arousal_sd']:.3f}")
    print(json.dumps({"benchmark": "label_agreement", "rows": rows, "split": split}))
    if args.write:
        with open(LABELS / "truth.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["video", "frame", "valence", "arousal", "unsure"])
            writer.writerows(truth)
        if not split_path.exists():
            with open(split_path, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["video", "set"])
                writer.writerows(sorted(split.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
