"""Project fine-tune: train the MT-CLAR pair heads on a project's own labelled frames, and serve them only
where they predict held-out anchors better than the model serving now.

What it trains on: the cached embeddings of the labelled frames (the encoder stays frozen: a few dozen
labels cannot retrain it, and the embedding cache stays valid). Pairs are *ordered* pairs of anchors
with a face, within a video and across videos (labels of one project share one scale), **including**
``(i, i)``: k anchors give k^2 pairs, of which k teach "same frame, no change" (delta 0), something the
concatenation head does not know by construction. Optionally (``jitter_frames``) each side of a pair is
drawn from the anchor's frame or a neighbour within that many frames, with the anchor's label (never
another anchor's frame); off by default: on the development clip it did not help (labels change within a
few frames around an expression onset, so the jitter adds label noise).

How it chooses: K-fold over whole segments (runs of anchors at most ``SEGMENT_GAP_S`` apart, e.g. every frame
of a labelled span; K = min(folds, segments), dealt round robin within each video after a seeded shuffle), so
a held-out anchor never has a neighbour from its own span in training. For a held-out anchor, the heads
trained without its fold predict it through ``FewShotLabeler(method="mtclar")`` from the *remaining*
anchors of its video, for every combination strategy; the base model's own predictor is scored on the
same held-out anchors from the same remaining anchors. Criterion: the mean of valence and arousal RMSE,
pooled over held-out anchors. The strategy with the lowest error is chosen; the new heads (then trained
on all anchors) are kept only when they beat the base by at least ``min_improvement``.

Head sizes and optimisation: the paper's heads (2048-1024-512-128, dropout 0.5, about 3.7M weights per
head) are sized for AffectNet's 280k images. On the development clip (single_face, 24 anchors, 5 folds,
leave-one-anchor-out mean V/A RMSE; the cold-start kernel predictor scores 0.067-0.069) they reached 0.053
(one seed) and took 850 s on a busy 2-core CPU; two hidden layers of 256 and 64 with dropout 0.2 (about 150k weights
per head) reached 0.047 at lr 1e-3, 0.037 at 3e-3 and 0.035 at 1e-2 (means of 3 seeds, 300 steps of up to
256 pairs, AdamW), and 0.034 at 3e-3 without frame jitter, in 30-50 s for all folds and the final fit.
The paper's MSE + (1 - CCC) schedule beat plain MSE (0.063). On the held-out clips (cap12/cap13 of
benchmarks/data/heldout_labels.csv, anchors every 16 frames) the same recipe lost to the kernel predictor
(0.062 vs 0.056), and the base model kept serving: the choice is worth making per project.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from mtclar.model.checkpoint import Checkpoint, state_with_prefix
from mtclar.model.config_io import json_safe
from mtclar.model.errors import AnchorError, CheckpointError
from mtclar.model.fewshot import FewShotLabeler, FrameFeatures, LabelerConfig
from mtclar.model.files import utc_now
from mtclar.model.metrics import DIMENSIONS, va_metrics

from .anchor_heads import SEGMENT_GAP_S, AnchorSample, collect_anchors, make_folds, train_heads
from .finetune_config import FinetuneConfig, ProjectVideo

log = logging.getLogger(__name__)
DEFAULT_CONFIG = FinetuneConfig()
ProgressCallback = Callable[[str, float], None]  # (stage, overall fraction in [0, 1])
KIND = "project-finetune"


@dataclass
class FinetuneResult:
    checkpoint: Checkpoint  # the model that should serve now (new one, or the base one if the new one did not win)
    kept_new: bool
    before: dict  # held-out metrics of the base (serving) model: {"valence": {"rmse",...}, ..., "validation": kind}
    after: dict  # same for the newly trained heads
    seconds: float
    base_name: str = ""
    new_name: str = ""
    anchors: dict = field(default_factory=dict)  # video -> anchors with a face

    @property
    def improvement(self) -> float:
        """Base minus new mean RMSE (> 0: the new heads are better)."""
        return float(self.before["mean_rmse"] - self.after["mean_rmse"])

    def table(self) -> str:
        videos = ", ".join(f"{name} {count}" for name, count in self.anchors.items())
        kind = self.after.get("validation", "leave-one-segment-out")
        lines = [f"{kind}: {self.after['folds']} folds over {sum(self.anchors.values())} anchors "
                 f"with a face ({videos}); {self.after['n']} held-out anchors predicted"]
        header = ["", "model", "predictor", "n", "V rmse", "A rmse", "mean rmse", "V ccc", "A ccc", "V sagr",
                  "A sagr"]
        rows = []
        for label, name, metrics in (("before", self.base_name, self.before), ("after", self.new_name, self.after)):
            rows.append([label, name, f"{metrics['method']}/{metrics['strategy']}", str(metrics["n"]),
                         *(f"{metrics[d]['rmse']:.4f}" for d in DIMENSIONS), f"{metrics['mean_rmse']:.4f}",
                         *(_fmt(metrics[d]["ccc"]) for d in DIMENSIONS),
                         *(_fmt(metrics[d]["sagr"]) for d in DIMENSIONS)])
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        if self.after.get("strategies"):
            lines.append("new heads by strategy (mean rmse): " + ", ".join(
                f"{s} {v:.4f}" for s, v in sorted(self.after["strategies"].items(), key=lambda kv: kv[1])))
        if self.before.get("note"):
            lines.append(f"note: {self.before['note']}")
        verdict = "keeps the NEW model" if self.kept_new else "keeps the BASE model"
        lines.append(f"{verdict} {self.checkpoint.name}: mean RMSE {self.after['mean_rmse']:.4f} (new) vs "
                     f"{self.before['mean_rmse']:.4f} (base), improvement {self.improvement:+.4f} "
                     f"(needs >= {self.after['min_improvement']:.4f}); {self.seconds:.1f} s")
        return "\n".join(lines)


def _fmt(value: float) -> str:
    return "nan" if value is None or not math.isfinite(value) else f"{value:.3f}"


# -- evaluation --------------------------------------------------------------------------------------


def _rows_of(features: FrameFeatures, rows: np.ndarray) -> FrameFeatures:
    probs = features.expression_probs[rows] if features.expression_probs is not None else None
    return FrameFeatures(features.embeddings[rows], features.has_face[rows], features.time_s[rows], probs,
                         features.expression_classes)


def _heldout(labeler: FewShotLabeler, features: list[FrameFeatures], videos: list[ProjectVideo],
             anchors: list[AnchorSample], held: np.ndarray, method: str, strategies: tuple[str, ...],
             subset: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]]:
    """Per strategy: predictions (H, 2), truth (H, 2) and (video, frame) keys of the held-out anchors that
    their video's remaining anchors can predict.

    ``subset``: the embedding predictors (kernel, mtclar) score each query frame from its own embedding, time
    and the anchors alone, so only the held-out and remaining anchor rows are given to the labeller (the
    same predictions, without the deltas of every other frame of the video).
    """
    out: dict[str, tuple[list, list, list]] = {s: ([], [], []) for s in strategies}
    held_keys = {(anchors[i].video, anchors[i].frame) for i in held}
    for v, video in enumerate(videos):
        targets = sorted(f for (hv, f) in held_keys if hv == v)
        if not targets:
            continue
        remaining = {int(f): va for f, va in video.anchors.items() if (v, int(f)) not in held_keys}
        if not any(video.embeddings.has_face[f] for f in remaining):
            continue  # nothing left in this video to predict from (the base is skipped alike)
        truth = np.array([video.anchors[f] for f in targets], dtype=np.float64)
        whole = (features[v], np.array(targets), remaining)
        reduced = whole
        if subset and method in ("kernel", "mtclar"):
            rows = np.array(sorted({*targets, *remaining}))
            position = {int(r): i for i, r in enumerate(rows)}
            reduced = (_rows_of(features[v], rows), np.array([position[f] for f in targets]),
                       {position[f]: va for f, va in remaining.items()})
        for strategy in strategies:
            # the floor interpolates in time and smooths the face signal over neighbouring frames: it needs
            # every frame of the video, not only the anchor rows
            frames, query, given = whole if strategy == "floor" else reduced
            labels = labeler.label(frames, given, method=method, strategy=strategy)
            pred = labels.values[query]
            ok = np.isfinite(pred).all(axis=1)
            out[strategy][0].append(pred[ok])
            out[strategy][1].append(truth[ok])
            out[strategy][2].extend((v, f) for f, good in zip(targets, ok, strict=True) if good)
    return {s: (np.concatenate(p) if p else np.zeros((0, 2)), np.concatenate(t) if t else np.zeros((0, 2)), k)
            for s, (p, t, k) in out.items()}


def validation_folds(anchors: list[AnchorSample], config: FinetuneConfig) -> tuple[str, list[tuple[np.ndarray,
                                                                                                  list[np.ndarray]]]]:
    """The folds the new heads are judged on: (anchor rows the heads train on, held-out sets to predict).

    With ``config.min_videos_to_hold_out`` or more labelled videos, leave-one-video-out (whole videos held out,
    in at most ``config.folds`` groups): heads trained without a video predict each of its segments from its
    other segments (as serving would: a new video's anchors, heads that never saw it). Otherwise
    leave-one-segment-out over all videos (``make_folds``).
    """
    by_video: dict[int, list[int]] = {}
    for i, anchor in enumerate(anchors):
        by_video.setdefault(anchor.video, []).append(i)
    if len(by_video) >= config.min_videos_to_hold_out:
        groups: list[list[int]] = [[] for _ in range(min(config.folds, len(by_video)))]
        for k, video in enumerate(sorted(by_video)):  # many videos: whole videos held out in `folds` groups
            groups[k % len(groups)].append(video)
        folds = []
        for group in groups:
            held_sets, held_rows = [], set()
            for video in group:
                members = by_video[video]
                inside = [anchors[i] for i in members]
                for segment in make_folds(inside, len(inside), config.seed):  # one set per segment
                    held_sets.append(np.array([members[j] for j in segment], dtype=int))
                held_rows |= set(members)
            folds.append((np.array(sorted(set(range(len(anchors))) - held_rows), dtype=int), held_sets))
        return "leave-one-video-out", folds
    all_rows = np.arange(len(anchors))
    return "leave-one-segment-out", [(np.setdiff1d(all_rows, held), [held])
                                     for held in make_folds(anchors, config.folds, config.seed)]


def _metrics(pred: np.ndarray, truth: np.ndarray) -> dict:
    if len(pred) == 0:
        raise AnchorError("no held-out anchor could be predicted: every video needs two or more labelled frames "
                          "with a face")
    metrics = va_metrics({d: pred[:, i] for i, d in enumerate(DIMENSIONS)},
                         {d: truth[:, i] for i, d in enumerate(DIMENSIONS)})
    return {**metrics, "n": len(pred), "mean_rmse": float(np.mean([metrics[d]["rmse"] for d in DIMENSIONS]))}


def _next_name(base: str) -> str:
    match = re.match(r"^(.*)-ft(\d+)$", base)
    return f"{match.group(1)}-ft{int(match.group(2)) + 1}" if match else f"{base}-ft1"


def _check_embeddings(base: Checkpoint, videos: list[ProjectVideo], classes: tuple[str, ...]) -> None:
    expected = base.encoder.get("name")
    for video in videos:
        width = video.embeddings.expression_probs.shape[1]
        if classes and width and len(classes) != width:
            raise ValueError(f"{video.name}: {width} expression probabilities per frame, but {len(classes)} "
                             f"expression classes were given ({', '.join(classes)})")
        if video.embeddings.encoder != expected:
            raise CheckpointError(f"{video.name}: embeddings come from encoder {video.embeddings.encoder!r}, but "
                                  f"checkpoint {base.name!r} uses {expected!r}")
        dim = video.embeddings.embeddings.shape[1]
        if dim != base.encoder.get("embed_dim", dim):
            raise CheckpointError(f"{video.name}: {dim}-d embeddings, checkpoint {base.name!r} expects "
                                  f"{base.encoder['embed_dim']}")


def _base_predictor(base: Checkpoint) -> tuple[FewShotLabeler, str, str, str]:
    """The base's serving predictor, unless its heads were trained on this project's anchors (then they
    have seen every held-out anchor): its cold-start kernel predictor is scored instead."""
    labeler = FewShotLabeler(base.labeler, base.build_heads(), base.heads_trained, base.build_sl_head())
    method, strategy, note = labeler.method, base.labeler.strategy, ""
    if base.trained_on.get("kind") == KIND and base.heads_trained:
        method = "kernel"
        strategy = base.trained_on.get("base_labeler", {}).get("strategy", "kernel")
        note = (f"the base {base.name} was fine-tuned on this project's anchors, so its heads would be scored on "
                "frames they were trained on; its cold-start kernel predictor is scored instead")
    if method == "sl":
        method = "kernel"
    return labeler, method, strategy, note


def finetune_project(base: Checkpoint, videos: list[ProjectVideo], expression_classes: tuple[str, ...],
                     config: FinetuneConfig = DEFAULT_CONFIG, on_progress: ProgressCallback | None = None,
                     new_name: str | None = None) -> FinetuneResult:
    """Train new MT-CLAR heads on a project's anchors; keep them only if they beat ``base`` on held-out segments."""
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _finetune(base, videos, expression_classes, config, on_progress, new_name)
    finally:
        torch.set_num_threads(threads)


def _finetune(base: Checkpoint, videos: list[ProjectVideo], expression_classes: tuple[str, ...],
              config: FinetuneConfig, on_progress: ProgressCallback | None, new_name: str | None) -> FinetuneResult:
    started = time.perf_counter()
    progress = on_progress or (lambda stage, fraction: None)
    _check_embeddings(base, videos, tuple(expression_classes))
    anchors = collect_anchors(videos, config.jitter_frames)
    per_video = {video.name: sum(a.video == v for a in anchors) for v, video in enumerate(videos)}
    if len(anchors) < config.min_anchors:
        raise AnchorError(f"fine-tuning needs at least {config.min_anchors} labelled frames with a face; got "
                          f"{len(anchors)} ({', '.join(f'{k}: {n}' for k, n in per_video.items()) or 'no videos'})")
    if max(per_video.values()) < 2:
        raise AnchorError("fine-tuning needs a video with at least 2 labelled frames with a face (held-out anchors "
                          "are predicted from the other anchors of their video)")
    embed_dim = int(videos[0].embeddings.embeddings.shape[1])
    features = [FrameFeatures.of(video.embeddings, tuple(expression_classes)) for video in videos]
    validation, folds = validation_folds(anchors, config)
    k = len(folds)
    if k < 2:
        raise AnchorError("fine-tuning needs labelled frames in at least 2 segments (runs of frames more than "
                          f"{SEGMENT_GAP_S} s apart): a held-out segment is predicted from the others")

    base_labeler, base_method, base_strategy, note = _base_predictor(base)
    progress("scoring the base model", 0.0)
    base_pred, base_true, new_pred = [], [], {s: [] for s in config.strategies}
    for f, (train_rows, held_sets) in enumerate(folds):
        progress(f"fold {f + 1}/{k}", f / (k + 1))
        heads = train_heads(videos, [anchors[i] for i in train_rows], config, embed_dim, config.seed + 1 + f)
        new_labeler = FewShotLabeler(LabelerConfig("mtclar", base.labeler.strategy, base.labeler.kernel), heads, True)
        for held in held_sets:
            before = _heldout(base_labeler, features, videos, anchors, held, base_method, (base_strategy,))
            pred, truth, keys = before[base_strategy]
            after = _heldout(new_labeler, features, videos, anchors, held, "mtclar", config.strategies)
            base_pred.append(pred)
            base_true.append(truth)
            for s in config.strategies:
                if after[s][2] != keys:  # both predictors see the same held-out anchors (faces are the same)
                    raise RuntimeError(f"fold {f}: base and new predictions cover different anchors")
                new_pred[s].append(after[s][0])
    truth = np.concatenate(base_true)
    before_metrics = {**_metrics(np.concatenate(base_pred), truth), "method": base_method, "strategy": base_strategy,
                      "model": base.name, "folds": k, "validation": validation}
    if note:
        before_metrics["note"] = note
    scores = {s: _metrics(np.concatenate(p), truth) for s, p in new_pred.items()}
    chosen = min(config.strategies, key=lambda s: (scores[s]["mean_rmse"], config.strategies.index(s)))
    name = new_name or _next_name(base.name)
    after_metrics = {**scores[chosen], "method": "mtclar", "strategy": chosen, "model": name, "folds": k,
                     "validation": validation,
                     "strategies": {s: m["mean_rmse"] for s, m in scores.items()},
                     "min_improvement": config.min_improvement}
    kept = before_metrics["mean_rmse"] - after_metrics["mean_rmse"] >= config.min_improvement

    checkpoint = base
    if kept:
        progress("training on all anchors", k / (k + 1))
        heads = train_heads(videos, anchors, config, embed_dim, config.seed)
        state = {key: value for key, value in base.state.items() if not key.startswith("heads.")}
        state.update({key: value.detach().cpu().clone() for key, value in state_with_prefix(heads, "heads.").items()})
        base_labeler_config = base.trained_on.get("base_labeler", base.labeler.to_dict()) \
            if base.trained_on.get("kind") == KIND else base.labeler.to_dict()
        checkpoint = replace(
            base, name=name, labeler=replace(base.labeler, method="mtclar", strategy=chosen), heads=heads.config,
            heads_trained=True, state=state,
            trained_on={"kind": KIND, "base": base.name, "base_labeler": base_labeler_config,
                        "videos": {video.name: {"anchors_with_face": per_video[video.name],
                                                "anchors": len(video.anchors),
                                                "content_id": video.embeddings.info.content_id}
                                   for video in videos},
                        "anchors": len(anchors), "pairs": "ordered anchor pairs within and across videos, incl. (i, i)",
                        "config": {**asdict(config), "hidden": list(config.hidden),
                                   "strategies": list(config.strategies)}},
            metrics={"validation": {"kind": validation, "criterion": "mean of valence and arousal RMSE",
                                              "before": json_safe(before_metrics), "after": json_safe(after_metrics),
                                              "improvement": before_metrics["mean_rmse"] - after_metrics["mean_rmse"]}},
            created=utc_now(),
        )
    progress("done", 1.0)
    result = FinetuneResult(checkpoint, kept, before_metrics, after_metrics, time.perf_counter() - started,
                            base.name, name, per_video)
    log.info("fine-tune %s: %s", name, "kept" if kept else "not kept")
    return result
