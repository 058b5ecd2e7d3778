"""Few-shot labelling: per-frame V/A from a video's embeddings and a few labelled frames (anchors).

Each predictor reads a predicted difference label(query) - label(anchor), either from the trained
MT-CLAR heads (``mtclar``) or, before any V/A training, from the change of the expression net's class
probabilities (``kernel``, the cold start: the class prior for the paper's strategies; for ``floor`` a signal
per dimension, model/face_signals.py). The default strategy, ``floor``, is linear interpolation between the
anchors plus a weighted correction (the time-weighted differences, read off time-smoothed features, to the two anchors
around the frame), the weight chosen per video and dimension by leave-one-segment-out on its own
anchors, with a calibrated 80% interval (model/correction.py). The paper's strategies
(``nearest-preceding``, ``mean``, ...) combine per-anchor estimates "anchor label + difference" and stay
selectable. The baselines (``hold-last``, ``interpolation``) only look at time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .baselines import hold_last_anchor, linear_interpolation
from .circumplex import expected_va
from .config_io import from_dict
from .correction import (
    DeltaFn,
    SegmentFolds,
    brackets,
    choose_weight,
    interval_scale,
    leave_one_segment_out,
    raw_correction,
    smooth_in_time,
)
from .errors import AnchorError, CheckpointError, ConfigError
from .face_signals import SIGNALS, va_signals
from .siamese import PairHeads, SupervisedHead

METHODS = ("auto", "mtclar", "kernel", "sl", "interpolation", "hold-last")
STRATEGIES = ("floor", "kernel", "nearest-preceding", "mean", "similarity", "time")

Anchors = Mapping[int, tuple[float, float]]  # row (frame) -> (valence, arousal)


@dataclass(frozen=True)
class KernelConfig:
    """Weights ``softmax(cos(e_q, e_a) / similarity_temperature - |t_q - t_a| / time_scale_s)`` over anchors."""

    # tuned on single_face (the old `tune_coldstart.py` grid); these defaults are what the shipped checkpoint holds
    similarity_temperature: float = 0.02
    time_scale_s: float = 1.0
    prior_weight: tuple[float, float] = (0.8, 0.3)  # (valence, arousal) share of the class-prior change
    novelty_weight: float = 1.0  # uncertainty += novelty_weight * (1 - max cosine similarity to an anchor)
    time_weight: float = 0.1  # uncertainty += time_weight * (1 - exp(-time to nearest anchor / time_scale_s))
    score_scale: float = 0.2  # score = exp(-uncertainty / score_scale)


@dataclass(frozen=True)
class FloorConfig:
    """Strategy ``floor``: interpolation + w * correction; w per video and dimension (model/correction.py).

    ``default_weight`` and ``default_interval_scale`` serve videos with fewer than ``min_segments`` anchor
    segments; they were tuned on the development clips only (benchmarks/fewshot.py --tune).
    """

    default_weight: tuple[float, float] = (0.5, 0.5)  # (valence, arousal); tuned on the dev clips
    weight_grid: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    min_segments: int = 3  # fewer anchor segments than this: default_weight
    segment_gap_s: float = 0.25  # anchors at most this far apart form one segment (held out together)
    smooth_s: float = 0.2  # Gaussian sd (s) of the time smoothing of the features the correction reads
    # cold start: which face signal the (valence, arousal) correction reads, and its gain (model/face_signals.py)
    signals: tuple[str, str] = ("happiness", "intensity")
    signal_gain: tuple[float, float] = (0.1, 0.1)  # log-odds spread ~10x the circumplex's (dev clips; flat 0.08-0.12)
    margin: float = 0.0  # a weight > 0 must cut the held-out squared error by this share, else 0
    interval_quantile: float = 0.8
    default_interval_scale: tuple[float, float] = (0.25, 0.25)  # half-width = scale * bridge distance ** power
    interval_prior_folds: float = 3.0  # the video's scale is shrunk to the default as if from this many folds
    interval_min_distance_s: float = 0.1  # distances below this count as this (label noise next to an anchor)
    interval_power: float = 0.35  # 0.5 would be a random walk; dev residuals grow slower with distance


@dataclass(frozen=True)
class LabelerConfig:
    method: str = "auto"
    strategy: str = "floor"
    kernel: KernelConfig = field(default_factory=KernelConfig)
    floor: FloorConfig = field(default_factory=FloorConfig)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        unknown = [s for s in self.floor.signals if s not in SIGNALS]
        if unknown or len(self.floor.signals) != 2:
            raise ConfigError(f"floor.signals must name 2 of {', '.join(SIGNALS)}; got {self.floor.signals!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LabelerConfig:
        return from_dict(cls, data, "labeler")


@dataclass
class FrameLabels:
    """Per-row output; NaN values where ``source == "no_face"``."""

    valence: np.ndarray
    arousal: np.ndarray
    uncertainty: np.ndarray  # 0 at anchors, >= 0 elsewhere, NaN where no face
    score: np.ndarray  # confidence in (0, 1]: exp(-uncertainty / score_scale)
    source: np.ndarray  # "anchor" | "predicted" | "no_face"
    predictor: np.ndarray  # "anchor" | "mtclar" | "kernel" | "sl" | "interpolation" | "hold-last" | "no_face"
    # 80% interval per frame (strategy floor; NaN for the other strategies and where no face); anchors: the value
    valence_low: np.ndarray | None = None
    valence_high: np.ndarray | None = None
    arousal_low: np.ndarray | None = None
    arousal_high: np.ndarray | None = None
    details: dict = field(default_factory=dict)  # floor: correction weight, segments, interval scale

    def __post_init__(self) -> None:
        for name in ("valence_low", "valence_high", "arousal_low", "arousal_high"):
            if getattr(self, name) is None:
                setattr(self, name, np.full(len(self.valence), np.nan))

    @property
    def values(self) -> np.ndarray:
        return np.stack([self.valence, self.arousal], axis=1)


@dataclass(frozen=True)
class FrameFeatures:
    """What the labeller reads about the frames of one video (rows in time order)."""

    embeddings: np.ndarray  # (N, D), NaN rows where no face
    has_face: np.ndarray  # (N,) bool
    time_s: np.ndarray  # (N,)
    expression_probs: np.ndarray | None = None  # (N, C)
    expression_classes: tuple[str, ...] = ()

    @classmethod
    def of(cls, video, classes: tuple[str, ...] = ()) -> FrameFeatures:
        """From a ``VideoEmbeddings``."""
        probs = video.expression_probs if video.expression_probs.shape[1] else None
        return cls(video.embeddings, video.has_face, video.time_s, probs, tuple(classes))

    @property
    def n(self) -> int:
        return len(self.has_face)


def check_anchors(anchors: Anchors, n_rows: int, where: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Anchors -> sorted frames (A,) and values (A, 2); errors name the frame."""
    frames, values = [], []
    for frame, value in sorted(anchors.items()):
        if int(frame) != frame:
            raise AnchorError(f"{where}anchor frame {frame!r} is not a whole number")
        if not 0 <= int(frame) < n_rows:
            raise AnchorError(f"{where}anchor frame {frame} is outside the video (0..{n_rows - 1})")
        v, a = (float(x) for x in value)
        if not (np.isfinite(v) and np.isfinite(a)):
            raise AnchorError(f"{where}anchor frame {frame} has a non-finite value ({v}, {a})")
        if not (-1 <= v <= 1 and -1 <= a <= 1):
            raise AnchorError(f"{where}anchor frame {frame} has a value outside [-1, 1] ({v}, {a})")
        frames.append(int(frame))
        values.append((v, a))
    return np.array(frames, dtype=int), np.array(values, dtype=np.float64).reshape(-1, 2)


