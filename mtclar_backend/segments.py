"""Per-frame V/A curve -> timeline segments whose value stays within a bounded error of every frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Segment:
    start: int  # first frame, 0-based, inclusive
    end: int  # last frame, inclusive
    valence: float
    arousal: float
    score: float  # mean per-frame score over the segment


def merge_segments(frames: np.ndarray, values: np.ndarray, scores: np.ndarray, tolerance: float,
                   max_length: int = 0) -> list[Segment]:
    """Greedy left-to-right merge: a segment grows while ``(max - min) / 2 <= tolerance`` in both dimensions
    and the frames stay consecutive; its value is the midpoint, so no frame is off by more than ``tolerance``.

    ``frames`` (N,) sorted 0-based frame numbers; ``values`` (N, 2); ``scores`` (N,).
    """
    frames = np.asarray(frames, dtype=int)
    values = np.asarray(values, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float64)
    if not (len(frames) == len(values) == len(scores)):
        raise ValueError("frames, values and scores differ in length")
    if len(frames) and np.any(np.diff(frames) <= 0):
        raise ValueError("frames must be strictly increasing")
    segments: list[Segment] = []
    start = 0
    low = high = None
    for i in range(len(frames) + 1):
        if i < len(frames):
            if low is None:
                low, high = values[i].copy(), values[i].copy()
                continue
            new_low, new_high = np.minimum(low, values[i]), np.maximum(high, values[i])
            consecutive = frames[i] == frames[i - 1] + 1
            short = not max_length or i - start < max_length
            if consecutive and short and np.all((new_high - new_low) / 2 <= tolerance):
                low, high = new_low, new_high
                continue
        if low is not None:
            middle = (low + high) / 2
            segments.append(Segment(int(frames[start]), int(frames[i - 1]), float(middle[0]), float(middle[1]),
                                    float(scores[start:i].mean())))
        if i < len(frames):
            start, low, high = i, values[i].copy(), values[i].copy()
    return segments


def expand_segments(segments: list[Segment], n_frames: int) -> np.ndarray:
    """Segments back to a per-frame curve (N, 2); NaN where no segment covers a frame."""
    curve = np.full((n_frames, 2), np.nan)
    for s in segments:
        curve[s.start:s.end + 1] = (s.valence, s.arousal)
    return curve


def merge_within_budget(frames: np.ndarray, values: np.ndarray, scores: np.ndarray, tolerance: float,
                        max_segments: int, max_tolerance: float = 0.2) -> tuple[list[Segment], float]:
    """``merge_segments`` at the smallest tolerance (``tolerance``, x1.5 per step, up to ``max_tolerance``) that
    gives at most ``max_segments`` segments: a timeline row per segment must stay readable and quick to submit.

    Returns the segments and the tolerance used (the bound on every frame's error).
    """
    while True:
        segments = merge_segments(frames, values, scores, tolerance)
        if len(segments) <= max_segments or tolerance >= max_tolerance:
            return segments, tolerance
        tolerance = min(tolerance * 1.5, max_tolerance)
