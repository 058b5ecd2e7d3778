"""Per-frame embeddings of a video (or of still images), computed once and cached on disk."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .device import autocast, resolve_precision
from .encoders.base import FaceEncoder
from .face.pipeline import FacePipeline, TrackedBatch
from .files import atomic_write
from .video import VideoInfo, content_id, iter_image_batches, open_video, read_image, sequence_content_id

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
ProgressCallback = Callable[[int, int], None]  # (frames done, frames expected)


@dataclass
class VideoEmbeddings:
    """Everything the labeller needs about one video. Arrays have one row per decoded frame."""

    info: VideoInfo
    has_face: np.ndarray  # (N,) bool
    face_score: np.ndarray  # (N,) detector score, 0 where no face
    boxes: np.ndarray  # (N, 4) x1 y1 x2 y2, NaN where no face
    landmarks: np.ndarray  # (N, 5, 2), NaN where no face
    embeddings: np.ndarray  # (N, D) float32, NaN where no face
    expression_probs: np.ndarray  # (N, C) float32, NaN where no face; C = 0 if the encoder has no classes
    encoder: str
    weights_id: str
    frames: np.ndarray | None = None  # (N,) frame number of each row when rows are not every frame (frame tasks)

    @property
    def n_frames(self) -> int:
        return len(self.has_face)

    @property
    def time_s(self) -> np.ndarray:
        frames = np.arange(self.n_frames) if self.frames is None else self.frames
        return frames / self.info.fps

    def save(self, path: Path) -> None:
        meta = {"format": CACHE_FORMAT, "info": self.info.__dict__, "encoder": self.encoder,
                "weights_id": self.weights_id}
        _atomic_savez(path, meta=np.array(json.dumps(meta)), has_face=self.has_face, face_score=self.face_score,
                      boxes=self.boxes, landmarks=self.landmarks, embeddings=self.embeddings,
                      expression_probs=self.expression_probs)

    @classmethod
    def load(cls, path: Path) -> VideoEmbeddings:
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != CACHE_FORMAT:
                raise ValueError(f"{path}: cache format {meta.get('format')}, expected {CACHE_FORMAT}")
            return cls(VideoInfo(**meta["info"]), data["has_face"], data["face_score"], data["boxes"],
                       data["landmarks"], data["embeddings"], data["expression_probs"], meta["encoder"],
                       meta["weights_id"])


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    with atomic_write(path) as f:
        np.savez(f, **arrays)


class EmbeddingCache:
    """One ``.npz`` per (video content, encoder, weights, face-pipeline settings)."""

    def __init__(self, root: str | Path | None):
        self.root = Path(root) if root is not None else None

    def path_for(self, video_id: str, encoder: FaceEncoder, pipeline: FacePipeline,
                 precision: str = "fp32") -> Path | None:
        if self.root is None:
            return None
        key = {"pipeline": pipeline.config.to_dict(), "encoder": encoder.config.to_dict()}
        if precision != "fp32":  # fp16 embeddings differ in the 3rd decimal: never mixed with fp32 ones
            key["precision"] = precision
        settings = json.dumps(key, sort_keys=True)
        digest = hashlib.sha256(settings.encode()).hexdigest()[:12]
        return self.root / encoder.name / encoder.weights_id / digest / f"{video_id}.npz"

    def get(self, path: Path | None) -> VideoEmbeddings | None:
        if path is None or not path.exists():
            return None
        try:
            return VideoEmbeddings.load(path)
        except Exception as error:  # a broken cache entry is recomputed, never fatal
            log.warning("ignoring unreadable cache entry %s: %s", path, error)
            return None


@torch.inference_mode()
def encode_crops(encoder: FaceEncoder, crops: np.ndarray, batch_size: int = 64,
                 precision: str = "fp32") -> tuple[np.ndarray, np.ndarray]:
    """(K, S, S, 3) uint8 -> embeddings (K, D) and expression probabilities (K, C), float32 whatever the precision.

    On CUDA each batch goes from pinned memory (as uint8) and, with ``precision`` fp16 (or auto), runs under
    fp16 autocast."""
    device = next(encoder.parameters()).device
    precision = resolve_precision(precision, device)
    pin = device.type == "cuda"
    n_classes = len(encoder.config.expression_classes)
    embeddings = np.zeros((len(crops), encoder.embed_dim), dtype=np.float32)
    probs = np.zeros((len(crops), n_classes), dtype=np.float32)
    for start in range(0, len(crops), batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(crops[start:start + batch_size]))
        with autocast(device, precision):
            out = encoder.forward_features(encoder.preprocess(batch.pin_memory() if pin else batch))
            logits = out.get("expression_logits") if n_classes else None
        embeddings[start:start + batch_size] = out["embedding"].float().cpu().numpy()
        if logits is not None:
            probs[start:start + batch_size] = logits.float().softmax(-1).cpu().numpy()
    return embeddings, probs


class VideoEmbedder:
    """decode -> detect -> track -> align -> encode, streamed in batches, cached per video."""

    def __init__(self, pipeline: FacePipeline, encoder: FaceEncoder, cache: EmbeddingCache | None = None,
                 batch_size: int = 16, precision: str = "auto"):
        self.pipeline = pipeline
        self.encoder = encoder.eval()
        self.cache = cache or EmbeddingCache(None)
        self.batch_size = batch_size
        self.precision = resolve_precision(precision, next(encoder.parameters()).device)

    def _cache_path(self, video_id: str) -> Path | None:
        return self.cache.path_for(video_id, self.encoder, self.pipeline, self.precision)

    def cached(self, path: str | Path) -> VideoEmbeddings | None:
        """The video's embeddings if the cache has them (the file is hashed, never decoded), else None."""
        return self.cache.get(self.cache_path(path))

    def cached_frames(self, frames: dict[int, Path]) -> VideoEmbeddings | None:
        """An image sequence's embeddings if the cache has them (the files are hashed, never decoded)."""
        paths = [frames[i] for i in sorted(frames)]
        return self.cache.get(self._cache_path(sequence_content_id(paths)))

    def cache_path(self, path: str | Path) -> Path | None:
        return self._cache_path(content_id(path))

    def embed_video(self, path: str | Path, show_progress: bool = False,
                    on_progress: ProgressCallback | None = None) -> VideoEmbeddings:
        video_id = content_id(path)
        cache_path = self._cache_path(video_id)
        cached = self.cache.get(cache_path)
        if cached is not None:  # the file is hashed, never opened as a video
            log.debug("embeddings of %s from cache %s", path, cache_path)
            return cached
        header, batches = open_video(path, self.batch_size)  # the one opening of the file as a video
        tracked = self.pipeline.track_opened(header, batches, self.encoder.input_size)
        rows = self._embed(tracked, header.declared_frames, Path(path).name, show_progress, on_progress)
        info = VideoInfo(str(path), len(rows["has_face"]), header.fps, header.width, header.height, video_id)
        return self._finish(info, rows, cache_path)

    def embed_frames(self, frames: dict[int, Path], fps: float, name: str = "", show_progress: bool = False,
                     on_progress: ProgressCallback | None = None) -> VideoEmbeddings:
        """An image sequence ({frame index: image path}, e.g. AFEW-VA) as a video; missing indices have no face."""
        paths = [frames[i] for i in sorted(frames)]
        video_id = sequence_content_id(paths)
        cache_path = self._cache_path(video_id)
        cached = self.cache.get(cache_path)
        if cached is not None:
            return cached
        tracked = self.pipeline.track(iter_image_batches(frames, self.batch_size), fps, self.encoder.input_size)
        rows = self._embed(tracked, len(frames), name or paths[0].parent.name, show_progress, on_progress)
        height, width = read_image(paths[0]).shape[:2]
        info = VideoInfo(str(paths[0].parent), len(rows["has_face"]), fps, width, height, video_id)
        return self._finish(info, rows, cache_path)

    def _embed(self, tracked: Iterable[TrackedBatch], expected: int, name: str, show_progress: bool,
               on_progress: ProgressCallback | None) -> dict[str, np.ndarray]:
        """Encode the tracked faces; rows indexed by frame number (gaps in an image sequence stay empty)."""
        rows = _Rows(expected, self.encoder.embed_dim, len(self.encoder.config.expression_classes))
        bar = tqdm(total=expected or None, unit="frame", desc=name, disable=not show_progress, leave=False)
        done = 0
        for batch in tracked:  # each batch is written into the rows and dropped: memory grows by rows only
            emb, probs = encode_crops(self.encoder, batch.crops, self.batch_size, self.precision)
            rows.write(batch.indices, batch.faces, emb, probs)
            done += len(batch.indices)
            bar.update(len(batch.indices))
            if on_progress is not None:
                on_progress(done, max(expected, done))
        bar.total = done  # containers may declare more frames than decode
        bar.refresh()
        bar.close()
        return rows.arrays()

    def _finish(self, info: VideoInfo, rows: dict[str, np.ndarray], cache_path: Path | None) -> VideoEmbeddings:
        result = VideoEmbeddings(info, **rows, encoder=self.encoder.name, weights_id=self.encoder.weights_id)
        if not result.has_face.any():
            log.warning("no face found in any of the %d frames of %s", result.n_frames, info.path)
        if cache_path is not None:
            result.save(cache_path)
        return result

    def embed_image(self, image: np.ndarray | str | Path) -> tuple[np.ndarray | None, np.ndarray | None]:
        """A still image -> (embedding (D,), expression probabilities (C,)) of its largest face, or (None, None)."""
        rgb = read_image(image) if isinstance(image, str | Path) else image
        face, crop = self.pipeline.face_in_image(rgb, self.encoder.input_size)
        if crop is None:
            return None, None
        emb, probs = encode_crops(self.encoder, crop[None], precision=self.precision)
        return emb[0], probs[0]


