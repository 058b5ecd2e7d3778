"""Interpolation as the floor: interpolation between anchors + a weighted correction from the face.

A frame ``q`` between anchors ``l`` and ``r`` (time weights ``lam_l + lam_r = 1``, linear in time; before
the first / after the last anchor only that anchor, weight 1) is predicted as

    interp(q) + w * correction(q),   correction(q) = lam_l * delta(q, l) + lam_r * delta(q, r)

where ``delta(q, a)`` is a predicted label(q) - label(a) (the MT-CLAR heads, or the change of the
expression-class prior at the cold start). With ``w = 1`` this is the time-weighted "anchor label +
predicted difference" of MT-CLAR; with ``w = 0`` it is linear interpolation. The correction is 0 at
every anchor and continuous across it, and the features it is read from are smoothed in time first
(Gaussian, face rows only, ``smooth_in_time``), so it adds no frame-to-frame jitter of its own.

``w`` (per dimension) is chosen by leave-one-segment-out on the video's own anchors. A *segment* is a
maximal run of anchors whose consecutive gaps are at most ``segment_gap_s`` (a labelled run of frames
is one segment; anchors spaced further apart are one segment each). Each fold holds a whole segment
out, predicts it from the other anchors and scores every held-out anchor; a held-out frame's neighbour
is never in the fold's training anchors, so copying a neighbour is not rewarded.

The same folds calibrate an 80% interval: |residual| grows with the Brownian-bridge distance to the
anchors, ``d = d_l d_r / (d_l + d_r)`` (the distance to the only anchor outside them), as ``d ** power``
(0.5 for a random walk; the labelled clips grow slower), so ``half-width(q) = k * d(q) ** power`` with
``k`` the 80% quantile of ``|residual| / d ** power`` over the folds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# (rows (P,), anchor ids (P,)) -> predicted label(row) - label(anchor), (P, 2)
DeltaFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Brackets:
    left: np.ndarray  # (Q,) index of the anchor at or before each query (the first anchor before all)
    right: np.ndarray  # (Q,) index of the anchor at or after (the last anchor after all)
    weight_left: np.ndarray  # (Q,) time weight of ``left``; 1 where left == right
    distance_s: np.ndarray  # (Q,) Brownian-bridge distance to the anchors (s); 0 at an anchor


def brackets(query_t: np.ndarray, anchor_t: np.ndarray) -> Brackets:
    """The two anchors around each query time (``anchor_t`` sorted, at least one)."""
    query_t, anchor_t = np.asarray(query_t, dtype=np.float64), np.asarray(anchor_t, dtype=np.float64)
    right = np.clip(np.searchsorted(anchor_t, query_t, side="left"), 0, len(anchor_t) - 1)
    left = np.clip(np.searchsorted(anchor_t, query_t, side="right") - 1, 0, len(anchor_t) - 1)
    d_left, d_right = np.abs(query_t - anchor_t[left]), np.abs(anchor_t[right] - query_t)
    span = d_left + d_right
    inside = (left != right) & (span > 0)
    weight_left = np.where(inside, d_right / np.where(inside, span, 1.0), 1.0)
    # outside the anchors left == right: distance to that anchor; inside: d_l d_r / (d_l + d_r)
    distance = np.where(inside, d_left * d_right / np.where(inside, span, 1.0), np.minimum(d_left, d_right))
    return Brackets(left, right, weight_left, distance)


def segment_ids(anchor_t: np.ndarray, max_gap_s: float) -> np.ndarray:
    """Segment number of each (sorted) anchor: a new segment starts where the gap exceeds ``max_gap_s``."""
    anchor_t = np.asarray(anchor_t, dtype=np.float64)
    if anchor_t.size == 0:
        return np.zeros(0, dtype=int)
    return np.concatenate([[0], np.cumsum(np.diff(anchor_t) > max_gap_s)]).astype(int)


def raw_correction(rows: np.ndarray, time_s: np.ndarray, anchor_ids: np.ndarray, anchor_t: np.ndarray,
                   delta: DeltaFn) -> np.ndarray:
    """Time-weighted predicted difference to the two anchors around each row, (len(rows), 2)."""
    rows = np.asarray(rows, dtype=int)
    if rows.size == 0 or anchor_ids.size == 0:
        return np.zeros((rows.size, 2))
    b = brackets(time_s[rows], anchor_t)
    both = delta(np.concatenate([rows, rows]), np.concatenate([anchor_ids[b.left], anchor_ids[b.right]]))
    d_left, d_right = both[: rows.size], both[rows.size:]
    return b.weight_left[:, None] * d_left + (1 - b.weight_left[:, None]) * d_right


def smooth_in_time(values: np.ndarray, valid: np.ndarray, time_s: np.ndarray, sigma_s: float) -> np.ndarray:
    """Gaussian smoothing over rows (assumed evenly spaced in time), NaN-free: invalid rows get no weight.

    Rows that are invalid keep their (smoothed) value; callers mask them. (N, D) -> (N, D).
    """
    values = np.asarray(values, dtype=np.float64)
    if sigma_s <= 0 or len(values) < 3:
        return values.copy()
    step = float(np.median(np.diff(time_s))) if len(time_s) > 1 else 1.0
    sigma = sigma_s / max(step, 1e-9)
    if sigma < 0.3:
        return values.copy()
    half = int(np.ceil(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    mask = np.asarray(valid, dtype=np.float64)

    def centred(x: np.ndarray) -> np.ndarray:  # full convolution cut to the input's rows (any length)
        return np.convolve(x, kernel)[half:half + len(x)]

    weight = centred(mask)
    out = np.empty_like(values)
    for d in range(values.shape[1]):
        summed = centred(np.where(mask > 0, values[:, d], 0.0))
        out[:, d] = np.where(weight > 1e-12, summed / np.maximum(weight, 1e-12), 0.0)
    return out


def choose_weight(truth: np.ndarray, floor: np.ndarray, correction: np.ndarray, grid: tuple[float, ...],
                  margin: float = 0.0) -> float:
    """The grid weight with the least squared error of ``clip(floor + w * correction)``; ties and wins
    smaller than ``margin`` (relative to w = 0) go to the smaller weight, 0 first. 1-d arrays."""
    grid = tuple(sorted(grid))
    errors = np.array([np.sum((truth - np.clip(floor + w * correction, -1, 1)) ** 2) for w in grid])
    best = int(np.argmin(errors))
    zero = grid.index(0.0) if 0.0 in grid else None
    if zero is not None and errors[best] > errors[zero] * (1 - margin):
        return 0.0
    return float(grid[best])


def interval_scale(abs_residual: np.ndarray, distance_s: np.ndarray, quantile: float, min_distance_s: float,
                   power: float = 0.5) -> float:
    """``k`` such that ``k * d ** power`` covers ``quantile`` of the residuals (NaN when there are none)."""
    if abs_residual.size == 0:
        return float("nan")
    z = abs_residual / np.maximum(distance_s, min_distance_s) ** power
    return float(np.quantile(z, quantile))


@dataclass
class SegmentFolds:
    """Leave-one-segment-out predictions of the held-out anchors (with a face), pooled over folds."""

    n_segments: int
    truth: np.ndarray  # (H, 2)
    floor: np.ndarray  # (H, 2) interpolation from the fold's training anchors
    correction: np.ndarray  # (H, 2) correction from the fold's training anchors
    distance_s: np.ndarray  # (H,) bridge distance to the fold's training anchors
    segment: np.ndarray  # (H,) which segment (fold) each held-out anchor belongs to

    def residual(self, weight: np.ndarray) -> np.ndarray:
        return self.truth - np.clip(self.floor + np.asarray(weight)[None, :] * self.correction, -1, 1)


def leave_one_segment_out(time_s: np.ndarray, has_face: np.ndarray, anchor_rows: np.ndarray,
                          anchor_values: np.ndarray, delta: DeltaFn | None, segment_gap_s: float) -> SegmentFolds:
    """Hold each segment of anchors out whole and predict it from the others.

    ``anchor_rows`` sorted; ``delta`` takes ids into the anchors that have a face, in order (None: no
    correction, all zeros).
    """
    time_s = np.asarray(time_s, dtype=np.float64)
    anchor_t = time_s[anchor_rows]
    segment = segment_ids(anchor_t, segment_gap_s)
    n_segments = int(segment.max()) + 1 if segment.size else 0
    face_anchor = has_face[anchor_rows]
    face_ids = np.cumsum(face_anchor) - 1  # anchor index -> id among the anchors with a face
    parts: list[tuple[np.ndarray, ...]] = []
    for k in range(n_segments if n_segments >= 2 else 0):
        held, train = segment == k, segment != k
        rows = anchor_rows[held & face_anchor]
        train_face = train & face_anchor
        if rows.size == 0:
            continue
        floor = np.stack([np.interp(time_s[rows], anchor_t[train], anchor_values[train, d]) for d in range(2)], 1)
        correction = (raw_correction(rows, time_s, face_ids[train_face], anchor_t[train_face], delta)
                      if delta is not None and train_face.any() else np.zeros((rows.size, 2)))
        distance = brackets(time_s[rows], anchor_t[train]).distance_s
        parts.append((anchor_values[held & face_anchor], floor, correction, distance, np.full(rows.size, k)))
    if not parts:
        empty = np.zeros((0, 2))
        return SegmentFolds(n_segments, empty, empty, empty, np.zeros(0), np.zeros(0, dtype=int))
    return SegmentFolds(n_segments, *(np.concatenate(p) for p in zip(*parts, strict=True)))
