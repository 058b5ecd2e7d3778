"""Few-shot accuracy on the labelled clips: the model (interpolation floor + validated correction) against
linear interpolation and hold-last, with smoothness and calibration of its 80% interval.

    python benchmarks/fewshot.py [--checkpoint DIR] [--clips DIR] [--per-clip] [--json-only]
    python benchmarks/fewshot.py --tune          # grid of the fallback defaults, development clips ONLY
    python benchmarks/fewshot.py --pipeline '{"follow": {"crop": 2}}'   # other face-pipeline settings

Data: benchmarks/data/labels/truth.csv (mean of two independent annotators; ``unsure`` frames are neither
anchors nor scored), split by clip in benchmarks/data/labels/split.csv (decided before any tuning); the clips
are fetched by benchmarks/data/fetch_label_clips.sh and embedded once with the checkpoint (cached in
~/.cache/mtclar/embeddings).

Anchors: every 0.5 / 1 / 2 / 5 / 10 s, the first labelled frame only, and 1 s runs of consecutive labelled
frames every 5 s. "Every X s": the labelled frame nearest each time t0 + k X; every phase t0 (each labelled
frame in the first X s, at most --phases of them evenly spread) is run, and a clip's phases are pooled with
weight 1 / (its number of phases), so every clip counts its frames once. Scored: the labelled, face-bearing,
non-anchor frames. CCC is pooled over the clips of a split (and per clip with --per-clip).
Columns: ``w`` the mean correction weight chosen (V/A); ``jit`` mean |change per frame| of the model's curve
over every frame of the labelled range (x100), beside the labels' (``lab``, change between labelled frames
divided by their distance) and interpolation's (``int``); ``cov`` share of scored labels inside the 80%
interval (V/A); ``rho`` Spearman correlation of the uncertainty with |error| (mean of V and A).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mtclar.model.face import FacePipeline, PipelineConfig  # noqa: E402
from mtclar.model.fewshot import FewShotLabeler, FrameFeatures  # noqa: E402
from mtclar.model.labeling import VideoLabeler  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
LABELS = DATA / "labels"
CACHE = Path(os.environ.get("MTCLAR_CACHE_DIR", Path.home() / ".cache" / "mtclar"))
METHODS = ("model", "interpolation", "hold-last")
CONFIGS = ("every 0.5 s", "every 1 s", "every 2 s", "every 5 s", "every 10 s", "first frame", "1 s runs / 5 s")
SPACING = {"every 0.5 s": 0.5, "every 1 s": 1.0, "every 2 s": 2.0, "every 5 s": 5.0, "every 10 s": 10.0}


@dataclass
class Clip:
    name: str
    split: str
    features: FrameFeatures
    candidates: np.ndarray  # labelled rows with a face, not unsure, in time order
    truth: np.ndarray  # (N, 2), NaN where no (usable) label
    label_range: tuple[int, int]


# -- data ---------------------------------------------------------------------------------------------------


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def fetch_clips(dest: Path | None) -> Path:
    command = ["bash", str(DATA / "fetch_label_clips.sh")] + ([str(dest)] if dest else [])
    return Path(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])


def load_clips(labeler: VideoLabeler, folder: Path, only_split: str | None) -> list[Clip]:
    split = {r["video"]: r["set"] for r in read_csv(LABELS / "split.csv")}
    labels: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in read_csv(LABELS / "truth.csv"):
        labels[row["video"]].append(row)
    clips = []
    for name in tqdm(sorted(labels), desc="embed clips", file=sys.stderr):
        if only_split and split[name] != only_split:
            continue
        embeddings = labeler.embed(folder / f"{name}.mp4")
        features = labeler.features(embeddings)
        truth = np.full((features.n, 2), np.nan)
        frames = [int(r["frame"]) for r in labels[name]]
        for row in labels[name]:
            frame = int(row["frame"])
            if frame < features.n and row["unsure"] in ("0", ""):
                truth[frame] = float(row["valence"]), float(row["arousal"])
        usable = np.flatnonzero(np.isfinite(truth[:, 0]) & features.has_face)
        clips.append(Clip(name, split[name], features, usable, truth, (min(frames), min(max(frames), features.n - 1))))
    return clips


# -- anchor sets --------------------------------------------------------------------------------------------


def phases(n: int, limit: int) -> list[int]:
    return sorted(set(np.linspace(0, n - 1, min(n, limit)).round().astype(int).tolist())) if n else []


def every_seconds(clip: Clip, spacing: float, limit: int) -> list[np.ndarray]:
    t = clip.features.time_s[clip.candidates]
    out = []
    for start in phases(int(np.sum(t < t[0] + spacing)), limit):
        grid = np.arange(t[start], t[-1] + 1e-9, spacing)
        nearest = np.abs(t[None, :] - grid[:, None]).argmin(axis=1)
        out.append(np.unique(clip.candidates[nearest]))
    return out


def runs(clip: Clip, run_s: float, spacing: float, limit: int) -> list[np.ndarray]:
    t = clip.features.time_s[clip.candidates]
    out = []
    for start in phases(int(np.sum(t < t[0] + spacing)), limit):
        offset = (t - t[start]) % spacing
        out.append(clip.candidates[(t >= t[start]) & (offset < run_s)])
    return out


def anchor_sets(clip: Clip, config: str, limit: int) -> list[np.ndarray]:
    if config in SPACING:
        return every_seconds(clip, SPACING[config], limit)
    if config == "first frame":
        return [clip.candidates[:1]]
    return runs(clip, 1.0, 5.0, limit)


# -- scoring ------------------------------------------------------------------------------------------------


def weighted_ccc(pred: np.ndarray, true: np.ndarray, weight: np.ndarray) -> float:
    w = weight / weight.sum()
    mp, mt = w @ pred, w @ true
    vp, vt = w @ (pred - mp) ** 2, w @ (true - mt) ** 2
    denominator = vp + vt + (mp - mt) ** 2
    return 1.0 if denominator == 0 else float(2 * (w @ ((pred - mp) * (true - mt))) / denominator)


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 0, ties sharing their mean rank."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + ends - 1) / 2)[inverse]


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(ranks(x), ranks(y))[0, 1])


@dataclass
class Pool:
    """Everything scored for one (split or clip, anchor config, method)."""

    pred: list[np.ndarray] = field(default_factory=list)
    true: list[np.ndarray] = field(default_factory=list)
    weight: list[np.ndarray] = field(default_factory=list)
    inside: list[np.ndarray] = field(default_factory=list)
    uncertainty: list[np.ndarray] = field(default_factory=list)
    jitter: list[tuple[float, float]] = field(default_factory=list)  # (value, weight)
    correction_weight: list[tuple[np.ndarray, float]] = field(default_factory=list)

    def scores(self) -> dict:
        if not self.pred:
            return {}
        pred, true, w = np.concatenate(self.pred), np.concatenate(self.true), np.concatenate(self.weight)
        out = {f"ccc_{d}": weighted_ccc(pred[:, i], true[:, i], w) for i, d in enumerate(("v", "a"))}
        values, weights = (np.array(x) for x in zip(*self.jitter, strict=True))
        ok = np.isfinite(values)
        out["jitter"] = float(np.average(values[ok], weights=weights[ok])) if ok.any() else float("nan")
        if self.inside:
            inside = np.concatenate(self.inside)
            out["cover_v"], out["cover_a"] = (float(np.average(inside[:, i], weights=w)) for i in range(2))
            error = np.abs(pred - true).mean(axis=1)
            out["rho"] = spearman(np.concatenate(self.uncertainty), error)
            ws = np.array([c for c, _ in self.correction_weight])
            out["w_v"], out["w_a"] = (float(np.average(ws[:, i], weights=[x for _, x in self.correction_weight]))
                                      for i in range(2))
        return out


def curve_jitter(values: np.ndarray, lo: int, hi: int) -> float:
    segment = values[lo:hi + 1]
    steps = np.abs(np.diff(segment, axis=0))
    return float(np.nanmean(steps)) if np.isfinite(steps).any() else float("nan")


def label_jitter(clip: Clip) -> float:
    rows = np.flatnonzero(np.isfinite(clip.truth[:, 0]))
    return float(np.mean(np.abs(np.diff(clip.truth[rows], axis=0)) / np.diff(rows)[:, None]))


def run_method(labeler: FewShotLabeler, clip: Clip, anchors: np.ndarray, method: str):
    given = {int(r): tuple(clip.truth[r]) for r in anchors}
    if method == "model":
        return labeler.label(clip.features, given)
    return labeler.label(clip.features, given, method=method)


def score_clip(labeler: FewShotLabeler, clip: Clip, config: str, limit: int, pools: dict) -> None:
    sets = anchor_sets(clip, config, limit)
    for anchors in sets:
        queries = clip.candidates[~np.isin(clip.candidates, anchors)]
        if queries.size == 0:
            continue
        weight = np.full(queries.size, 1 / len(sets))
        for method in METHODS:
            labels = run_method(labeler, clip, anchors, method)
            pred, true = labels.values[queries], clip.truth[queries]
            for key in ((clip.split, config, method), (clip.name, config, method)):
                pool = pools[key]
                pool.pred.append(pred)
                pool.true.append(true)
                pool.weight.append(weight)
                pool.jitter.append((curve_jitter(labels.values, *clip.label_range), 1 / len(sets)))
                if method == "model":
                    low = np.stack([labels.valence_low, labels.arousal_low], axis=1)[queries]
                    high = np.stack([labels.valence_high, labels.arousal_high], axis=1)[queries]
                    pool.inside.append((low <= true + 1e-9) & (true <= high + 1e-9))
                    pool.uncertainty.append(labels.uncertainty[queries])
                    pool.correction_weight.append((np.asarray(labels.details["correction_weight"]), 1 / len(sets)))


def evaluate(labeler: FewShotLabeler, clips: list[Clip], limit: int, desc: str = "evaluate") -> dict:
    pools: dict = defaultdict(Pool)
    for clip, config in tqdm(list(itertools.product(clips, CONFIGS)), desc=desc, file=sys.stderr):
        score_clip(labeler, clip, config, limit, pools)
    return {key: pool.scores() for key, pool in pools.items()}


# -- output -------------------------------------------------------------------------------------------------


def fmt(x: float | None, digits: int = 3) -> str:
    return "" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def split_table(scores: dict, split: str, clips: list[Clip]) -> str:
    label_jit = np.mean([label_jitter(c) for c in clips if c.split == split]) * 100
    lines = [f"### {split} ({', '.join(c.name for c in clips if c.split == split)})", "",
             "| anchors | hold V/A | interp V/A | model V/A | model-interp V/A | w V/A | jit model/int/lab x100 "
             "| cov V/A | rho |", "|---|---|---|---|---|---|---|---|---|"]
    for config in CONFIGS:
        m, i, h = (scores.get((split, config, method), {}) for method in METHODS)
        if not m:
            continue
        lines.append(
            f"| {config} | {fmt(h['ccc_v'])} / {fmt(h['ccc_a'])} | {fmt(i['ccc_v'])} / {fmt(i['ccc_a'])} "
            f"| **{fmt(m['ccc_v'])} / {fmt(m['ccc_a'])}** "
            f"| {m['ccc_v'] - i['ccc_v']:+.3f} / {m['ccc_a'] - i['ccc_a']:+.3f} "
            f"| {fmt(m['w_v'], 2)} / {fmt(m['w_a'], 2)} "
            f"| {fmt(m['jitter'] * 100, 2)} / {fmt(i['jitter'] * 100, 2)} / {label_jit:.2f} "
            f"| {fmt(m['cover_v'], 2)} / {fmt(m['cover_a'], 2)} | {fmt(m['rho'], 2)} |")
    return "\n".join(lines)


def clip_table(scores: dict, clips: list[Clip]) -> str:
    lines = ["### per clip: model V/A (interpolation V/A)", "",
             "| clip | set | " + " | ".join(CONFIGS) + " |", "|---|---|" + "---|" * len(CONFIGS)]
    for clip in sorted(clips, key=lambda c: (c.split, c.name)):
        cells = []
        for config in CONFIGS:
            m, i = scores.get((clip.name, config, "model"), {}), scores.get((clip.name, config, "interpolation"), {})
            cells.append(f"{fmt(m.get('ccc_v'), 2)}/{fmt(m.get('ccc_a'), 2)} ({fmt(i.get('ccc_v'), 2)}/"
                         f"{fmt(i.get('ccc_a'), 2)})" if m else "")
        lines.append(f"| {clip.name} | {clip.split} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def json_summary(scores: dict, labeler: FewShotLabeler) -> dict:
    out: dict = {"floor": labeler.config.floor.__dict__, "splits": {}}
    for (where, config, method), value in scores.items():
        out["splits"].setdefault(where, {}).setdefault(config, {})[method] = value
    return out


# -- tuning the fallback defaults (development clips only) --------------------------------------------------

WEIGHTS = [(v, a) for v in (0.0, 0.25, 0.5, 0.75, 1.0) for a in (0.0, 0.25, 0.5)]
GAINS = [(v, a) for v in (0.05, 0.1, 0.15) for a in (0.05, 0.1, 0.15)]  # gains of the face signals (V, A)
INTERVALS = [(power, scale) for power in (0.25, 0.35, 0.5) for scale in (0.2, 0.25, 0.3)]


def _rank_by_gain(labeler: FewShotLabeler, dev: list[Clip], limit: int, name: str, grid: list) -> None:
    """Print the five ``name`` values of ``grid`` with the best mean CCC gain over interpolation on dev."""
    results = []
    for value in tqdm(grid, desc=f"tune {name}", file=sys.stderr):
        scores = _dev_scores(labeler, dev, limit, **{name: value})
        gains = [scores[("dev", c, "model")][f"ccc_{d}"] - scores[("dev", c, "interpolation")][f"ccc_{d}"]
                 for c in CONFIGS for d in "va"]
        first = scores[("dev", "first frame", "model")]
        results.append((float(np.mean(gains)), value, first["ccc_v"], first["ccc_a"]))
    for gain, value, fv, fa in sorted(results, reverse=True)[:5]:
        print(f"{name}={value}: mean CCC gain over interpolation {gain:+.4f}; first frame {fv:.3f}/{fa:.3f}")


def tune(labeler: FewShotLabeler, clips: list[Clip], limit: int) -> None:
    """Fallback correction weight and the face signals' gains by mean CCC gain over interpolation, then the
    interval's power and default scale by mean |coverage - 0.8|, all on the development clips (the other
    settings stay as configured)."""
    dev = [c for c in clips if c.split == "dev"]
    assert dev, "no development clips"
    base = labeler.config
    for name, grid in (("default_weight", WEIGHTS), ("signal_gain", GAINS)):
        _rank_by_gain(labeler, dev, limit, name, grid)
    coverage = []
    for power, scale in tqdm(INTERVALS, desc="tune interval", file=sys.stderr):
        scores = _dev_scores(labeler, dev, limit, interval_power=power, default_interval_scale=(scale, scale))
        cover = [scores[("dev", c, "model")][f"cover_{d}"] for c in CONFIGS for d in "va"]
        coverage.append((float(np.mean(np.abs(np.array(cover) - 0.8))), power, scale, float(np.mean(cover))))
    for miss, power, scale, mean in sorted(coverage)[:5]:
        print(f"interval_power={power} default_interval_scale={scale}: mean |coverage - 0.8| {miss:.3f} "
              f"(mean coverage {mean:.2f})")
    labeler.config = base


def _dev_scores(labeler: FewShotLabeler, dev: list[Clip], limit: int, **floor) -> dict:
    base = labeler.config
    labeler.config = replace(base, floor=replace(base.floor, **floor))
    try:
        return evaluate(labeler, dev, limit, desc=str(floor))
    finally:
        labeler.config = base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--clips", type=Path, default=None, help="clip folder (default: fetched into the cache)")
    parser.add_argument("--embeddings", type=Path, default=CACHE / "embeddings")
    parser.add_argument("--phases", type=int, default=16, help="most anchor phases per clip and spacing")
    parser.add_argument("--split", choices=("dev", "heldout"), default=None)
    parser.add_argument("--per-clip", action="store_true")
    parser.add_argument("--tune", action="store_true", help="grid of the fallback defaults on dev clips only")
    parser.add_argument("--pipeline", type=json.loads, default=None,
                        help='face pipeline settings over the checkpoint\'s, e.g. \'{"follow": {"crop": 2}}\'')
    args = parser.parse_args()

    folder = args.clips or fetch_clips(None)
    video_labeler = VideoLabeler(args.checkpoint, cache_dir=args.embeddings)
    if args.pipeline:
        stored = video_labeler.pipeline.config.to_dict()
        merged = {part: {**stored.get(part, {}), **args.pipeline.get(part, {})} for part in {*stored, *args.pipeline}}
        pipeline = FacePipeline(PipelineConfig.from_dict(merged))
        video_labeler = VideoLabeler(video_labeler.checkpoint, encoder=video_labeler.encoder,
                                     cache_dir=args.embeddings, pipeline=pipeline)
    labeler = video_labeler.labeler
    clips = load_clips(video_labeler, folder, "dev" if args.tune else args.split)
    if args.tune:
        tune(labeler, clips, args.phases)
        return
    scores = evaluate(labeler, clips, args.phases)
    print(f"model: {video_labeler.model_version}, method {labeler.method}, strategy {labeler.config.strategy}\n")
    for split in ("heldout", "dev"):
        if any(c.split == split for c in clips):
            print(split_table(scores, split, clips) + "\n")
    if args.per_clip:
        print(clip_table(scores, clips) + "\n")
    print(json.dumps(json_summary({k: v for k, v in scores.items() if k[0] in ("dev", "heldout")}, labeler)))


if __name__ == "__main__":
    main()
