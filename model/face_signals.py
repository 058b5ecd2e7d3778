"""What the face says about valence and arousal, per frame, before any V/A training: one signal per dimension.

The floor's cold-start correction reads the change of such a signal between a frame and its anchors
(model/correction.py). Two signals from the expression net's class probabilities:

- ``circumplex``: the expected position on Russell's circumplex (model/circumplex.py), the dimension's
  coordinate; signed (sad lowers valence and arousal, happy raises both).
- ``intensity``: how far the face is from neutral, ``-log(p_neutral + eps)``; unsigned. On the development
  clips it follows arousal more closely and at a steadier scale across clips than the circumplex arousal
  (within-clip correlation 0.50-0.95 against 0.22-0.94); it says nothing about the sign of valence.

Each signal is multiplied by the dimension's gain, so that the correction weight means the same for both.
"""

from __future__ import annotations

import numpy as np

from .circumplex import expected_va

SIGNALS = ("circumplex", "intensity")
INTENSITY_EPS = 1e-3  # floor of p_neutral: a face the net is sure is expressive stays finite


def neutral_intensity(probs: np.ndarray, classes: tuple[str, ...] | list[str]) -> np.ndarray:
    """``-log(p_neutral + eps)`` per row, (N,); needs a "neutral" class."""
    classes = list(classes)
    if "neutral" not in classes:
        raise ValueError(f"signal 'intensity' needs a 'neutral' expression class; the encoder has {classes}")
    p = np.asarray(probs, dtype=np.float64)[:, classes.index("neutral")]
    return -np.log(np.clip(p, 0.0, 1.0) + INTENSITY_EPS)


def va_signals(probs: np.ndarray, classes: tuple[str, ...] | list[str], kinds: tuple[str, str],
               gains: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """(N, C) class probabilities -> (N, 2) signal for (valence, arousal): ``kinds[d]`` scaled by ``gains[d]``."""
    unknown = [k for k in kinds if k not in SIGNALS]
    if unknown:
        raise ValueError(f"unknown face signal(s) {unknown}; choose from {', '.join(SIGNALS)}")
    circumplex = expected_va(probs, classes)
    out = np.empty((len(circumplex), 2))
    for d, kind in enumerate(kinds):
        out[:, d] = circumplex[:, d] if kind == "circumplex" else neutral_intensity(probs, classes)
    return out * np.asarray(gains, dtype=np.float64)[None, :]
