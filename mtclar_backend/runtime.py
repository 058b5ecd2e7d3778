"""What a backend process holds once: settings, store, media resolver, loaded models, jobs, stats.

Models are loaded at start-up (Label Studio gives /setup 3 s); a project's fine-tuned checkpoint is
loaded once when it first serves and shares the encoder and face pipeline of the base model. Model work
(embedding, labelling) runs in at most ``model_slots`` requests at once, and a video is embedded once however
many requests ask for it at the same time: the other HTTP threads stay free for /health and webhooks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mtclar.model.device import resolve_device
from mtclar.model.embeddings import ProgressCallback, VideoEmbeddings
from mtclar.model.files import release_free_memory
from mtclar.model.labeling import VideoLabeler
from mtclar.settings import Settings

from .backfill import Backfills
from .curve import CurveWriter
from .embedding_queue import EmbeddingQueue
from .embedding_rq import RQEmbeddingQueue
from .finetune_job import finetune_project_job
from .image_index import ImageIndex
from .jobs import TrainingJobs
from .ls_api import LabelStudioAPI, origin
from .ls_format import TaskMedia
from .media import MediaResolver
from .stats import LatencyStats
from .store import open_store

log = logging.getLogger(__name__)
IMAGE_INDEX_MB = 64  # frame images' embeddings held in memory (about 2 KB each with the default encoder)


def base_labeler(settings: Settings) -> VideoLabeler:
    """The model every project starts from (``MTCLAR_CHECKPOINT``, else the shipped default)."""
    if settings.threads:
        import torch

        torch.set_num_threads(settings.threads)
    return VideoLabeler(settings.checkpoint, encoder_weights=settings.encoder_weights,
                        cache_dir=settings.embedding_cache, device=str(resolve_device(settings.device)),
                        threads=settings.threads, batch_size=settings.batch_size, precision=settings.precision)


class Runtime:
    """``make_labeler`` is the seam for the model: the default loads the configured checkpoint."""

    def __init__(self, config: Settings, make_labeler: Callable[[Settings], VideoLabeler] = base_labeler):
        self.config = config
        config.model_dir.mkdir(parents=True, exist_ok=True)
        self.store = open_store(config.model_dir, config.redis_url)
        self.api = (LabelStudioAPI(config.label_studio_url, config.label_studio_api_key)
                    if config.label_studio_url and config.label_studio_api_key else None)
        self.media = MediaResolver(config.media_cache, config.media_roots, self.api, config.media_hosts)
        self.base = make_labeler(config)
        self._labelers: dict[str, VideoLabeler] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(config.model_slots)
        self.backfills = Backfills()
        self._embedding: dict[str, threading.Lock] = {}  # one lock per media file being embedded
        self.jobs = TrainingJobs(self.store, lambda project, progress: finetune_project_job(self, project, progress),
                                 config.redis_url, "mtclar_backend.worker.run_job")
        self.latencies = LatencyStats()
        self.curves = CurveWriter(self.api)  # predicted curves into task data, for a TimeSeries beside the video
        self.embeddings = self._embedding_queue()
        self.images = ImageIndex(IMAGE_INDEX_MB * 2**20)
        self.started = time.time()

    def _embedding_queue(self) -> EmbeddingQueue | RQEmbeddingQueue:
        """Embedding in the background: on RQ workers when REDIS_URL is set, else in this process."""
        embed = {"video": self.video_embeddings, "image": self.image_embeddings}
        if self.config.redis_url:
            return RQEmbeddingQueue(self.config.redis_url, embed,
                                    {"video": self.ready_embeddings, "image": self.ready_image_embeddings},
                                    self.has_embeddings, self.store.bump_revision)
        return EmbeddingQueue(embed, self.ready_embeddings, self.has_embeddings, self.store.bump_revision,
                              self.config.embed_workers)

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

    def model_versions(self, project: int | None) -> list[str]:
        """The base model's name, then the kept fine-tunes of ``project`` (of every project when None)."""
        projects = self.config.model_dir / "projects"
        pattern = f"{project}/checkpoints/*/config.json" if project is not None else "*/checkpoints/*/config.json"
        names = sorted({path.parent.name for path in projects.glob(pattern)}) if projects.is_dir() else []
        return [self.base.model_version, *names]

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

    def video_embeddings(self, media: TaskMedia, on_progress: ProgressCallback | None = None) -> VideoEmbeddings:
        path = self.media.local_path(media.url, media.task_id)
        try:
            return self._embed_once(path, lambda p: self.base.embed(p, on_progress=on_progress))
        finally:
            release_free_memory()

    def has_embeddings(self, media: TaskMedia) -> bool:
        """Whether the cache holds the video's embeddings (a stat, no download, no decode)."""
        path = self.media.local_path(media.url, media.task_id, download=False)
        cached = self.base.embedder.cache_path(path) if path is not None else None
        return cached is not None and cached.is_file()

    def ready_embeddings(self, media: TaskMedia) -> VideoEmbeddings | None:
        """The video's embeddings when they need neither a download nor a decode, else None."""
        path = self.media.local_path(media.url, media.task_id, download=False)
        return self.base.embedder.cached(path) if path is not None else None

    def ready_image_embeddings(self, media: TaskMedia, read_cache: bool = True) -> VideoEmbeddings | None:
        """A frame image's embeddings when memory (or, with ``read_cache``, the cache) has them (no download,
        no detection), else None."""
        path = self.media.local_path(media.url, media.task_id, download=False)
        if path is None:
            return None
        found = self.images.get(path)
        if found is None and read_cache:
            found = self.base.embedder.cached_frames({0: path})
            if found is not None:
                self.images.put(path, found)
        return found

    def image_embeddings(self, media: TaskMedia, on_progress: ProgressCallback | None = None) -> VideoEmbeddings:
        """One frame image as a one-row sequence (cached per image content, and held in memory)."""
        path = self.media.local_path(media.url, media.task_id)
        found = self.images.get(path)
        if found is None:
            found = self._embed_once(path, lambda p: self.base.embedder.embed_frames({0: p}, fps=1.0,
                                                                                      name=Path(p).name))
            self.images.put(path, found)
        return found
