"""Everything a backend process holds once: settings, store, media resolver, loaded models, jobs, stats.

Models are loaded at start-up (Label Studio gives /setup 3 s); a project's fine-tuned checkpoint is
loaded once when it first serves and shares the encoder and face pipeline of the base model. Model work
(embedding, labelling) runs in at most ``model_slots`` requests at once, and a video is embedded once however
many requests ask for it at the same time: the other HTTP threads stay free for /health and webhooks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from mtclar.model.device import resolve_device
from mtclar.model.embeddings import VideoEmbeddings
from mtclar.model.errors import AnchorError
from mtclar.model.labeling import VideoLabeler

from mtclar.settings import Settings

from .jobs import TrainingJobs
from .ls_api import LabelStudioAPI, origin
from .ls_format import TaskMedia
from .media import MediaResolver
from .store import open_store

log = logging.getLogger(__name__)
BACKFILL_EVERY_S = 600.0  # Label Studio calls /setup often; the API walk runs at most this often per project


@dataclass
class Backfills:
    """Which projects are being (or were recently) backfilled from the Label Studio API, in this process."""

    running: set[int] = field(default_factory=set)
    last: dict[int, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self, project: int) -> bool:
        with self.lock:
            recent = time.monotonic() - self.last.get(project, -BACKFILL_EVERY_S) < BACKFILL_EVERY_S
            if project in self.running or recent:
                return False
            self.running.add(project)
            self.last[project] = time.monotonic()
            return True

    def release(self, project: int) -> None:
        with self.lock:
            self.running.discard(project)


class Runtime:
    def __init__(self, config: Settings):
        self.config = config
        config.model_dir.mkdir(parents=True, exist_ok=True)
        self.store = open_store(config.model_dir, config.redis_url)
        self.api = (LabelStudioAPI(config.label_studio_url, config.label_studio_api_key)
                    if config.label_studio_url and config.label_studio_api_key else None)
        self.media = MediaResolver(config.media_cache, config.media_roots, self.api, config.media_hosts)
        if config.threads:
            import torch

            torch.set_num_threads(config.threads)
        self.base = VideoLabeler(config.checkpoint, encoder_weights=config.encoder_weights,
                                 cache_dir=config.embedding_cache, device=str(resolve_device(config.device)),
                                 threads=config.threads)
        self._labelers: dict[str, VideoLabeler] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(config.model_slots)
        self.backfills = Backfills()
        self._embedding: dict[str, threading.Lock] = {}  # one lock per media file being embedded
        self.jobs = TrainingJobs(self.store, self.finetune, config.redis_url, "mtclar_backend.worker.run_job")
        self.latencies: deque[tuple[str, int, float]] = deque(maxlen=200)  # (mode, frames/tasks, seconds)
        self.started = time.time()

    # -- models ---------------------------------------------------------------------------------------

    def labeler(self, project: int | None) -> VideoLabeler:
        """The model serving a project: its fine-tuned checkpoint if it has one, else the base model."""
        serving = self.store.get_state(project, "serving") if project is not None else None
        if not serving:
            return self.base
        path = serving["path"]
        with self._lock:
            if path not in self._labelers:
                self._labelers[path] = self.base.with_checkpoint(path)
            return self._labelers[path]

    def model_version(self, project: int | None) -> str:
        """The checkpoint's name plus the project's anchor revision: new anchors -> new version, so Label
        Studio asks again for predictions it would otherwise consider current."""
        name = self.labeler(project).model_version
        return f"{name}.r{self.store.revision(project)}" if project is not None else name

    def api_for_setup(self, hostname: str | None, access_token: str | None) -> LabelStudioAPI | None:
        """The API client for a /setup call. The backend only ever talks to LABEL_STUDIO_URL: a /setup naming
        another server is ignored; one naming exactly that origin may lend its token when none is configured."""
        if self.api is not None or not access_token or not self.config.label_studio_url or not hostname:
            return self.api
        if origin(hostname) != origin(self.config.label_studio_url):
            log.warning("/setup names Label Studio at %r, not LABEL_STUDIO_URL's origin: its token is not used",
                        hostname[:100])
            return None
        return LabelStudioAPI(self.config.label_studio_url, access_token)

    # -- model work -----------------------------------------------------------------------------------

    @contextmanager
    def model_slot(self) -> Iterator[None]:
        """Held while a request embeds or labels: at most ``model_slots`` at once."""
        with self._slots:
            yield

    def _embed_once(self, path: Path, embed):
        """``embed(path)`` with one computation per file at a time; later callers find it in the cache."""
        key = str(path)
        with self._lock:
            lock = self._embedding.setdefault(key, threading.Lock())
        try:
            with lock, self.model_slot():
                return embed(path)
        finally:
            with self._lock:
                if not lock.locked():
                    self._embedding.pop(key, None)

    def video_embeddings(self, media: TaskMedia) -> VideoEmbeddings:
        path = self.media.local_path(media.url, media.task_id)
        return self._embed_once(path, self.base.embed)

    def image_embeddings(self, media: TaskMedia) -> VideoEmbeddings:
        """One frame image as a one-row sequence (cached per image content)."""
        path = self.media.local_path(media.url, media.task_id)
        return self._embed_once(path, lambda p: self.base.embedder.embed_frames({0: p}, fps=1.0, name=Path(p).name))

    # -- fine-tuning ----------------------------------------------------------------------------------

    def finetune(self, project: int, progress) -> dict:
        from mtclar.training.finetune import FinetuneConfig, ProjectVideo, finetune_project

        from .project_data import project_videos

        progress("collecting anchors", 0.02)
        found, skipped = project_videos(self, project)
        videos = [ProjectVideo(name, embeddings, anchors) for name, embeddings, anchors in found]
        if not videos:
            reasons = f" ({'; '.join(skipped.values())})" if skipped else ""
            raise AnchorError(f"project {project} has no anchors on frames with a face yet{reasons}")
        serving = self.labeler(project)
        config = FinetuneConfig(min_improvement=self.config.finetune_min_improvement)
        result = finetune_project(serving.checkpoint, videos, serving.expression_classes, config,
                                  on_progress=lambda message, f: progress(message, 0.1 + 0.85 * f))
        outcome = {"kept_new": result.kept_new, "before": result.before, "after": result.after,
                   "seconds": round(result.seconds, 2), "anchors": sum(len(v.anchors) for v in videos),
                   "videos": len(videos), "skipped_videos": skipped}
        if result.kept_new:
            path = self.config.model_dir / "projects" / str(project) / "checkpoints" / result.checkpoint.name
            result.checkpoint.save(path)  # atomic: a folder renamed into place
            self.store.set_state(project, "serving", {"path": str(path), "name": result.checkpoint.name})
            self.store.set_state(project, "annotations_since_training", {"count": 0})
        outcome["model_version"] = self.model_version(project)
        log.info("project %s fine-tune: kept_new=%s, %s", project, result.kept_new, result.table())
        return outcome

    # -- stats ----------------------------------------------------------------------------------------

    def record_latency(self, mode: str, items: int, seconds: float) -> None:
        self.latencies.append((mode, items, seconds))

    def latency_summary(self) -> dict:
        out = {}
        for mode in {m for m, _, _ in self.latencies}:
            values = np.array([s for m, _, s in self.latencies if m == mode])
            out[mode] = {"count": len(values), "mean_s": round(float(values.mean()), 4),
                         "p95_s": round(float(np.percentile(values, 95)), 4), "max_s": round(float(values.max()), 4)}
        return out

