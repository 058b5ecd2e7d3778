"""Video input: decode with OpenCV, frame index (0-based, decode order), timestamp and fps."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from .errors import MediaError
from .files import sha256_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoInfo:
    path: str
    n_frames: int  # frames that actually decode, counted in decode order
    fps: float
    width: int
    height: int
    content_id: str  # sha256 of the file's bytes: the cache key of everything computed from it


@dataclass(frozen=True)
class FrameBatch:
    indices: np.ndarray  # (B,) int, 0-based frame indices
    frames: np.ndarray  # (B, H, W, 3) uint8 RGB


@lru_cache(maxsize=65536)  # a project's every video: a (path, size, mtime) key hashes a file once
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def content_id(path: str | Path) -> str:
    """sha256 of the file, memoised per (path, size, mtime)."""
    stat = Path(path).stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


def _open(path: str | Path) -> cv2.VideoCapture:
    p = Path(path)
    if not p.exists():
        raise MediaError(f"video not found: {p}")
    if not p.is_file():
        raise MediaError(f"not a file: {p}")
    if p.stat().st_size == 0:
        raise MediaError(f"video file is empty (0 bytes): {p}")
    if cv2.haveImageReader(str(p)):
        raise MediaError(f"{p} is an image, not a video")
    cap = cv2.VideoCapture(str(p), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise MediaError(f"cannot open {p}: not a video, or the file is corrupt")
    return cap


def _fps(cap: cv2.VideoCapture, path: str | Path) -> float:
    fps = float(cap.get(cv2.CAP_PROP_FPS))
    if not np.isfinite(fps) or fps <= 0 or fps > 1000:
        raise MediaError(f"{path}: the container reports no usable frame rate ({fps})")
    return fps


@dataclass(frozen=True)
class VideoHeader:
    fps: float
    declared_frames: int  # what the container says; may differ from what decodes
    width: int
    height: int


def _header(cap: cv2.VideoCapture, path: str | Path) -> VideoHeader:
    return VideoHeader(_fps(cap, path), int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
                       int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))


def read_header(path: str | Path) -> VideoHeader:
    cap = _open(path)
    try:
        return _header(cap, path)
    finally:
        cap.release()


def probe_video(path: str | Path) -> VideoInfo:
    """Open a video and count its decodable frames (grab only, no colour conversion)."""
    cap = _open(path)
    try:
        header = _header(cap, path)
        n = 0
        while cap.grab():
            n += 1
    finally:
        cap.release()
    if n == 0:
        raise MediaError(f"no frame of {path} could be decoded: the file is corrupt or not a video")
    if header.declared_frames > 0 and n < 0.9 * header.declared_frames:
        log.warning("%s: container declares %d frames but only %d decode (truncated?)", path,
                    header.declared_frames, n)
    return VideoInfo(str(path), n, header.fps, header.width, header.height, content_id(path))


def open_video(path: str | Path, batch_size: int = 16) -> tuple[VideoHeader, DecodedFrames]:
    """The header and the decoded frames (RGB batches, in order) from one opening of the file."""
    cap = _open(path)
    try:
        header = _header(cap, path)
    except BaseException:
        cap.release()
        raise
    return header, DecodedFrames(cap, path, batch_size)


def iter_frames(path: str | Path, batch_size: int = 16) -> Iterator[FrameBatch]:
    """Decode a whole video in order, as RGB batches."""
    return iter(open_video(path, batch_size)[1])


class DecodedFrames:
    """An opened video's frames as RGB batches; the file is released when they run out, on ``close()``, or
    when this object goes away unread."""

    def __init__(self, cap: cv2.VideoCapture, path: str | Path, batch_size: int):
        self._cap, self._path, self._batch_size = cap, path, batch_size

    def close(self) -> None:
        self._cap.release()

    def __del__(self) -> None:
        self.close()

    def __iter__(self) -> Iterator[FrameBatch]:
        index = 0
        frames: list[np.ndarray] = []
        try:
            while True:
                ok, bgr = self._cap.read()
                if not ok:
                    break
                frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                if len(frames) == self._batch_size:
                    yield FrameBatch(np.arange(index, index + len(frames)), np.stack(frames))
                    index += len(frames)
                    frames = []
            if frames:
                yield FrameBatch(np.arange(index, index + len(frames)), np.stack(frames))
                index += len(frames)
        finally:
            self.close()
        if index == 0:
            raise MediaError(f"no frame of {self._path} could be decoded: the file is corrupt or not a video")


def read_frame(path: str | Path, frame: int) -> np.ndarray:
    """One frame as RGB (seeks, then decodes forward)."""
    cap = _open(path)
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, frame)
        ok, bgr = cap.read()
    finally:
        cap.release()
    if not ok:
        raise MediaError(f"{path}: frame {frame} could not be decoded")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


def list_frame_images(folder: str | Path) -> dict[int, Path]:
    """Frame images named by their 0-based index (``00042.png``, ``42.jpg``) -> {index: path}."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MediaError(f"frame folder not found: {folder}")
    frames: dict[int, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.stem.isdigit():
            frames[int(path.stem)] = path
    if not frames:
        raise MediaError(f"{folder} holds no frame images named by number (e.g. 00000.png)")
    return frames


def sequence_content_id(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + content_id(path).encode())
    return digest.hexdigest()


def iter_image_batches(frames: dict[int, Path], batch_size: int = 16) -> Iterator[FrameBatch]:
    """Frame images in index order; a missing index yields no row (callers see the gap in ``indices``).

    A batch is cut where the image size changes, so every batch stacks.
    """
    indices: list[int] = []
    images: list[np.ndarray] = []
    for index in sorted(frames):
        image = read_image(frames[index])
        if images and (len(images) == batch_size or image.shape != images[0].shape):
            yield FrameBatch(np.array(indices), np.stack(images))
            indices, images = [], []
        indices.append(index)
        images.append(image)
    if images:
        yield FrameBatch(np.array(indices), np.stack(images))


def read_image(path: str | Path) -> np.ndarray:
    """An image file as RGB uint8, with the same errors as videos."""
    p = Path(path)
    if not p.is_file():
        raise MediaError(f"image not found: {p}")
    bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if bgr is None:
        raise MediaError(f"cannot decode image {p}: not an image, or the file is corrupt")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
