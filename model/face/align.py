"""Similarity alignment of a face to a canonical crop from its 5 landmarks."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# ArcFace's 5-point template for a 112x112 crop (eyes, nose, mouth corners), as fractions of the side.
_ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
) / 112.0


@dataclass(frozen=True)
class AlignConfig:
    """``zoom`` < 1 shrinks the template towards the centre: more context (forehead, chin) in the crop.

    ``shift_y`` moves the face down (+) or up (-) in the crop, as a fraction of the side.
    """

    zoom: float = 1.0
    shift_y: float = 0.0

    def template(self, size: int) -> np.ndarray:
        points = (_ARCFACE_112 - 0.5) * self.zoom + 0.5
        points[:, 1] += self.shift_y
        return points * size

    def to_dict(self) -> dict:
        return {"template": "arcface5", "zoom": self.zoom, "shift_y": self.shift_y}


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` to ``dst``: (2, 3)."""
    # RANSAC with a threshold no point exceeds = all points are inliers, refined by least squares
    matrix, _ = cv2.estimateAffinePartial2D(
        src.astype(np.float32), dst.astype(np.float32), method=cv2.RANSAC, ransacReprojThreshold=1e6,
        refineIters=20,
    )
    if matrix is None:
        raise ValueError("degenerate landmarks: no similarity transform")
    return matrix


def align_face(frame: np.ndarray, landmarks: np.ndarray, size: int, config: AlignConfig = AlignConfig()) -> np.ndarray:
    """Warp ``frame`` (H, W, 3) so that ``landmarks`` (5, 2) land on the template: (size, size, 3)."""
    matrix = similarity_transform(landmarks, config.template(size))
    return cv2.warpAffine(frame, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
