"""Videos embedded in the background, so that no request waits longer than its budget.

A task's video is queued as soon as the backend learns of it (the setup backfill, a first /predict). A
/predict waits for a queued video only until its deadline; a task whose video is not ready gets no
prediction this time, and once none of the project's videos is left in the queue its revision bumps: the
model version changes and Label Studio asks again for every task (the answers then come from the cache).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from mtclar.model.embeddings import VideoEmbeddings
from mtclar.model.errors import MediaError

from .ls_format import TaskMedia

log = logging.getLogger(__name__)


class EmbeddingQueue:
    def __init__(self, embed: Callable[[TaskMedia], VideoEmbeddings],
                 ready: Callable[[TaskMedia], VideoEmbeddings | None], cached: Callable[[TaskMedia], bool],
                 on_ready: Callable[[int], None], workers: int = 1):
        self._embed, self._ready, self._cached, self._on_ready = embed, ready, cached, on_ready
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mtclar-embed")
        self._lock = threading.Lock()
        self._running: dict[str, Future] = {}  # media URL -> its embedding, while it is queued or running
        self._owners: dict[str, set[int]] = {}  # media URL -> the projects that asked for it
        self._in_flight: Counter = Counter()  # project -> its videos in the queue
        self._gave_up: set[int] = set()  # projects a request answered without some of their videos
        self._counts: dict[int, Counter] = {}

    def queue(self, project: int | None, media: TaskMedia) -> None:
        """Embed ``media``'s video in the background unless the cache has it (a webhook or the setup backfill
        learnt of its task: it is ready before anyone asks for predictions). A task whose media cannot be
        resolved is left alone: its /predict reports why."""
        try:
            cached = self._cached(media)
        except MediaError as error:
            log.debug("not queued: %s", error)
            return
        if not cached:
            self.submit(project, media)

    def ready_or_submit(self, project: int | None, media: TaskMedia) -> VideoEmbeddings | None:
        """The embeddings if they are at hand (cached, no download), else None with the video queued."""
        ready = self._ready(media)
        if ready is None:
            self.submit(project, media)
        return ready

    def submit(self, project: int | None, media: TaskMedia) -> Future:
        """Queue ``media``'s video (once, however many tasks or requests ask for it)."""
        with self._lock:
            future = self._running.get(media.url)
            if future is None:
                future = self._pool.submit(self._embed, media)
                self._running[media.url] = future
                self._owners[media.url] = set()
                future.add_done_callback(lambda done, url=media.url: self._finished(url, done))
            if project is not None and project not in self._owners[media.url]:
                self._owners[media.url].add(project)
                self._in_flight[project] += 1
                self._count(project, "queued")
            return future

    def wait(self, project: int | None, media: TaskMedia, timeout: float) -> VideoEmbeddings | None:
        """The video's embeddings if they are ready within ``timeout`` seconds, else None (they keep coming,
        and the project's revision bumps once none of its videos is left in the queue). Errors of the
        embedding (a missing or broken file) are raised."""
        future = self.submit(project, media)
        try:
            return future.result(timeout=max(0.0, timeout))
        except FutureTimeout:
            with self._lock:
                if not future.done():
                    if project is not None:
                        self._gave_up.add(project)
                    return None
            return future.result()

    def progress(self, project: int | None = None) -> dict:
        with self._lock:
            if project is not None:
                return dict(self._counts.get(project, Counter()))
            total = Counter()
            for counts in self._counts.values():
                total.update(counts)
            return {**total, "in_flight": len(self._running)}

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _count(self, project: int | None, key: str) -> None:
        if project is not None:
            self._counts.setdefault(project, Counter())[key] += 1

    def _finished(self, url: str, future: Future) -> None:
        failed = future.cancelled() or future.exception() is not None
        drained = []
        with self._lock:
            self._running.pop(url, None)
            for project in self._owners.pop(url, set()):
                self._count(project, "failed" if failed else "done")
                self._in_flight[project] -= 1
                if self._in_flight[project] <= 0 and project in self._gave_up:
                    self._gave_up.discard(project)
                    drained.append(project)
        if failed and not future.cancelled():
            log.warning("embedding %s failed: %s", url[:200], future.exception())
        for project in drained:
            # a request gave up on some of them: one new model version makes Label Studio ask again for all
            self._on_ready(project)