class _Rows:
    """Per-frame arrays filled batch by batch, sized from the declared frame count (up to a first allocation)
    and doubled when more frames decode."""

    FIRST_ALLOCATION = 65_536  # frames; a header may declare any count, so memory follows what decodes

    def __init__(self, expected: int, dim: int, n_classes: int):
        self.n = 0  # 1 + the largest frame index written
        self._arrays = self._empty(min(max(expected, 1), self.FIRST_ALLOCATION), dim, n_classes)

    @staticmethod
    def _empty(n: int, dim: int, n_classes: int) -> dict[str, np.ndarray]:
        return {"has_face": np.zeros(n, dtype=bool), "face_score": np.zeros(n, dtype=np.float32),
                "boxes": np.full((n, 4), np.nan, dtype=np.float32),
                "landmarks": np.full((n, 5, 2), np.nan, np.float32),
                "embeddings": np.full((n, dim), np.nan, dtype=np.float32),
                "expression_probs": np.full((n, n_classes), np.nan, dtype=np.float32)}

    def _grow(self, needed: int) -> None:
        old = self._arrays
        size = len(old["has_face"])
        if needed <= size:
            return
        grown = self._empty(max(needed, 2 * size), old["embeddings"].shape[1], old["expression_probs"].shape[1])
        for key, array in old.items():
            grown[key][:size] = array
        self._arrays = grown

    def write(self, indices: np.ndarray, faces: list, emb: np.ndarray, probs: np.ndarray) -> None:
        if len(indices):
            self._grow(int(np.max(indices)) + 1)
            self.n = max(self.n, int(np.max(indices)) + 1)
        rows, k = self._arrays, 0
        for index, face in zip(indices, faces, strict=True):
            if face is None:
                continue
            rows["has_face"][index], rows["face_score"][index] = True, face.score
            rows["boxes"][index], rows["landmarks"][index] = face.box, face.landmarks
            rows["embeddings"][index], rows["expression_probs"][index] = emb[k], probs[k]
            k += 1

    def arrays(self) -> dict[str, np.ndarray]:
        """Exactly the frames that decoded (a copy only when the container declared more)."""
        size = len(self._arrays["has_face"])
        return {key: array if self.n == size else array[:self.n].copy() for key, array in self._arrays.items()}
