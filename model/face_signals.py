"""What the face says about valence and arousal, per frame, before any V/A training: one signal per dimension.

The floor's cold-start correction reads the change of such a signal between a frame and its anchors
(model/correction.py). Two signals from the expression net's class probabilities:

- ``circumplex``: the expected position on Russell's circumplex (model/circumplex.py), the dimension's
  coordinate; signed (sad lowers valence and arousal, happy raises both).
- ``happiness``: the log-odds of the positive classes (circumplex valence >= 0.5: happy) against neutral and the
  negative ones (valence <= 0), ``log(p_pos + eps) - log(p_rest + eps)``; surprise (ambiguous) is in neither.
  Log-odds keep a change visible when the net is already sure (0.9 -> 0.99 is as large as 0.1 -> 0.5 in
  effect) and the negative classes, which the net fires on talking or neutral faces, only count through
  the odds. On the development clips first-frame valence CCC 0.70 -> 0.83 against the circumplex; it is
  blind to a change between two negative expressions.
- ``intensity``: how far the face is from neutral, ``-log(p_neutral + eps)``; unsigned. On the development
  clips it follows arousal more closely and at a steadier scale across clips than the circumplex arousal
  (within-clip correlation 0.50-0.95 against 0.22-0.94); it says nothing about the sign of valence.

Each signal is multiplied by the dimension's gain, so that the correction weight means the same for both.
"""

from __future__ import annotations

import numpy as np

from .circumplex import class_coordinates, expected_va

SIGNALS = ("circumplex", "happiness", "intensity")
INTENSITY_EPS = 1e-3  # floor of a probability under a log: a face the net is sure of stays finite


def neutral_intensity(probs: np.ndarray, classes: tuple[str, ...] | list[str]) -> np.ndarray:
    """``-log(p_neutral + eps)`` per row, (N,); needs a "neutral" class."""
    classes = list(classes)
    if "neutral" not in classes:
        raise ValueError(f"signal 'intensity' needs a 'neutral' expression class; the encoder has {classes}")
    p = np.asarray(probs, dtype=np.float64)[:, classes.index("neutral")]
    return -np.log(np.clip(p, 0.0, 1.0) + INTENSITY_EPS)


def happiness(probs: np.ndarray, classes: tuple[str, ...] | list[str]) -> np.ndarray:
    """``log(p_positive + eps) - log(p_neutral_or_negative + eps)`` per row, (N,); positive: circumplex
    valence >= 0.5, neutral or negative: valence <= 0 (the rest, e.g. surprise, counts in neither)."""
    valence = class_coordinates(classes)[:, 0]
    positive, rest = valence >= 0.5, valence <= 0
    if not positive.any() or not rest.any():
        raise ValueError(f"signal 'happiness' needs a positive and a neutral or negative class; got {list(classes)}")
    p = np.clip(np.asarray(probs, dtype=np.float64), 0.0, 1.0)
    return np.log(p[:, positive].sum(axis=1) + INTENSITY_EPS) - np.log(p[:, rest].sum(axis=1) + INTENSITY_EPS)


def va_signals(probs: np.ndarray, classes: tuple[str, ...] | list[str], kinds: tuple[str, str],
               gains: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """(N, C) class probabilities -> (N, 2) signal for (valence, arousal): ``kinds[d]`` scaled by ``gains[d]``."""
    unknown = [k for k in kinds if k not in SIGNALS]
    if unknown:
        raise ValueError(f"unknown face signal(s) {unknown}; choose from {', '.join(SIGNALS)}")
    circumplex = expected_va(probs, classes)
    out = np.empty((len(circumplex), 2))
    for d, kind in enumerate(kinds):
        if kind == "circumplex":
            out[:, d] = circumplex[:, d]
        elif kind == "happiness":
            out[:, d] = happiness(probs, classes)
        else:
            out[:, d] = neutral_intensity(probs, classes)
    return out * np.asarray(gains, dtype=np.float64)[None, :]
