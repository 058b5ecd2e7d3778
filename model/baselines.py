"""The baselines every few-shot labeller is compared with: hold-last-anchor and linear interpolation."""

from __future__ import annotations

import numpy as np


def _sorted(anchor_frames: np.ndarray, anchor_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    anchor_frames = np.asarray(anchor_frames)
    if anchor_frames.size == 0:
        raise ValueError("baselines need at least one anchor")
    order = np.argsort(anchor_frames, kind="stable")
    return anchor_frames[order], np.asarray(anchor_values, dtype=np.float64)[order]


def hold_last_anchor(frames: np.ndarray, anchor_frames: np.ndarray, anchor_values: np.ndarray) -> np.ndarray:
    """Copy the nearest preceding anchor; frames before the first anchor copy the first. (N, 2)."""
    anchor_frames, anchor_values = _sorted(anchor_frames, anchor_values)
    index = np.searchsorted(anchor_frames, np.asarray(frames), side="right") - 1
    return anchor_values[np.clip(index, 0, None)]


def linear_interpolation(frames: np.ndarray, anchor_frames: np.ndarray, anchor_values: np.ndarray) -> np.ndarray:
    """Linear in time between anchors, constant outside them. (N, 2)."""
    anchor_frames, anchor_values = _sorted(anchor_frames, anchor_values)
    frames = np.asarray(frames, dtype=np.float64)
    return np.stack([np.interp(frames, anchor_frames, anchor_values[:, d]) for d in range(anchor_values.shape[1])],
                    axis=1)
