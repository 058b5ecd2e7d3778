"""Which frames to label: the support-set protocols of the benchmarks and the "label these next" suggestion.

Candidates are rows that may be chosen (in evaluation: the frames that have a ground-truth label).

``expected_error_reduction`` is the suggestion the labeller serves. The floor labeller's 80% half-width at a
frame is ``scale * max(d, min_distance) ** power`` with ``d`` the Brownian-bridge distance to the anchors
around it (model/correction.py): it depends on where the anchors are, not on their values. So the expected
error of the video, ``sum_q half_width(q) ** exponent`` over the frames that count, can be computed for any
candidate anchor before it is labelled, and the per-video scale is a common factor that does not change the
choice. Greedy: add the candidate that cuts that sum most, one at a time. A candidate only changes the frames
between its two neighbouring anchors, so each gap between anchors keeps its best candidate and only the gap
that was split is searched again (coarse to fine over its candidates).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .correction import smooth_in_time
from .errors import ConfigError

SPEC = re.compile(r"^(every|first|random|suggest):(\d+)$")


def parse_support(spec: str) -> tuple[str, int]:
    """``every:20`` | ``first:K`` | ``random:K`` | ``suggest:K``."""
    match = SPEC.match(spec.strip())
    if not match or int(match.group(2)) < 1:
        raise ConfigError(f"bad support set {spec!r}: use every:N, first:K, random:K or suggest:K (N, K >= 1)")
    return match.group(1), int(match.group(2))


def every(candidates: np.ndarray, step: int) -> np.ndarray:
    """Every ``step``-th candidate, starting with the first (the paper: every 20th frame from frame 0)."""
    return np.asarray(candidates)[::step]


def first(candidates: np.ndarray, k: int) -> np.ndarray:
    return np.asarray(candidates)[:k]


def random(candidates: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    candidates = np.asarray(candidates)
    chosen = np.random.default_rng(seed).choice(len(candidates), size=min(k, len(candidates)), replace=False)
    return np.sort(candidates[chosen])


def diverse_start(embeddings: np.ndarray, candidates: np.ndarray, k: int, time_s: np.ndarray) -> np.ndarray:
    """With no labels yet: k-centre greedy in embedding space (plus time), starting at the medoid-like frame."""
    candidates = np.asarray(candidates)
    if len(candidates) == 0 or k < 1:
        return candidates[:0]
    e = embeddings[candidates]
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    t = time_s[candidates]
    span = max(float(t.max() - t.min()), 1e-6)
    features = np.concatenate([e, (t / span)[:, None]], axis=1)
    chosen = [int(np.argmin(np.linalg.norm(features - features.mean(axis=0), axis=1)))]
    distance = np.linalg.norm(features - features[chosen[0]], axis=1)
    while len(chosen) < min(k, len(candidates)):
        nxt = int(np.argmax(distance))
        chosen.append(nxt)
        distance = np.minimum(distance, np.linalg.norm(features - features[nxt], axis=1))
    return np.sort(candidates[chosen])


# -- expected error reduction ---------------------------------------------------------------------------------


def _distance(t: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Bridge distance of times ``t`` between anchor times ``left`` < t < ``right`` (-inf / inf: no anchor
    on that side; both missing: inf). Broadcasts."""
    with np.errstate(invalid="ignore"):  # inf * 0 where a side has no anchor: replaced below
        bridge = (t - left) * (right - t) / np.where(np.isfinite(right - left), right - left, 1.0)
    return np.where(np.isfinite(left) & np.isfinite(right), bridge, np.minimum(t - left, right - t))


@dataclass(frozen=True)
class ErrorModel:
    """Expected error of a frame at bridge distance ``d``: ``max(d, min_distance_s) ** (power * exponent)``
    (``exponent`` 1: the interval half-width; 2: its square, a variance); 0 at an anchor."""

    power: float = 0.35
    min_distance_s: float = 0.1
    exponent: float = 1.0  # dev clips (benchmarks/suggest.py): 1 reached the CCC goals with fewer frames than 2

    def of(self, distance: np.ndarray) -> np.ndarray:
        out = np.maximum(distance, self.min_distance_s) ** (self.power * self.exponent)
        return np.where(distance > 0, out, 0.0)


@dataclass
class _Gap:
    """The frames between two neighbouring anchors (or before the first / after the last)."""

    left: float
    right: float
    best_row: int = -1
    reduction: float = -np.inf


def _gap_cost_after(candidate_t: np.ndarray, frame_t: np.ndarray, weight: np.ndarray, gap: _Gap,
                    model: ErrorModel) -> np.ndarray:
    """Expected error of the gap's frames with each candidate added as an anchor, (M,)."""
    c, t = candidate_t[:, None], frame_t[None, :]
    distance = np.where(t < c, _distance(t, gap.left, c), _distance(t, c, gap.right))
    distance = np.where(t == c, 0.0, distance)
    return model.of(distance) @ weight


def _search_gap(gap: _Gap, time_s: np.ndarray, candidates: np.ndarray, scored: np.ndarray, weight: np.ndarray,
                model: ErrorModel, max_eval: int) -> None:
    """Sets the gap's best candidate and its reduction of the expected error (inf when the video has no
    anchor yet). Coarse to fine: ``max_eval`` evenly spread candidates, then the span around the best."""
    inside = candidates[(time_s[candidates] > gap.left) & (time_s[candidates] < gap.right)]
    frames = scored[(time_s[scored] > gap.left) & (time_s[scored] < gap.right)]
    gap.best_row, gap.reduction = -1, -np.inf
    if inside.size == 0:
        return
    frame_t, frame_w = time_s[frames], weight[frames]
    before = float(model.of(_distance(frame_t, gap.left, gap.right)) @ frame_w) if frames.size else 0.0
    window = inside
    while True:
        probe = np.unique(np.linspace(0, window.size - 1, min(window.size, max_eval)).round().astype(int))
        after = _gap_cost_after(time_s[window[probe]], frame_t, frame_w, gap, model)
        best = int(np.argmin(after))
        if probe.size == window.size:
            break
        window = window[probe[max(best - 1, 0)]:probe[min(best + 1, probe.size - 1)] + 1]
    gap.best_row = int(window[probe[best]])
    gap.reduction = np.inf if not np.isfinite(before) else before - float(after[best])


