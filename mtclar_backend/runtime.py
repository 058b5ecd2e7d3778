"""Everything a backend process holds once: settings, store, media resolver, loaded models, jobs, stats.

Models are loaded at start-up (Label Studio gives /setup 3 s); a project's fine-tuned checkpoint is
loaded once when it first serves and shares the encoder and face pipeline of the base model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from model.embeddings import VideoEmbeddings
from model.errors import AnchorError
from model.labeling import VideoLabeler

from .config import BackendConfig
from .jobs import TrainingJobs
from .ls_api import LabelStudioAPI
from .media import MediaResolver
from .store import open_store

log = logging.getLogger(__name__)


def _device(name: str) -> str:
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


class Runtime:
    def __init__(self, config: BackendConfig):
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
                                 cache_dir=config.embedding_cache, device=_device(config.device),
                                 threads=config.threads)
        self._labelers: dict[str, VideoLabeler] = {}
        self._lock = threading.Lock()
        self.jobs = TrainingJobs(self.store, self.finetune, config.redis_url, "mtclar_backend.worker.run_job",
                                 (config.to_dict(),))
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

    # -- media ----------------------------------------------------------------------------------------

    def video_embeddings(self, url: str, task_id: int | None) -> VideoEmbeddings:
        path = self.media.local_path(url, task_id)
        return self.base.embed(path)

    def image_embeddings(self, url: str, task_id: int | None) -> VideoEmbeddings:
        """One frame image as a one-row sequence (cached per image content)."""
        path = self.media.local_path(url, task_id)
        return self.base.embedder.embed_frames({0: path}, fps=1.0, name=Path(path).name)

    # -- fine-tuning ----------------------------------------------------------------------------------

    def finetune(self, project: int, progress) -> dict:
        from training.finetune import FinetuneConfig, ProjectVideo, finetune_project

        from .project_data import project_videos

        progress("collecting anchors", 0.02)
        videos = [ProjectVideo(name, embeddings, anchors)
                  for name, embeddings, anchors in project_videos(self, project)]
        if not videos:
            raise AnchorError(f"project {project} has no anchors on frames with a face yet")
        serving = self.labeler(project)
        config = FinetuneConfig(min_improvement=self.config.finetune_min_improvement)
        result = finetune_project(serving.checkpoint, videos, serving.expression_classes, config,
                                  on_progress=lambda message, f: progress(message, 0.1 + 0.85 * f))
        outcome = {"kept_new": result.kept_new, "before": result.before, "after": result.after,
                   "seconds": round(result.seconds, 2), "anchors": sum(len(v.anchors) for v in videos),
                   "videos": len(videos)}
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