def _normalise(embeddings: np.ndarray) -> np.ndarray:
    return embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


class FewShotLabeler:
    def __init__(self, config: LabelerConfig = LabelerConfig(), heads: PairHeads | None = None,
                 heads_trained: bool = False, sl_head: SupervisedHead | None = None, device: str = "cpu"):
        self.config = config
        self.heads = heads.eval().to(device) if heads is not None else None
        self.heads_trained = heads_trained and heads is not None
        self.sl_head = sl_head.eval().to(device) if sl_head is not None else None
        self.device = device

    @property
    def method(self) -> str:
        if self.config.method != "auto":
            return self.config.method
        return "mtclar" if self.heads_trained else "kernel"

    def label(self, frames: FrameFeatures, anchors: Anchors, method: str | None = None,
              strategy: str | None = None, fallback_weight: tuple[float, float] | None = None) -> FrameLabels:
        """``fallback_weight``: the floor's correction weight where the video has too few segments to validate
        its own (e.g. the weight validated on the project's other videos); default ``floor.default_weight``."""
        method = self.method if method in (None, "", "auto") else method
        if method not in METHODS:
            raise ConfigError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        strategy = strategy or self.config.strategy
        n = frames.n
        anchor_rows, anchor_values = check_anchors(anchors, n)
        out = FrameLabels(np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan),
                          np.full(n, "no_face", dtype=object), np.full(n, "no_face", dtype=object))
        query = np.flatnonzero(frames.has_face)
        query = query[~np.isin(query, anchor_rows)]
        if query.size:
            if anchor_rows.size == 0 and method != "sl":
                if self.sl_head is None:
                    raise AnchorError("no anchors: label at least one frame (or train an MT-CLAR+SL head)")
                method = "sl"
            if strategy == "floor" and method in ("kernel", "mtclar") and frames.has_face[anchor_rows].any():
                values, half, out.details, used = self._predict_floor(frames, query, anchor_rows, anchor_values,
                                                                      method, fallback_weight)
                low, high = np.clip(values - half, -1, 1), np.clip(values + half, -1, 1)
                out.valence_low[query], out.arousal_low[query] = low[:, 0], low[:, 1]
                out.valence_high[query], out.arousal_high[query] = high[:, 0], high[:, 1]
                uncertainty = half.mean(axis=1)
            else:
                values, uncertainty, used = self._predict(frames, query, anchor_rows, anchor_values, method, strategy)
            out.valence[query], out.arousal[query] = values[:, 0], values[:, 1]
            out.uncertainty[query] = uncertainty
            out.source[query], out.predictor[query] = "predicted", used
        if anchor_rows.size:
            out.valence[anchor_rows], out.arousal[anchor_rows] = anchor_values[:, 0], anchor_values[:, 1]
            for bound in (out.valence_low, out.valence_high):
                bound[anchor_rows] = anchor_values[:, 0]
            for bound in (out.arousal_low, out.arousal_high):
                bound[anchor_rows] = anchor_values[:, 1]
            out.uncertainty[anchor_rows] = 0.0
            out.source[anchor_rows] = out.predictor[anchor_rows] = "anchor"
        out.score = np.exp(-out.uncertainty / self.config.kernel.score_scale)
        return out

    # -- the floor: interpolation + validated correction ---------------------------------------------

    def _predict_floor(self, frames: FrameFeatures, query: np.ndarray, anchor_rows: np.ndarray,
                       anchor_values: np.ndarray, method: str,
                       fallback_weight: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray, dict, str]:
        """Values (Q, 2), 80% half-widths (Q, 2), details, predictor name."""
        config = self.config.floor
        time_s, has_face = np.asarray(frames.time_s, dtype=np.float64), frames.has_face
        face_anchor_rows = anchor_rows[has_face[anchor_rows]]
        delta = self._delta_fn(frames, face_anchor_rows, method)
        face_rows = np.flatnonzero(has_face)
        correction = np.zeros((frames.n, 2))
        if delta is not None:
            correction[face_rows] = raw_correction(face_rows, time_s, np.arange(face_anchor_rows.size),
                                                   time_s[face_anchor_rows], delta)
        folds = leave_one_segment_out(time_s, has_face, anchor_rows, anchor_values, delta, config.segment_gap_s)
        weight, validated = self._floor_weight(folds, fallback_weight)
        floor = linear_interpolation(query, anchor_rows, anchor_values)
        values = np.clip(floor + weight[None, :] * correction[query], -1, 1)
        scale = self._interval_scale(folds, weight)
        distance = brackets(time_s[query], time_s[anchor_rows]).distance_s
        half = scale[None, :] * (np.maximum(distance, config.interval_min_distance_s) ** config.interval_power)[:, None]
        details = {"correction_weight": weight.tolist(), "weight_validated": validated,
                   "segments": folds.n_segments, "interval_scale": scale.tolist()}
        return values, half, details, method

    def held_out(self, frames: FrameFeatures, anchors: Anchors, method: str | None = None,
                 fallback_weight: tuple[float, float] | None = None) -> tuple[SegmentFolds, np.ndarray]:
        """The floor's leave-one-segment-out folds on a video's own anchors and the correction weight it serves
        with (chosen on those folds, or the fallback when they are too few): held-out anchors for a report."""
        method = self.method if method in (None, "", "auto") else method
        anchor_rows, anchor_values = check_anchors(anchors, frames.n)
        face_anchor_rows = anchor_rows[frames.has_face[anchor_rows]]
        delta = self._delta_fn(frames, face_anchor_rows, method) \
            if face_anchor_rows.size and method in ("kernel", "mtclar") else None
        folds = leave_one_segment_out(np.asarray(frames.time_s, dtype=np.float64), frames.has_face, anchor_rows,
                                      anchor_values, delta, self.config.floor.segment_gap_s)
        weight, _ = self._floor_weight(folds, fallback_weight)
        return folds, weight

    def _floor_weight(self, folds: SegmentFolds,
                      fallback: tuple[float, float] | None = None) -> tuple[np.ndarray, bool]:
        config = self.config.floor
        if folds.n_segments < config.min_segments or folds.truth.size == 0:
            return np.asarray(fallback if fallback is not None else config.default_weight, dtype=np.float64), False
        return np.array([choose_weight(folds.truth[:, d], folds.floor[:, d], folds.correction[:, d],
                                       config.weight_grid, config.margin) for d in range(2)]), True

    def _interval_scale(self, folds: SegmentFolds, weight: np.ndarray) -> np.ndarray:
        """The video's own scale from its folds, shrunk to the default as if the default came from
        ``interval_prior_folds`` folds."""
        config = self.config.floor
        default = np.asarray(config.default_interval_scale, dtype=np.float64)
        n = len(np.unique(folds.segment))
        if n == 0:
            return default
        residual = np.abs(folds.residual(weight))
        own = np.array([interval_scale(residual[:, d], folds.distance_s, config.interval_quantile,
                                       config.interval_min_distance_s, config.interval_power) for d in range(2)])
        return (n * own + config.interval_prior_folds * default) / (n + config.interval_prior_folds)

    def _delta_fn(self, frames: FrameFeatures, face_anchor_rows: np.ndarray, method: str) -> DeltaFn | None:
        """(rows, ids into ``face_anchor_rows``) -> predicted label(row) - label(anchor), 0 when row is the
        anchor, read off features smoothed in time; None: no signal."""
        smooth = self.config.floor.smooth_s
        if method == "mtclar":
            self._require_heads()
            embeddings = smooth_in_time(np.nan_to_num(frames.embeddings), frames.has_face, frames.time_s, smooth)

            def heads_delta(rows: np.ndarray, ids: np.ndarray) -> np.ndarray:
                anchors = embeddings[face_anchor_rows[ids]]
                # minus the heads' difference of the anchor to itself: exactly 0 at the anchor, no jump there
                return self._pair_deltas(embeddings[rows], anchors) - self._pair_deltas(anchors, anchors)

            return heads_delta
        if frames.expression_probs is None or not frames.expression_classes:
            return None
        config = self.config.floor
        signal = va_signals(np.nan_to_num(frames.expression_probs), frames.expression_classes, config.signals,
                            config.signal_gain)
        prior = smooth_in_time(signal, frames.has_face, frames.time_s, smooth)

        def prior_delta(rows: np.ndarray, ids: np.ndarray) -> np.ndarray:
            return prior[rows] - prior[face_anchor_rows[ids]]

        return prior_delta

    def _require_heads(self) -> None:
        if self.heads is None or not self.heads_trained:
            raise CheckpointError("method 'mtclar' needs MT-CLAR heads trained on V/A, and this checkpoint has "
                                  "none: fine-tune first (mtclar finetune, or Train in Label Studio) or use kernel")

    # -- predictors ---------------------------------------------------------------------------------

    def _predict(self, frames: FrameFeatures, query: np.ndarray, anchor_rows: np.ndarray,
                 anchor_values: np.ndarray, method: str, strategy: str) -> tuple[np.ndarray, np.ndarray, str]:
        kernel = self.config.kernel
        if method == "sl":
            return self._predict_sl(frames, query)
        face_anchor = frames.has_face[anchor_rows]
        if method in ("interpolation", "hold-last") or not face_anchor.any():
            # anchors without a face have no embedding: time is all there is
            baseline = hold_last_anchor if method == "hold-last" else linear_interpolation
            used = "hold-last" if method == "hold-last" else "interpolation"
            values = baseline(query, anchor_rows, anchor_values)
            dt = np.abs(frames.time_s[query][:, None] - frames.time_s[anchor_rows][None, :]).min(axis=1)
            return np.clip(values, -1, 1), kernel.time_weight * (1 - np.exp(-dt / kernel.time_scale_s)), used
        anchor_rows, anchor_values = anchor_rows[face_anchor], anchor_values[face_anchor]

        eq, ea = _normalise(frames.embeddings[query]), _normalise(frames.embeddings[anchor_rows])
        similarity = eq @ ea.T  # (Q, A)
        dt = frames.time_s[query][:, None] - frames.time_s[anchor_rows][None, :]  # (Q, A), > 0: anchor before
        if method == "mtclar":
            self._require_heads()
            estimates = anchor_values[None] + self._deltas(frames.embeddings[query], frames.embeddings[anchor_rows])
        elif method == "kernel":
            estimates = np.repeat(anchor_values[None], len(query), axis=0)
            if frames.expression_probs is not None and frames.expression_classes:
                prior = expected_va(frames.expression_probs, frames.expression_classes)
                change = prior[query][:, None, :] - prior[anchor_rows][None, :, :]
                estimates = estimates + np.asarray(kernel.prior_weight)[None, None, :] * change
        else:
            raise ConfigError(f"unknown method {method!r}")
        estimates = np.clip(estimates, -1, 1)

        kernel_weights = _softmax(similarity / kernel.similarity_temperature - np.abs(dt) / kernel.time_scale_s)
        weights = self._strategy_weights(strategy, similarity, dt, kernel_weights)
        values = np.einsum("qa,qad->qd", weights, estimates)

        centre = np.einsum("qa,qad->qd", kernel_weights, estimates)
        spread = np.sqrt(np.einsum("qa,qad->qd", kernel_weights, (estimates - centre[:, None]) ** 2)).mean(axis=1)
        novelty = 1 - similarity.max(axis=1)
        remoteness = 1 - np.exp(-np.abs(dt).min(axis=1) / kernel.time_scale_s)
        uncertainty = spread + kernel.novelty_weight * np.clip(novelty, 0, None) + kernel.time_weight * remoteness
        return np.clip(values, -1, 1), uncertainty, method

    def _strategy_weights(self, strategy: str, similarity: np.ndarray, dt: np.ndarray,
                          kernel_weights: np.ndarray) -> np.ndarray:
        kernel = self.config.kernel
        if strategy == "kernel":
            return kernel_weights
        if strategy == "mean":
            return np.full_like(similarity, 1 / similarity.shape[1])
        if strategy == "similarity":
            return _softmax(similarity / kernel.similarity_temperature)
        if strategy == "time":
            return _softmax(-np.abs(dt) / kernel.time_scale_s)
        if strategy == "nearest-preceding":
            # the paper: the closest anchor at or before the frame; frames before every anchor take the first
            preceding = np.where(dt >= 0, dt, np.inf)
            choice = np.where(np.isfinite(preceding).any(axis=1), preceding.argmin(axis=1), np.abs(dt).argmin(axis=1))
            weights = np.zeros_like(similarity)
            weights[np.arange(len(choice)), choice] = 1.0
            return weights
        raise ConfigError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")

    @torch.inference_mode()
    def _deltas(self, query: np.ndarray, anchors: np.ndarray, batch: int = 8192) -> np.ndarray:
        """(Q, D), (A, D) -> predicted label(query) - label(anchor), (Q, A, 2)."""
        assert self.heads is not None
        q, a = len(query), len(anchors)
        eq = torch.as_tensor(query, dtype=torch.float32, device=self.device)
        ea = torch.as_tensor(anchors, dtype=torch.float32, device=self.device)
        qi, ai = torch.meshgrid(torch.arange(q), torch.arange(a), indexing="ij")
        qi, ai = qi.reshape(-1), ai.reshape(-1)
        out = np.empty((q * a, 2), dtype=np.float64)
        for start in range(0, q * a, batch):
            sl = slice(start, start + batch)
            pred = self.heads(eq[qi[sl]], ea[ai[sl]])
            out[sl, 0] = pred["delta_valence"].cpu().numpy()
            out[sl, 1] = pred["delta_arousal"].cpu().numpy()
        return out.reshape(q, a, 2)

    @torch.inference_mode()
    def _pair_deltas(self, query: np.ndarray, anchors: np.ndarray, batch: int = 8192) -> np.ndarray:
        """Row-wise pairs (P, D), (P, D) -> predicted label(query) - label(anchor), (P, 2)."""
        assert self.heads is not None
        out = np.empty((len(query), 2), dtype=np.float64)
        for start in range(0, len(query), batch):
            sl = slice(start, start + batch)
            pred = self.heads(torch.as_tensor(query[sl], dtype=torch.float32, device=self.device),
                              torch.as_tensor(anchors[sl], dtype=torch.float32, device=self.device))
            out[sl, 0] = pred["delta_valence"].cpu().numpy()
            out[sl, 1] = pred["delta_arousal"].cpu().numpy()
        return out

    @torch.inference_mode()
    def _predict_sl(self, frames: FrameFeatures, query: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
        if self.sl_head is None or self.sl_head.va is None:
            raise CheckpointError("method 'sl' needs an MT-CLAR+SL head trained on V/A (mtclar train-sl), and this "
                                  "checkpoint has none")
        out = self.sl_head(torch.as_tensor(frames.embeddings[query], dtype=torch.float32, device=self.device))
        values = torch.stack([out["valence"], out["arousal"]], dim=1).cpu().numpy().astype(np.float64)
        # no anchors: nothing to measure spread against, so the score only says "single-image guess"
        return np.clip(values, -1, 1), np.ones(len(query)), "sl"
