"""Expression classes -> a (valence, arousal) prior on Russell's circumplex.

Coarse coordinates (Russell 1980 style): they only tell the direction of a change between two frames,
which the cold-start predictor adds to an anchor's label, scaled by a tuned weight.
"""

from __future__ import annotations

import numpy as np

CIRCUMPLEX: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0),
    "happy": (0.8, 0.5),
    "sad": (-0.6, -0.4),
    "angry": (-0.6, 0.7),
    "anger": (-0.6, 0.7),
    "fearful": (-0.6, 0.7),
    "fear": (-0.6, 0.7),
    "disgusted": (-0.7, 0.2),
    "disgust": (-0.7, 0.2),
    "surprised": (0.2, 0.8),
    "surprise": (0.2, 0.8),
    "contempt": (-0.5, 0.3),
}


def class_coordinates(classes: tuple[str, ...] | list[str]) -> np.ndarray:
    """(C, 2) coordinates of an encoder's expression classes; unknown names raise."""
    unknown = [c for c in classes if c not in CIRCUMPLEX]
    if unknown:
        raise ValueError(f"no circumplex position for expression classes {unknown}")
    return np.array([CIRCUMPLEX[c] for c in classes], dtype=np.float64)


def expected_va(probs: np.ndarray, classes: tuple[str, ...] | list[str]) -> np.ndarray:
    """Expression probabilities (N, C) -> expected circumplex position (N, 2)."""
    return np.asarray(probs, dtype=np.float64) @ class_coordinates(classes)
