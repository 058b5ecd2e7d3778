"""Simulated annotator: CCC against the number of labelled frames, when the frames are the backend's suggestions
(expected error reduction) or uniformly spaced, with the model or with linear interpolation between them.

    python benchmarks/suggest.py [--checkpoint DIR] [--clips DIR] [--split dev|heldout] [--max 20]
    python benchmarks/suggest.py --split dev --start diverse --exponent 1     # variants, development clips

Data and loading as benchmarks/fewshot.py (truth.csv, split.csv, cached embeddings). Per clip the annotator
labels the frame the backend suggests (its label read from the truth), one at a time; only labelled,
non-``unsure`` frames with a face can be suggested, and the expected error that the suggestion cuts is counted
over the clip's face frames inside its labelled range (the part of the video that was annotated). After n
labelled frames the model and interpolation are scored on the clip's other labelled frames; CCC is pooled over
the clips of a split. Uniform: the labelled frame nearest each time t0 + (i + 1/2) T / n over the labelled
range (re-chosen for every n, so uniform sets are not nested; the suggestions are).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fewshot import CACHE, Clip, fetch_clips, load_clips, weighted_ccc  # noqa: E402

from mtclar.model.circumplex import expected_va  # noqa: E402
from mtclar.model.fewshot import FewShotLabeler  # noqa: E402
from mtclar.model.labeling import VideoLabeler  # noqa: E402
from mtclar.model.support import STARTS, ErrorModel, activity_time, suggest_frames  # noqa: E402

SCHEMES = ("suggest+model", "uniform+model", "uniform+interpolation", "suggest+interpolation")
TABLE_COUNTS = (1, 2, 3, 5, 8, 12, 20)
GOALS = {"v": 0.9, "a": 0.8}


def uniform(clip: Clip, n: int) -> np.ndarray:
    """``n`` labelled frames evenly spread in time over the labelled range (by rank if times collide)."""
    t = clip.features.time_s[clip.candidates]
    grid = t[0] + (np.arange(n) + 0.5) * (t[-1] - t[0]) / n
    chosen = np.unique(clip.candidates[np.abs(t[None, :] - grid[:, None]).argmin(axis=1)])
    if chosen.size < n:
        chosen = clip.candidates[np.round((np.arange(n) + 0.5) * len(t) / n - 0.5).astype(int)]
    return chosen


def clock(clip: Clip, activity: str, share: float) -> np.ndarray:
    f = clip.features
    if activity == "none":
        return f.time_s
    signal = f.embeddings if activity == "embedding" else expected_va(f.expression_probs, f.expression_classes)
    return activity_time(f.time_s, signal, f.has_face, share)


def suggestions(clip: Clip, labeler: FewShotLabeler, n: int, start: str, exponent: float, activity: str = "none",
                share: float = 0.0) -> np.ndarray:
    """The backend's first ``n`` suggestions for the clip, in the order the annotator labels them."""
    floor = labeler.config.floor
    model = ErrorModel(floor.interval_power, floor.interval_min_distance_s, exponent)
    lo, hi = clip.label_range
    scored = np.flatnonzero(clip.features.has_face[lo:hi + 1]) + lo
    return suggest_frames(n, clock(clip, activity, share), clip.features.has_face, np.zeros(0, dtype=int), model,
                          candidates=clip.candidates, scored=scored, embeddings=clip.features.embeddings, start=start)


def score(labeler: FewShotLabeler, clip: Clip, anchors: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, truth) on the clip's labelled frames that are not anchors."""
    given = {int(r): tuple(clip.truth[r]) for r in anchors}
    labels = labeler.label(clip.features, given) if method == "model" else labeler.label(clip.features, given,
                                                                                           method=method)
    queries = clip.candidates[~np.isin(clip.candidates, anchors)]
    return labels.values[queries], clip.truth[queries]


