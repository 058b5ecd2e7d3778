"""Anchors as a person labelled them: spans of frames with one (valence, arousal), on the model's [-1, 1] scale.

Spans are what is stored (a range of a million frames costs one row); they become per-frame anchors only
against a decoded video, clipped to its frames, so memory follows the video, never a number in a payload.
Where annotations overlap, a frame's anchor is their mean.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

Anchors = dict[int, tuple[float, float]]  # 0-based frame -> (valence, arousal)


@dataclass(frozen=True)
class Span:
    start: int  # first frame, 0-based, inclusive
    end: int  # last frame, inclusive
    valence: float
    arousal: float


def expand(annotations: list[list[Span]], n_frames: int) -> Anchors:
    """Spans of several annotations -> per-frame anchors inside ``[0, n_frames)``, averaged where they overlap.
    Costs the labelled frames (at most the video), never ``n_frames`` itself: frame mode passes a large bound."""
    clipped = [(max(s.start, 0), min(s.end, n_frames - 1), s.valence, s.arousal)
               for spans in annotations for s in spans]
    clipped = [c for c in clipped if c[0] <= c[1]]
    if not clipped:
        return {}
    low, high = min(c[0] for c in clipped), max(c[1] for c in clipped)
    if 4 * sum(end - start + 1 for start, end, _, _ in clipped) < high - low + 1:  # sparse: a few far-apart frames
        totals: dict[int, list[float]] = {}
        for start, end, v, a in clipped:
            for frame in range(start, end + 1):
                total = totals.setdefault(frame, [0.0, 0.0, 0])
                total[0], total[1], total[2] = total[0] + v, total[1] + a, total[2] + 1
        return {f: (t[0] / t[2], t[1] / t[2]) for f, t in sorted(totals.items())}
    sums = np.zeros((high - low + 1, 2))  # dense: one array over the labelled range, at most the video
    counts = np.zeros(high - low + 1)
    for start, end, v, a in clipped:
        sums[start - low:end - low + 1] += (v, a)
        counts[start - low:end - low + 1] += 1
    frames = np.flatnonzero(counts)
    means = sums[frames] / counts[frames, None]
    return {int(f) + low: (float(v), float(a)) for f, (v, a) in zip(frames, means, strict=True)}


def last_frame(annotations: list[list[Span]]) -> int:
    """The largest frame any span names (-1 when there is none)."""
    return max((span.end for spans in annotations for span in spans), default=-1)


def encode(spans: list[Span]) -> str:
    return json.dumps([[s.start, s.end, s.valence, s.arousal] for s in spans])


def decode(text: str) -> list[Span]:
    data = json.loads(text)
    if isinstance(data, dict):  # the first store format: {frame: [v, a]}
        return [Span(int(f), int(f), float(v), float(a)) for f, (v, a) in data.items()]
    return [Span(int(s), int(e), float(v), float(a)) for s, e, v, a in data]
