"""A checkpoint made runnable: face pipeline + encoder + few-shot labeller behind one object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from .checkpoint import Checkpoint, load_checkpoint
from .embeddings import EmbeddingCache, ProgressCallback, VideoEmbedder, VideoEmbeddings
from .encoders import create_encoder
from .encoders.base import FaceEncoder
from .face.pipeline import FacePipeline, PipelineConfig
from .fewshot import FewShotLabeler, FrameFeatures, FrameLabels
from .support import diverse_start, most_uncertain


class VideoLabeler:
    def __init__(self, checkpoint: Checkpoint | str | Path | None = None, encoder: FaceEncoder | None = None,
                 encoder_weights: str | Path | None = None, cache_dir: str | Path | None = None,
                 device: str = "cpu", batch_size: int = 16, threads: int = 0, pipeline: FacePipeline | None = None):
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
            pipeline = FacePipeline(replace(config, detector=replace(config.detector, threads=threads)))
        self.pipeline = pipeline
        self.embedder = VideoEmbedder(self.pipeline, self.encoder, EmbeddingCache(cache_dir), batch_size)
        self.device = device
        self.labeler = FewShotLabeler(self.checkpoint.labeler, self.checkpoint.build_heads(device),
                                      self.checkpoint.heads_trained, self.checkpoint.build_sl_head(device), device)

    def with_checkpoint(self, checkpoint: Checkpoint | str | Path) -> VideoLabeler:
        """Another checkpoint, sharing this one's encoder and face pipeline when it can (no reload)."""
        checkpoint = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
        shared = not checkpoint.encoder.get("weights_in_checkpoint") and checkpoint.pipeline == self.checkpoint.pipeline
        return VideoLabeler(checkpoint, encoder=self.encoder if shared else None,
                            pipeline=self.pipeline if shared else None, cache_dir=self.embedder.cache.root,
                            device=self.device, batch_size=self.embedder.batch_size)

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
              strategy: str | None = None) -> FrameLabels:
        return self.labeler.label(self.features(video), anchors, method, strategy)

    def suggest(self, video: VideoEmbeddings, anchors: Mapping[int, tuple[float, float]], k: int,
                min_gap_s: float = 1.0) -> list[int]:
        """The ``k`` frames whose labels would help most next: with no anchors the most diverse faces,
        else the largest uncertainty, spaced in time."""
        candidates = np.flatnonzero(video.has_face)
        candidates = candidates[~np.isin(candidates, list(anchors))]
        if not anchors:
            return diverse_start(video.embeddings, candidates, k, video.time_s).tolist()
        uncertainty = self.label(video, anchors).uncertainty
        return most_uncertain(uncertainty, candidates, np.array(sorted(anchors), dtype=int), k, video.time_s,
                              min_gap_s).tolist()