def expected_error_reduction(k: int, time_s: np.ndarray, anchor_rows: np.ndarray, candidates: np.ndarray,
                             scored: np.ndarray, model: ErrorModel = ErrorModel(), weight: np.ndarray | None = None,
                             max_eval: int = 64) -> np.ndarray:
    """Greedy: the ``k`` candidates whose labels would cut the expected error over the ``scored`` rows most,
    in the order they are chosen.

    ``anchor_rows``: rows labelled already (with or without a face); ``candidates``: rows that may be
    suggested (anchors among them are skipped); ``scored``: rows whose error counts (the frames with a face);
    ``weight``: optional per-row weight of that error. With no anchor the first pick is the candidate that
    minimises the expected error as the only anchor.
    """
    time_s = np.asarray(time_s, dtype=np.float64)
    anchors = np.unique(np.asarray(anchor_rows, dtype=int))
    candidates = np.setdiff1d(np.asarray(candidates, dtype=int), anchors)
    scored = np.setdiff1d(np.asarray(scored, dtype=int), anchors)
    weight = np.ones(len(time_s)) if weight is None else np.asarray(weight, dtype=np.float64)
    bounds = np.concatenate([[-np.inf], np.sort(time_s[anchors]), [np.inf]])
    gaps = [_Gap(float(a), float(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    for gap in gaps:
        _search_gap(gap, time_s, candidates, scored, weight, model, max_eval)
    picked: list[int] = []
    while len(picked) < k:
        gap = max(gaps, key=lambda g: (g.reduction, -g.left))  # ties: the earliest gap
        if gap.best_row < 0:
            break
        row = gap.best_row
        picked.append(row)
        gaps.remove(gap)
        for part in (_Gap(gap.left, float(time_s[row])), _Gap(float(time_s[row]), gap.right)):
            _search_gap(part, time_s, candidates, scored, weight, model, max_eval)
            gaps.append(part)
    return np.array(picked, dtype=int)


STARTS = ("error", "diverse")


def suggest_frames(k: int, time_s: np.ndarray, has_face: np.ndarray, anchor_rows: np.ndarray,
                   model: ErrorModel = ErrorModel(), candidates: np.ndarray | None = None,
                   scored: np.ndarray | None = None, embeddings: np.ndarray | None = None,
                   start: str = "error", max_eval: int = 64) -> np.ndarray:
    """The ``k`` frames to label next, in the order chosen: expected error reduction over the frames with a face.

    ``candidates`` (default: the frames with a face) are restricted to frames with a face that are not
    anchors; ``scored`` (default: the frames with a face) are those whose error counts. With no anchors the
    first pick is the frame of least expected error as the only anchor (``start="error"``) or the most
    central face (``"diverse"``, needs ``embeddings``).
    """
    if start not in STARTS:
        raise ConfigError(f"unknown start {start!r}; choose one of {', '.join(STARTS)}")
    has_face = np.asarray(has_face, dtype=bool)
    anchor_rows = np.asarray(anchor_rows, dtype=int)
    faces = np.flatnonzero(has_face)
    candidates = faces if candidates is None else np.asarray(candidates, dtype=int)
    candidates = candidates[has_face[candidates] & ~np.isin(candidates, anchor_rows)]
    scored = faces if scored is None else np.asarray(scored, dtype=int)
    if k < 1 or candidates.size == 0:
        return np.zeros(0, dtype=int)
    first = np.zeros(0, dtype=int)
    if anchor_rows.size == 0 and start == "diverse":
        if embeddings is None:
            raise ConfigError("start='diverse' needs the embeddings")
        first = diverse_start(embeddings, candidates, 1, np.asarray(time_s, dtype=np.float64))
    rest = expected_error_reduction(k - first.size, time_s, np.concatenate([anchor_rows, first]), candidates,
                                    scored, model, max_eval=max_eval)
    return np.concatenate([first, rest]).astype(int)


def activity_time(time_s: np.ndarray, signal: np.ndarray, has_face: np.ndarray, share: float,
                  smooth_s: float = 0.2) -> np.ndarray:
    """A clock that runs faster where the face changes: ``(1 - share) * t + share * (the same span spread in
    proportion to the cumulative change of ``signal`` (N, D), smoothed in time, between face frames)``.

    Used as ``time_s`` of the suggestion, the expected error then grows with how much the face moved since
    the anchors, not only with time. Non-decreasing; ``share`` 0 gives ``time_s`` back.
    """
    time_s = np.asarray(time_s, dtype=np.float64)
    if share <= 0 or len(time_s) < 2:
        return time_s.copy()
    has_face = np.asarray(has_face, dtype=bool)
    smooth = smooth_in_time(np.nan_to_num(np.asarray(signal, dtype=np.float64)), has_face, time_s, smooth_s)
    step = np.linalg.norm(np.diff(smooth, axis=0), axis=1) * (has_face[1:] & has_face[:-1])
    total = float(step.sum())
    if total <= 0:
        return time_s.copy()
    change = time_s[0] + (time_s[-1] - time_s[0]) * np.concatenate([[0.0], np.cumsum(step)]) / total
    return (1 - share) * time_s + share * change
