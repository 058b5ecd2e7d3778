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
    """Spans of several annotations -> per-frame anchors inside ``[0, n_frames)``, averaged where they overlap."""
    sums = np.zeros((max(n_frames, 0), 2))
    counts = np.zeros(max(n_frames, 0))
    for spans in annotations:
        for span in spans:
            low, high = max(span.start, 0), min(span.end, n_frames - 1)
            if low > high:
                continue
            sums[low:high + 1] += (span.valence, span.arousal)
            counts[low:high + 1] += 1
    frames = np.flatnonzero(counts)
    means = sums[frames] / counts[frames, None]
    return {int(f): (float(v), float(a)) for f, (v, a) in zip(frames, means, strict=True)}


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
