"""Which frames to label: the support-set protocols of the benchmarks and the "label these next" suggestion.

Candidates are rows that may be chosen (in evaluation: the frames that have a ground-truth label).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

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


def most_uncertain(uncertainty: np.ndarray, candidates: np.ndarray, chosen: np.ndarray, k: int,
                   time_s: np.ndarray, min_gap_s: float) -> np.ndarray:
    """Greedy: the ``k`` candidates of largest uncertainty, each at least ``min_gap_s`` from the chosen ones.

    NaN uncertainty (no face) is never picked. When the gap rules everything out it is halved.
    """
    candidates = np.asarray(candidates)
    taken = list(np.asarray(chosen, dtype=int))
    picked: list[int] = []
    values = uncertainty[candidates]
    order = candidates[np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable")]
    order = order[np.isfinite(uncertainty[order])]
    gap = min_gap_s
    while len(picked) < k:
        for row in order:
            if len(picked) == k:
                break
            if row in taken:
                continue
            if taken and np.min(np.abs(time_s[taken] - time_s[row])) < gap:
                continue
            picked.append(int(row))
            taken.append(int(row))
        if gap < 1e-6:  # a pass with (almost) no gap has run: nothing more can be picked
            break
        gap /= 2
    return np.array(sorted(picked), dtype=int)


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


def suggest(k: int, candidates: np.ndarray, time_s: np.ndarray, embeddings: np.ndarray,
            uncertainty_of: Callable[[np.ndarray], np.ndarray], start: np.ndarray | None = None,
            min_gap_s: float = 1.0) -> np.ndarray:
    """Active selection: start diverse (or from ``start``), then add the most uncertain frame, one at a time.

    ``uncertainty_of(anchor_rows)`` returns per-row uncertainty given those anchors (the labeller's own
    score: no ground truth is looked at).
    """
    if k < 1:
        return np.zeros(0, dtype=int)
    chosen = np.asarray(start if start is not None else diverse_start(embeddings, candidates, 1, time_s), dtype=int)
    while len(chosen) < min(k, len(candidates)):
        nxt = most_uncertain(uncertainty_of(chosen), candidates, chosen, 1, time_s, min_gap_s)
        if nxt.size == 0:
            break
        chosen = np.sort(np.concatenate([chosen, nxt]))
    return chosen
