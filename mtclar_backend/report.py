"""What ``GET /report?project=N`` shows, gathered from what the backend already holds: the stored anchors and
state, and the embedding cache. Nothing is embedded here: a video whose embeddings are not cached is queued
for the background and reported as not ready.

Label efficiency is the labeller's own leave-one-segment-out validation (``FewShotLabeler.held_out``) on the
project's anchors: each segment of anchors held out whole, predicted by the model (interpolation + the
validated correction) and by plain interpolation from the other segments.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mtclar.model.errors import MediaError
from mtclar.model.fewshot import FrameLabels
from mtclar.model.metrics import DIMENSIONS, ccc, rmse

from .anchors import expand
from .ls_format import LabelSetup
from .model import FLOOR_WEIGHTS, project_weight
from .project_data import stored_media

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger(__name__)
SUGGESTIONS = 5  # frames suggested per video
MAX_VIDEOS = 20  # videos drawn per report (the others are listed)
FINAL = ("ready", "no stored task", "no anchor", "no face", "frame mode")  # statuses a reload would not change
MIN_HELD_OUT = 3  # held-out anchors needed to score a method


@dataclass
class VideoReport:
    key: str
    status: str  # "ready", or why there is no curve
    time_s: np.ndarray | None = None
    labels: FrameLabels | None = None
    anchors: dict[int, tuple[float, float]] = field(default_factory=dict)
    suggestions: list[int] = field(default_factory=list)
    held_out: int = 0
    segments: int = 0


@dataclass
class ProjectReport:
    project: int
    mode: str
    model_version: str
    base_model: str
    training: dict
    history: list[dict]
    agreement: dict
    efficiency: dict  # {"held_out": n, "videos": n, "model": {dim: {ccc, rmse}}, "interpolation": {...}} or {}
    videos: list[VideoReport]
    not_drawn: list[str]

    @property
    def complete(self) -> bool:
        """No video waits for its embeddings or failed on its media: a reload would draw the same page."""
        return all(video.status.startswith(FINAL) for video in self.videos)


def _scores(pred: np.ndarray, truth: np.ndarray) -> dict:
    return {dim: {"ccc": ccc(pred[:, d], truth[:, d]), "rmse": rmse(pred[:, d], truth[:, d])}
            for d, dim in enumerate(DIMENSIONS)}


def label_efficiency(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict:
    """(truth, model, interpolation) held-out arrays per video, (H, 2) each -> pooled CCC and RMSE."""
    parts = [p for p in parts if len(p[0])]
    if not parts or sum(len(p[0]) for p in parts) < MIN_HELD_OUT:
        return {}
    truth, model, interpolation = (np.concatenate(a) for a in zip(*parts, strict=True))
    return {"held_out": len(truth), "videos": len(parts), "model": _scores(model, truth),
            "interpolation": _scores(interpolation, truth)}


def _video(runtime: Runtime, project: int, key: str, weights: dict,
           held: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> VideoReport:
    media = stored_media(runtime, project, key)
    if not media:
        return VideoReport(key, "no stored task with a media URL")
    try:
        video = runtime.ready_embeddings(media[0])
    except MediaError as error:
        return VideoReport(key, f"media: {error}")
    if video is None:
        runtime.embeddings.queue(project, media[0])
        return VideoReport(key, "embeddings not ready yet: queued for the background; reload the page later")
    anchors = expand(runtime.store.spans(project, key), video.n_frames)
    if not anchors:
        return VideoReport(key, "no anchor inside the video")
    if not video.has_face.any():
        return VideoReport(key, "no face found in the video")
    labeler = runtime.labeler(project)
    fallback = project_weight(weights, key)
    with runtime.model_slot():
        labels = labeler.label(video, anchors, fallback_weight=fallback)
        suggestions = labeler.suggest(video, anchors, SUGGESTIONS)
        folds, weight = labeler.held_out(video, anchors, fallback_weight=fallback)
    if len(folds.truth):
        held.append((folds.truth, np.clip(folds.floor + weight[None, :] * folds.correction, -1, 1), folds.floor))
    return VideoReport(key, "ready", video.time_s, labels, anchors, suggestions, len(folds.truth), folds.n_segments)


def build_report(runtime: Runtime, project: int, setup: LabelSetup, agreement: dict) -> ProjectReport:
    keys = runtime.store.video_keys(project)
    videos: list[VideoReport] = []
    held: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    if setup.mode == "video":
        weights = runtime.store.get_state(project, FLOOR_WEIGHTS) or {}
        videos = [_video(runtime, project, key, weights, held) for key in keys[:MAX_VIDEOS]]
    else:
        videos = [VideoReport(key, "frame mode: curves are drawn for video-mode projects only") for key in keys]
    return ProjectReport(project, setup.mode, runtime.model_version(project), runtime.base.model_version,
                         runtime.jobs.state(project), runtime.jobs.history(project), agreement,
                         label_efficiency(held), videos, keys[MAX_VIDEOS:] if setup.mode == "video" else [])
