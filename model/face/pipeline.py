"""Frames -> the labelled person's face per frame -> aligned crops. Nothing downstream re-detects."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config_io import from_dict
from ..errors import ConfigError
from ..video import FrameBatch, VideoHeader, open_video
from .align import AlignConfig, align_face
from .detector import DetectorConfig, Face, RetinaFaceDetector
from .tracking import PersonTracker, TrackerConfig


@dataclass(frozen=True)
class PipelineConfig:
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    align: AlignConfig = field(default_factory=AlignConfig)

    def to_dict(self) -> dict:
        return {"detector": self.detector.to_dict(), "tracker": self.tracker.to_dict(), "align": self.align.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> PipelineConfig:
        align = dict(data.get("align", {}))
        if align.pop("template", "arcface5") != "arcface5":
            raise ConfigError(f"pipeline.align: unknown template {data['align']['template']!r}; known: arcface5")
        return cls(from_dict(DetectorConfig, data.get("detector"), "pipeline.detector"),
                   from_dict(TrackerConfig, data.get("tracker"), "pipeline.tracker"),
                   from_dict(AlignConfig, align, "pipeline.align"))


@dataclass(frozen=True)
class TrackedBatch:
    indices: np.ndarray  # (B,) frame indices
    faces: list[Face | None]  # the labelled person per frame, None where not visible
    crops: np.ndarray  # (K, S, S, 3) uint8 RGB, one per frame whose face is not None, in order

    @property
    def has_face(self) -> np.ndarray:
        return np.array([f is not None for f in self.faces], dtype=bool)


class FacePipeline:
    def __init__(self, config: PipelineConfig = PipelineConfig(), detector: RetinaFaceDetector | None = None,
                 device: str = "cpu"):
        self.config = config
        self.detector = detector or RetinaFaceDetector(config.detector, device)

    def track_video(self, path: str | Path, crop_size: int, batch_size: int = 16) -> Iterator[TrackedBatch]:
        """Decode, detect and align a whole video in one pass."""
        return self.track_opened(*open_video(path, batch_size), crop_size)

    def track_opened(self, header: VideoHeader, batches: Iterable[FrameBatch],
                     crop_size: int) -> Iterator[TrackedBatch]:
        """``track`` over a video opened by ``open_video`` (the caller keeps its header)."""
        return self.track(batches, header.fps, crop_size)

    def track(self, batches: Iterable[FrameBatch], fps: float, crop_size: int) -> Iterator[TrackedBatch]:
        """Follow the labelled person through batches of consecutive frames (a video or an image sequence)."""
        tracker = PersonTracker(fps, self.config.tracker)
        scale = None  # full detection scale until someone is tracked
        for batch in batches:
            detections = self.detector.detect(batch.frames, scale)
            faces = [tracker.update(int(i), found) for i, found in zip(batch.indices, detections, strict=True)]
            scale = self._next_scale(faces)
            crops = [align_face(frame, face.landmarks, crop_size, self.config.align)
                     for frame, face in zip(batch.frames, faces, strict=True) if face is not None]
            yield TrackedBatch(batch.indices, faces, _stack(crops, crop_size))

    def _next_scale(self, faces: list[Face | None]) -> float | None:
        """Detect at the scale that makes the tracked face ``face_px`` tall; back to full scale when lost."""
        target = self.config.detector.face_px
        if not target or faces[-1] is None:
            return None
        return target / max(faces[-1].box[3] - faces[-1].box[1], 1.0)

    def face_in_image(self, image: np.ndarray, crop_size: int) -> tuple[Face | None, np.ndarray | None]:
        """The largest face of a still image and its aligned crop, or (None, None)."""
        faces = self.detector.detect(image[None])[0]
        if not faces:
            return None, None
        face = max(faces, key=lambda f: f.area)
        return face, align_face(image, face.landmarks, crop_size, self.config.align)


def _stack(crops: list[np.ndarray], size: int) -> np.ndarray:
    return np.stack(crops) if crops else np.zeros((0, size, size, 3), dtype=np.uint8)