def simulate(labeler: FewShotLabeler, clips: list[Clip], most: int, start: str, exponent: float,
             activity: str = "none", share: float = 0.0) -> dict:
    """{(split, scheme, n): (pred list, truth list)} for n = 1..most."""
    pools: dict = defaultdict(lambda: ([], []))
    for clip in tqdm(clips, desc="annotate", file=sys.stderr):
        top = min(most, clip.candidates.size - 1)
        order = suggestions(clip, labeler, top, start, exponent, activity, share)
        for n in range(1, top + 1):
            sets = {"suggest": order[:n], "uniform": uniform(clip, n)}
            for scheme in SCHEMES:
                frames, method = scheme.split("+")
                pred, true = score(labeler, clip, sets[frames], method)
                pools[(clip.split, scheme, n)][0].append(pred)
                pools[(clip.split, scheme, n)][1].append(true)
    return {key: pooled_ccc(*value) for key, value in pools.items()}


def pooled_ccc(preds: list[np.ndarray], truths: list[np.ndarray]) -> dict[str, float]:
    pred, true = np.concatenate(preds), np.concatenate(truths)
    weight = np.ones(len(pred))
    return {d: weighted_ccc(pred[:, i], true[:, i], weight) for i, d in enumerate("va")}


def frames_to_reach(scores: dict, split: str, scheme: str, most: int) -> dict[str, int | None]:
    """The fewest labelled frames per clip at which the pooled CCC reaches each goal (None: not by ``most``)."""
    out: dict[str, int | None] = {}
    for d, goal in GOALS.items():
        reached = [n for n in range(1, most + 1)
                   if (split, scheme, n) in scores and scores[(split, scheme, n)][d] >= goal]
        out[d] = reached[0] if reached else None
    return out


def table(scores: dict, split: str, clips: list[Clip], most: int) -> str:
    names = ", ".join(c.name for c in clips if c.split == split)
    lines = [f"### {split} ({names}): pooled CCC V / A", "",
             "| labelled frames per clip | " + " | ".join(SCHEMES) + " |", "|---|" + "---|" * len(SCHEMES)]
    for n in (c for c in TABLE_COUNTS if c <= most):
        cells = [f"{scores[(split, s, n)]['v']:.3f} / {scores[(split, s, n)]['a']:.3f}"
                 if (split, s, n) in scores else "" for s in SCHEMES]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    reach = [frames_to_reach(scores, split, s, most) for s in SCHEMES]
    lines.append(f"| frames to V >= {GOALS['v']} / A >= {GOALS['a']} | "
                 + " | ".join(f"{r['v'] or f'>{most}'} / {r['a'] or f'>{most}'}" for r in reach) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--clips", type=Path, default=None, help="clip folder (default: fetched into the cache)")
    parser.add_argument("--embeddings", type=Path, default=CACHE / "embeddings")
    parser.add_argument("--split", choices=("dev", "heldout"), default=None)
    parser.add_argument("--max", type=int, default=20, help="most labelled frames per clip")
    parser.add_argument("--start", choices=STARTS, default="error", help="first suggestion with no labels yet")
    parser.add_argument("--exponent", type=float, default=1.0, help="expected error = half-width ** exponent")
    parser.add_argument("--activity", choices=("none", "embedding", "prior"), default="none",
                        help="suggest on a clock that runs faster where this signal of the face changes")
    parser.add_argument("--share", type=float, default=0.0, help="share of the activity clock (0..1)")
    args = parser.parse_args()

    folder = args.clips or fetch_clips(None)
    video_labeler = VideoLabeler(args.checkpoint, cache_dir=args.embeddings)
    labeler = video_labeler.labeler
    clips = load_clips(video_labeler, folder, args.split)
    scores = simulate(labeler, clips, args.max, args.start, args.exponent, args.activity, args.share)
    print(f"model: {video_labeler.model_version}, method {labeler.method}, strategy {labeler.config.strategy}; "
          f"suggestions: start {args.start}, exponent {args.exponent}\n")
    splits = [s for s in ("heldout", "dev") if any(c.split == s for c in clips)]
    for split in splits:
        print(table(scores, split, clips, args.max) + "\n")
    summary = {"start": args.start, "exponent": args.exponent, "max": args.max, "splits": {
        split: {scheme: {"ccc": {str(n): scores[(split, scheme, n)] for n in range(1, args.max + 1)
                                 if (split, scheme, n) in scores},
                         "frames_to_reach": frames_to_reach(scores, split, scheme, args.max)} for scheme in SCHEMES}
        for split in splits}}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
