"""A checkpoint made runnable: face pipeline + encoder + few-shot labeller behind one object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from .checkpoint import Checkpoint, load_checkpoint
from .correction import SegmentFolds
from .embeddings import EmbeddingCache, ProgressCallback, VideoEmbedder, VideoEmbeddings
from .encoders import create_encoder
from .encoders.base import FaceEncoder
from .face.pipeline import FacePipeline, PipelineConfig
from .fewshot import FewShotLabeler, FrameFeatures, FrameLabels, check_anchors
from .support import ErrorModel, suggest_frames


class VideoLabeler:
    def __init__(self, checkpoint: Checkpoint | str | Path | None = None, encoder: FaceEncoder | None = None,
                 encoder_weights: str | Path | None = None, cache_dir: str | Path | None = None,
                 device: str = "cpu", batch_size: int = 16, threads: int = 0, pipeline: FacePipeline | None = None,
                 precision: str = "auto"):
        self.checkpoint = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
        if encoder is None:
            kwargs = {"weights": encoder_weights} if encoder_weights is not None else {}
            encoder = create_encoder(self.checkpoint.encoder["name"], device=device, **kwargs)
            if self.checkpoint.encoder.get("weights_in_checkpoint"):
                encoder.load_state_dict({k[len("encoder."):]: v for k, v in self.checkpoint.state.items()
                                         if k.startswith("encoder.")}, strict=True)
                encoder.weights_id = self.checkpoint.name
        self.checkpoint.check_encoder(encoder)
        self.encoder = encoder.eval()
        if pipeline is None:
            config = PipelineConfig.from_dict(self.checkpoint.pipeline)
            pipeline = FacePipeline(replace(config, detector=replace(config.detector, threads=threads)), device=device)
        self.pipeline = pipeline
        self.embedder = VideoEmbedder(self.pipeline, self.encoder, EmbeddingCache(cache_dir), batch_size, precision)
        self.device = device
        self.labeler = FewShotLabeler(self.checkpoint.labeler, self.checkpoint.build_heads(device),
                                      self.checkpoint.heads_trained, self.checkpoint.build_sl_head(device), device)

    def with_checkpoint(self, checkpoint: Checkpoint | str | Path) -> VideoLabeler:
        """Another checkpoint, sharing this one's encoder and face pipeline when it can (no reload)."""
        checkpoint = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
        shared = not checkpoint.encoder.get("weights_in_checkpoint") and checkpoint.pipeline == self.checkpoint.pipeline
        return VideoLabeler(checkpoint, encoder=self.encoder if shared else None,
                            pipeline=self.pipeline if shared else None, cache_dir=self.embedder.cache.root,
                            device=self.device, batch_size=self.embedder.batch_size,
                            precision=self.embedder.precision)

    @property
    def placement(self) -> dict:
        """What runs where: the encoder's device and precision, the detector's ONNX Runtime providers."""
        return {"encoder": str(next(self.encoder.parameters()).device), "precision": self.embedder.precision,
                "detector": self.pipeline.detector.providers}

    @property
    def model_version(self) -> str:
        return self.checkpoint.name

    @property
    def expression_classes(self) -> tuple[str, ...]:
        return tuple(self.encoder.config.expression_classes)

    def embed(self, path: str | Path, show_progress: bool = False,
              on_progress: ProgressCallback | None = None) -> VideoEmbeddings:
        return self.embedder.embed_video(path, show_progress, on_progress)

    def features(self, video: VideoEmbeddings) -> FrameFeatures:
        return FrameFeatures.of(video, self.expression_classes)

    def label(self, video: VideoEmbeddings, anchors: Mapping[int, tuple[float, float]], method: str | None = None,
              strategy: str | None = None, fallback_weight: tuple[float, float] | None = None) -> FrameLabels:
        return self.labeler.label(self.features(video), anchors, method, strategy, fallback_weight)

    def held_out(self, video: VideoEmbeddings, anchors: Mapping[int, tuple[float, float]],
                 fallback_weight: tuple[float, float] | None = None) -> tuple[SegmentFolds, np.ndarray]:
        return self.labeler.held_out(self.features(video), anchors, fallback_weight=fallback_weight)

    def suggest(self, video: VideoEmbeddings, anchors: Mapping[int, tuple[float, float]], k: int) -> list[int]:
        """The ``k`` frames (with a face, not anchors) whose labels would cut the expected error of the
        labeller's interval over the video's face frames most, chosen greedily, returned in time order."""
        floor = self.labeler.config.floor
        model = ErrorModel(floor.interval_power, floor.interval_min_distance_s)
        anchor_rows, _ = check_anchors(anchors, len(video.has_face))
        picked = suggest_frames(k, video.time_s, video.has_face, anchor_rows, model)
        return sorted(picked.tolist())
