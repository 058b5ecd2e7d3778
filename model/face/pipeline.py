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
from .follow import FollowConfig, Window, detect_in_window
from .tracking import PersonTracker, TrackerConfig


@dataclass(frozen=True)
class PipelineConfig:
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    follow: FollowConfig = field(default_factory=FollowConfig)

    def to_dict(self) -> dict:
        return {"detector": self.detector.to_dict(), "tracker": self.tracker.to_dict(), "align": self.align.to_dict(),
                "follow": self.follow.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> PipelineConfig:
        align = dict(data.get("align", {}))
        if align.pop("template", "arcface5") != "arcface5":
            raise ConfigError(f"pipeline.align: unknown template {data['align']['template']!r}; known: arcface5")
        # a pipeline stored before "follow" existed detected every frame in full
        follow = data.get("follow", {"crop": 0.0})
        return cls(from_dict(DetectorConfig, data.get("detector"), "pipeline.detector"),
                   from_dict(TrackerConfig, data.get("tracker"), "pipeline.tracker"),
                   from_dict(AlignConfig, align, "pipeline.align"),
                   from_dict(FollowConfig, follow, "pipeline.follow"))


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
        last: Face | None = None  # the person on the previous batch's last frame
        since_full = 0  # frames detected in a window since the last whole-frame detection
        for batch in batches:
            faces, windowed = self._locate(batch, tracker, last, since_full)
            since_full = since_full + windowed if windowed == len(faces) else 0
            last = faces[-1]
            crops = [align_face(frame, face.landmarks, crop_size, self.config.align)
                     for frame, face in zip(batch.frames, faces, strict=True) if face is not None]
            yield TrackedBatch(batch.indices, faces, _stack(crops, crop_size))

    def _locate(self, batch: FrameBatch, tracker: PersonTracker, last: Face | None,
                since_full: int) -> tuple[list[Face | None], int]:
        """The person on each frame, and how many leading frames were found by detecting in a window.

        The frames after the first one the window misses (no face, or one cut by the window's side) are
        detected in full.
        """
        scale = self._scale(last)
        follow = self.config.follow
        faces: list[Face | None] = []
        if follow.enabled and last is not None and since_full < follow.full_every:
            height, width = batch.frames.shape[1:3]
            full = self.detector.full_scale(height, width)
            window = Window.around(last, follow.crop, min(scale or full, full))
            # a window no smaller than the whole frame at that scale would save nothing
            small = window.out_side ** 2 < height * width * window.scale ** 2
            found_in_window = detect_in_window(self.detector, batch.frames, window) if small else []
            for index, found in zip(batch.indices, found_in_window, strict=False):
                whole = [f for f in found if not window.cut_off(f, height, width, follow.edge)]
                face = tracker.update(int(index), whole)
                if face is None:
                    break
                faces.append(face)
        windowed = len(faces)
        if windowed < len(batch.indices):
            rest = batch.frames[windowed:]
            faces += [tracker.update(int(i), found) for i, found in
                      zip(batch.indices[windowed:], self.detector.detect(rest, scale), strict=True)]
        return faces, windowed

    def _scale(self, last: Face | None) -> float | None:
        """Detect at the scale that makes the tracked face ``face_px`` tall; full scale when nobody is tracked."""
        target = self.config.detector.face_px
        if not target or last is None:
            return None
        return target / max(last.box[3] - last.box[1], 1.0)

    def face_in_image(self, image: np.ndarray, crop_size: int) -> tuple[Face | None, np.ndarray | None]:
        """The largest face of a still image and its aligned crop, or (None, None)."""
        faces = self.detector.detect(image[None])[0]
        if not faces:
            return None, None
        face = max(faces, key=lambda f: f.area)
        return face, align_face(image, face.landmarks, crop_size, self.config.align)


def _stack(crops: list[np.ndarray], size: int) -> np.ndarray:
    return np.stack(crops) if crops else np.zeros((0, size, size, 3), dtype=np.uint8)
