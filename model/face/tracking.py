"""Choose the labelled person: the largest face first, then the face that stays closest to it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .detector import Face


@dataclass(frozen=True)
class TrackerConfig:
    max_gap_s: float = 1.0  # after this long without the person, re-acquire the largest face
    max_jump: float = 0.6  # largest centre move between sightings, as a fraction of the face size
    min_size_ratio: float = 0.5  # a face this much smaller or larger than the last one is someone else

    def to_dict(self) -> dict:
        return {"max_gap_s": self.max_gap_s, "max_jump": self.max_jump, "min_size_ratio": self.min_size_ratio}


class PersonTracker:
    """Online, one frame at a time, so a video streams through once.

    A frame where the tracked person is not found gets ``None``, even when someone else is visible:
    a prediction for another person would be a made-up label.
    """

    def __init__(self, fps: float, config: TrackerConfig = TrackerConfig()):
        self.config = config
        self.max_gap = max(1, round(config.max_gap_s * fps))
        self._last: Face | None = None
        self._last_frame = -(10**9)

    def update(self, frame: int, faces: list[Face]) -> Face | None:
        lost = self._last is None or frame - self._last_frame > self.max_gap
        chosen = self._largest(faces) if lost else self._closest(faces)
        if chosen is not None:
            self._last, self._last_frame = chosen, frame
        return chosen

    @staticmethod
    def _largest(faces: list[Face]) -> Face | None:
        return max(faces, key=lambda f: f.area, default=None)

    def _closest(self, faces: list[Face]) -> Face | None:
        assert self._last is not None
        last = self._last
        best, best_distance = None, np.inf
        for face in faces:
            ratio = face.size / max(last.size, 1e-6)
            if not self.config.min_size_ratio <= ratio <= 1 / self.config.min_size_ratio:
                continue
            distance = float(np.linalg.norm(face.center - last.center)) / max(last.size, 1e-6)
            if distance <= self.config.max_jump and distance < best_distance:
                best, best_distance = face, distance
        return best
