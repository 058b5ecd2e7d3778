"""Detection in a small region around the last sighting of the person instead of in the whole frame.

A batch of frames after a sighting is cut to one square window around the last face box (the same window
for every frame of the batch, so the crops batch together), downscaled so that the face is about
``face_px`` tall, and detected there; boxes and landmarks are mapped back to frame pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .detector import Face, RetinaFaceDetector


@dataclass(frozen=True)
class FollowConfig:
    # side of the square window detected around the last face, in face sizes (its box's longer side);
    # 0 = off: every batch is detected on the whole frame. 2 was measured against 0 (benchmarks/follow.py,
    # benchmarks/fewshot.py --pipeline): few-shot CCC and the frame-to-frame jitter of the curves unchanged
    # on the dev and held-out clips; used only where the window is smaller than the downscaled frame
    crop: float = 2.0
    full_every: int = 64  # frames: a whole-frame detection at least this often, whatever the track does
    edge: float = 0.05  # a face closer than this (fraction of the window) to a window side inside the frame
    # may be cut off: the frame is detected again in full

    def to_dict(self) -> dict:
        return {"crop": self.crop, "full_every": self.full_every, "edge": self.edge}

    @property
    def enabled(self) -> bool:
        return self.crop > 0


@dataclass(frozen=True)
class Window:
    """A square region of a frame: top-left corner and side in frame pixels, and the detection scale."""

    x0: int
    y0: int
    side: int
    scale: float

    @classmethod
    def around(cls, face: Face, crop: float, scale: float) -> Window:
        side = max(int(round(face.size * crop)), 16)
        cx, cy = face.center
        return cls(int(round(cx - side / 2)), int(round(cy - side / 2)), side, scale)

    @property
    def out_side(self) -> int:
        return max(int(round(self.side * self.scale)), 16)

    def cut(self, frame: np.ndarray) -> np.ndarray:
        """The window of ``frame`` at the detection scale, zero outside the frame: (out_side, out_side, 3)."""
        height, width = frame.shape[:2]
        x0, y0 = max(self.x0, 0), max(self.y0, 0)
        x1, y1 = min(self.x0 + self.side, width), min(self.y0 + self.side, height)
        out = np.zeros((self.out_side, self.out_side, 3), dtype=frame.dtype)
        if x1 <= x0 or y1 <= y0:
            return out
        # the inside part's corners on the output grid, rounded the same way for every frame
        ox0, oy0 = (round((x0 - self.x0) * self.scale), round((y0 - self.y0) * self.scale))
        ox1 = min(round((x1 - self.x0) * self.scale), self.out_side)
        oy1 = min(round((y1 - self.y0) * self.scale), self.out_side)
        if ox1 <= ox0 or oy1 <= oy0:
            return out
        out[oy0:oy1, ox0:ox1] = cv2.resize(frame[y0:y1, x0:x1], (ox1 - ox0, oy1 - oy0), interpolation=cv2.INTER_AREA)
        return out

    def to_frame(self, face: Face) -> Face:
        """A face detected in the window's output, in frame pixels."""
        factor = self.side / self.out_side
        offset = np.array([self.x0, self.y0], dtype=np.float32)
        box = face.box * factor + np.tile(offset, 2)
        return Face(box.astype(np.float32), (face.landmarks * factor + offset).astype(np.float32), face.score)

    def cut_off(self, face: Face, height: int, width: int, edge: float) -> bool:
        """Whether ``face`` touches a side of the window that lies inside the frame (so it may be cut)."""
        margin = edge * self.side
        x1, y1 = self.x0 + self.side, self.y0 + self.side
        return bool((self.x0 > 0 and face.box[0] < self.x0 + margin) or (self.y0 > 0 and face.box[1] < self.y0 + margin)
                    or (x1 < width and face.box[2] > x1 - margin) or (y1 < height and face.box[3] > y1 - margin))


def detect_in_window(detector: RetinaFaceDetector, frames: np.ndarray, window: Window) -> list[list[Face]]:
    """Faces of each frame's ``window``, in frame pixels, sorted by score."""
    crops = np.stack([window.cut(frame) for frame in frames])
    return [[window.to_frame(face) for face in found] for found in detector.detect(crops, scale=1.0)]
