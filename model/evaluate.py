"""Few-shot evaluation: for each support-set protocol, the model and both baselines on the same queries.

Queries are the labelled frames with a face that are not anchors (the paper also scores the anchors,
which flatters every method alike).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

from .embeddings import VideoEmbeddings
from .labeling import VideoLabeler
from .metrics import DIMENSIONS, per_video_mean, spearman, va_metrics
from .support import ErrorModel, every, first, parse_support, random, suggest_frames

log = logging.getLogger(__name__)


class LabelledVideo(Protocol):
    """What the evaluation reads of a labelled video (``training.sources.LabelledVideo`` is one)."""

    name: str
    video_file: Path | None
    frame_files: dict[int, Path] | None
    fps: float | None
    labels: dict[int, tuple[float, float]]
BASELINES = ("hold-last", "interpolation")


@dataclass
class VideoCase:
    video: LabelledVideo
    embeddings: VideoEmbeddings
    candidates: np.ndarray  # labelled rows with a face, in time order
    truth: dict[int, tuple[float, float]]


@dataclass
class EvalRow:
    support: str
    method: str
    pooled: dict
    per_video: dict
    labelled_pct: float
    n_queries: int
    uncertainty_error_rho: float = float("nan")
    videos: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"support": self.support, "method": self.method, "pooled": self.pooled, "per_video_mean": self.per_video,
                "labelled_pct": self.labelled_pct, "n_queries": self.n_queries,
                "uncertainty_error_spearman": self.uncertainty_error_rho, "videos": self.videos}


def embed_case(labeler: VideoLabeler, video: LabelledVideo, show_progress: bool = False) -> VideoCase:
    if video.video_file is not None:
        embeddings = labeler.embed(video.video_file, show_progress)
    else:
        assert video.frame_files is not None and video.fps is not None
        embeddings = labeler.embedder.embed_frames(video.frame_files, video.fps, video.name, show_progress)
    return case_of(video, embeddings)


def case_of(video: LabelledVideo, embeddings: VideoEmbeddings) -> VideoCase:
    """A labelled video with its embeddings: its labelled frames that decoded, and those with a face."""
    rows = np.array(sorted(f for f in video.labels if f < embeddings.n_frames), dtype=int)
    dropped = len(video.labels) - len(rows)
    if dropped:
        log.warning("%s: %d labelled frames lie beyond the %d decoded frames", video.name, dropped,
                    embeddings.n_frames)
    candidates = rows[embeddings.has_face[rows]]
    return VideoCase(video, embeddings, candidates, {int(r): video.labels[int(r)] for r in rows})


def choose_support(case: VideoCase, spec: str, labeler: VideoLabeler, seed: int = 0) -> np.ndarray:
    kind, k = parse_support(spec)
    candidates = case.candidates
    if kind == "every":
        return every(candidates, k)
    if kind == "first":
        return first(candidates, k)
    if kind == "random":
        return random(candidates, k, seed)
    floor = labeler.labeler.config.floor  # suggest: the frames whose labels cut the expected error most
    return np.sort(suggest_frames(k, case.embeddings.time_s, case.embeddings.has_face, np.zeros(0, dtype=int),
                                  ErrorModel(floor.interval_power, floor.interval_min_distance_s),
                                  candidates=candidates))


def evaluate(labeler: VideoLabeler, cases: list[VideoCase], supports: list[str], strategy: str | None = None,
             seed: int = 0, show_progress: bool = False) -> list[EvalRow]:
    methods = [labeler.labeler.method, *BASELINES]
    rows: list[EvalRow] = []
    jobs = [(spec, case) for spec in supports for case in cases]
    collected: dict[tuple[str, str], dict] = {}
    for spec, case in tqdm(jobs, desc="evaluate", disable=not show_progress, leave=False):
        anchors_rows = choose_support(case, spec, labeler, seed)
        anchors = {int(r): case.truth[int(r)] for r in anchors_rows}
        queries = case.candidates[~np.isin(case.candidates, anchors_rows)]
        truth = np.array([case.truth[int(r)] for r in queries]).reshape(-1, 2)
        for method in methods:
            entry = collected.setdefault((spec, method), {"pred": [], "true": [], "unc": [], "videos": {},
                                                          "anchors": 0, "labelled": 0})
            entry["anchors"] += len(anchors)
            entry["labelled"] += len(case.truth)
            if not anchors or len(queries) == 0:
                continue
            labels = labeler.labeler.label(labeler.features(case.embeddings), anchors, method=method,
                                           strategy=strategy)
            pred = labels.values[queries]
            entry["pred"].append(pred)
            entry["true"].append(truth)
            entry["unc"].append(labels.uncertainty[queries])
            entry["videos"][case.video.name] = va_metrics(
                {d: pred[:, i] for i, d in enumerate(DIMENSIONS)}, {d: truth[:, i] for i, d in enumerate(DIMENSIONS)})
    for (spec, method), entry in collected.items():
        if not entry["pred"]:
            continue
        pred, true = np.concatenate(entry["pred"]), np.concatenate(entry["true"])
        pooled = va_metrics({d: pred[:, i] for i, d in enumerate(DIMENSIONS)},
                            {d: true[:, i] for i, d in enumerate(DIMENSIONS)})
        error = np.abs(pred - true).mean(axis=1)
        rho = spearman(np.concatenate(entry["unc"]), error) if method not in BASELINES else float("nan")
        rows.append(EvalRow(spec, method, pooled, per_video_mean(entry["videos"]),
                            100.0 * entry["anchors"] / max(entry["labelled"], 1), len(pred), rho, entry["videos"]))
    return rows


def format_table(rows: list[EvalRow]) -> str:
    header = ["support", "method", "labelled%", "queries", "V rmse", "V pcc", "V ccc", "V sagr", "A rmse", "A pcc",
              "A ccc", "A sagr", "V ccc/vid", "A ccc/vid", "unc~err"]
    lines = []
    for row in rows:
        cells = [row.support, row.method, f"{row.labelled_pct:.1f}", str(row.n_queries)]
        for dim in DIMENSIONS:
            m = row.pooled[dim]
            cells += [f"{m['rmse']:.3f}", f"{m['pcc']:.3f}", f"{m['ccc']:.3f}", f"{m['sagr']:.3f}"]
        cells += [f"{row.per_video['valence']['ccc']:.3f}", f"{row.per_video['arousal']['ccc']:.3f}",
                  "" if np.isnan(row.uncertainty_error_rho) else f"{row.uncertainty_error_rho:.2f}"]
        lines.append(cells)
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    out = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
           "-+-".join("-" * w for w in widths)]
    out += [" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(out)
