"""Grid search of the cold-start (kernel) predictor's settings on a development set, by few-shot RMSE.

    python benchmarks/tune_coldstart.py [--data benchmarks/data/dev_labels.csv] [--videos DIR ...]

Prints the best settings; scripts/make_default_checkpoint.py takes them. Report accuracy on other clips
(benchmarks/fewshot.py --data benchmarks/data/heldout_labels.csv), never on the ones tuned here.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mtclar.model.labeling import VideoLabeler  # noqa: E402
from mtclar.training.evaluate import embed_case, evaluate  # noqa: E402
from mtclar.training.sources import load_labelled_videos  # noqa: E402

GRID = {
    "similarity_temperature": [0.02, 0.05, 0.1, 0.2],
    "time_scale_s": [0.5, 1.0, 2.0, 4.0],
    "prior_weight": [(0.0, 0.0), (0.3, 0.0), (0.5, 0.0), (0.8, 0.0), (0.5, 0.2), (0.8, 0.3), (1.0, 0.0)],
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "data" / "dev_labels.csv")
    parser.add_argument("--videos", type=Path, action="append", default=[ROOT.parent / "shared" / "data" / "videos"])
    parser.add_argument("--support", nargs="+", default=["first:1", "every:8", "suggest:3"])
    parser.add_argument("--only", nargs="*", default=["single_face"], help="videos to tune on (by name)")
    args = parser.parse_args()

    videos = [v for v in load_labelled_videos(args.data, args.videos) if not args.only or v.name in args.only]
    labeler = VideoLabeler()
    cases = [embed_case(labeler, v) for v in videos]
    base = labeler.labeler.config
    results = []
    for temperature, time_scale, prior in itertools.product(*GRID.values()):
        kernel = replace(base.kernel, similarity_temperature=temperature, time_scale_s=time_scale, prior_weight=prior)
        labeler.labeler.config = replace(base, kernel=kernel)
        rows = [r for r in evaluate(labeler, cases, args.support) if r.method == "kernel"]
        rmse = float(np.mean([(r.pooled["valence"]["rmse"] + r.pooled["arousal"]["rmse"]) / 2 for r in rows]))
        results.append((rmse, {"similarity_temperature": temperature, "time_scale_s": time_scale,
                               "prior_weight": list(prior)}))
    results.sort(key=lambda r: r[0])
    print(f"tuned on {', '.join(v.name for v in videos)} with {' '.join(args.support)}; mean V/A RMSE:")
    for rmse, settings in results[:10]:
        print(f"  {rmse:.4f}  {settings}")
    print(json.dumps({"best": results[0][1], "rmse": results[0][0]}))


if __name__ == "__main__":
    main()
