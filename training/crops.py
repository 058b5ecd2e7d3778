"""Aligned face crops for training, made once by the face pipeline and cached on disk by content.

The crops are aligned on a canvas ``resize_ratio`` times the encoder's input (faceapi: 126 for 112;
EmoNet: 288 for 256) with the serving template shrunk by the same ratio, so that the centre
``input_size`` square of a canvas is exactly the crop the labeller aligns at serving time: the eval
transform (centre crop) reproduces serving, and the train transform's affine jitter and random crop have
real face context around them instead of padding.

Layout under ``<root>/<settings digest>/`` (the digest covers the pipeline settings and both sizes):
- ``images/<sha256 of the file>.npy``: (S, S, 3) uint8, or an empty array when the image has no face;
- ``videos/<content id>.npy``: (K, S, S, 3) uint8 crops of the requested frames that have a face, and
  ``videos/<content id>.json``: ``{"frames": {frame: row or -1}}`` for every frame requested so far.
Videos are tracked through every frame (the tracker needs continuity) but only requested frames are kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mtclar.model.face.pipeline import FacePipeline
from mtclar.model.files import atomic_write
from mtclar.model.video import content_id, iter_image_batches, read_image, sequence_content_id

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


@dataclass(frozen=True)
class CropRef:
    """Where one cached crop lives: ``file`` holds one crop (``row`` -1) or a stack of them."""

    file: str
    row: int = -1


def _atomic_write(path: Path, write) -> None:
    with atomic_write(path) as f:
        write(f)


def canvas_size(input_size: int, resize_ratio: float) -> int:
    return int(round(input_size * resize_ratio))


class CropCache:
    def __init__(self, root: str | Path, pipeline: FacePipeline, input_size: int, canvas: int,
                 batch_size: int = 16):
        if canvas < input_size:
            raise ValueError(f"the crop canvas ({canvas}) must be at least the encoder input ({input_size})")
        base = pipeline.config
        ratio = input_size / canvas
        align = replace(base.align, zoom=base.align.zoom * ratio, shift_y=base.align.shift_y * ratio)
        self.pipeline = FacePipeline(replace(base, align=align), detector=pipeline.detector)
        self.input_size, self.canvas, self.batch_size = input_size, canvas, batch_size
        settings = json.dumps({"format": CACHE_FORMAT, "pipeline": base.to_dict(), "input_size": input_size,
                               "canvas": canvas}, sort_keys=True)
        self.dir = Path(root) / hashlib.sha256(settings.encode()).hexdigest()[:12]

    # -- stills ---------------------------------------------------------------------------------------

    def image(self, path: str | Path) -> CropRef | None:
        """The largest face of an image, or None (the "no face" answer is cached too)."""
        file = self.dir / "images" / f"{content_id(path)}.npy"
        if file.exists():
            try:
                crop = np.load(file, mmap_mode="r")
                return CropRef(str(file)) if crop.ndim == 3 else None
            except (OSError, ValueError) as error:
                log.warning("recomputing unreadable crop cache entry %s: %s", file, error)
        _, crop = self.pipeline.face_in_image(read_image(path), self.canvas)
        crop = np.zeros((0,), dtype=np.uint8) if crop is None else np.ascontiguousarray(crop, dtype=np.uint8)
        _atomic_write(file, lambda f: np.save(f, crop))
        return CropRef(str(file)) if crop.ndim == 3 else None

    def images(self, paths: list[Path], show_progress: bool = False) -> list[CropRef | None]:
        return [self.image(p) for p in tqdm(paths, desc="faces in images", unit="image", disable=not show_progress,
                                            leave=False)]

    # -- videos and frame sequences ---------------------------------------------------------------------

    def video(self, frames: list[int], video_file: str | Path | None = None,
              frame_files: dict[int, Path] | None = None, fps: float | None = None,
              show_progress: bool = False) -> dict[int, CropRef]:
        """Crops of the requested ``frames`` of a video file or a frame sequence; frames without the
        tracked person are left out."""
        if (video_file is None) == (frame_files is None):
            raise ValueError("give a video file or frame files, not both or neither")
        if video_file is not None:
            key = content_id(video_file)
        else:
            assert frame_files is not None
            key = sequence_content_id([frame_files[i] for i in sorted(frame_files)])
        stack, index = self.dir / "videos" / f"{key}.npy", self.dir / "videos" / f"{key}.json"
        wanted = {int(f) for f in frames}
        known = self._read_index(index, stack)
        if known is None or not wanted <= set(known):
            wanted |= set(known or {})
            known = self._track(wanted, video_file, frame_files, fps, stack, index, show_progress)
        return {f: CropRef(str(stack), row) for f in sorted(frames) if (row := known[int(f)]) >= 0}

    @staticmethod
    def _read_index(index: Path, stack: Path) -> dict[int, int] | None:
        if not (index.exists() and stack.exists()):
            return None
        try:
            rows = {int(k): int(v) for k, v in json.loads(index.read_text())["frames"].items()}
            count = np.load(stack, mmap_mode="r").shape[0]
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as error:
            log.warning("recomputing unreadable crop cache entry %s: %s", index, error)
            return None
        return rows if all(r < count for r in rows.values()) else None

    def _track(self, wanted: set[int], video_file, frame_files, fps, stack: Path, index: Path,
               show_progress: bool) -> dict[int, int]:
        if video_file is not None:
            tracked = self.pipeline.track_video(video_file, self.canvas, self.batch_size)
            name = Path(video_file).name
        else:
            if fps is None:
                raise ValueError("a frame sequence needs its fps")
            tracked = self.pipeline.track(iter_image_batches(frame_files, self.batch_size), fps, self.canvas)
            name = Path(next(iter(frame_files.values()))).parent.name
        crops: list[np.ndarray] = []
        rows = dict.fromkeys(wanted, -1)
        for batch in tqdm(tracked, desc=f"faces in {name}", unit="batch", disable=not show_progress, leave=False):
            k = 0
            for frame, face in zip(batch.indices, batch.faces, strict=True):
                if face is None:
                    continue
                if int(frame) in rows:
                    rows[int(frame)] = len(crops)
                    crops.append(batch.crops[k])
                k += 1
        array = np.stack(crops) if crops else np.zeros((0, self.canvas, self.canvas, 3), dtype=np.uint8)
        _atomic_write(stack, lambda f: np.save(f, array))
        _atomic_write(index, lambda f: f.write(json.dumps({"frames": {str(k): v for k, v in sorted(rows.items())}})
                                               .encode()))
        return rows


class CropReader:
    """Reads cached crops; keeps the stacks it opened memory-mapped (one set per process)."""

    def __init__(self, max_open: int = 64):
        self.max_open = max_open
        self._open: dict[str, np.ndarray] = {}

    def __call__(self, ref: CropRef) -> np.ndarray:
        if ref.row < 0:
            return np.load(ref.file)
        stack = self._open.get(ref.file)
        if stack is None:
            if len(self._open) >= self.max_open:
                self._open.pop(next(iter(self._open)))
            stack = self._open[ref.file] = np.load(ref.file, mmap_mode="r")
        return np.array(stack[ref.row])

    def __getstate__(self) -> dict:  # memory maps are reopened in each DataLoader worker
        return {"max_open": self.max_open, "_open": {}}
