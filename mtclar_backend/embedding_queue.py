"""Videos embedded in the background, so that no request waits longer than its budget.

A task's video is queued as soon as the backend learns of it (the setup backfill, an annotation webhook, a
first /predict). Videos a /predict asks for go ahead of the backlog. A /predict waits for its videos only until
its deadline; a task whose video is not ready gets an empty prediction this time, and once the videos it gave
up on are ready the project's revision bumps: the model version changes and Label Studio asks again for every
task (the answers then come from the cache). A video whose embedding failed is not retried for a while.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from mtclar.model.embeddings import VideoEmbeddings
from mtclar.model.errors import MediaError

from .ls_format import TaskMedia

log = logging.getLogger(__name__)
URGENT, BACKLOG = 0, 1  # a request waits for it; nobody does yet
RETRY_FAILED_AFTER_S = 600.0
Embed = Callable[..., VideoEmbeddings]  # (media, on_progress=None) -> embeddings


class AskingForEmbeddings:
    """What a web worker asks of a queue, in-process or on RQ: ``submit``, ``_cached``, ``_video_ready`` and
    ``_raise_recent_failure`` are the queue's own."""

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
            self.submit(project, media, BACKLOG)

    def ready_or_submit(self, project: int | None, media: TaskMedia) -> VideoEmbeddings | None:
        """The embeddings if they are at hand (cached, no download), else None with the video queued ahead of
        the backlog. A recent failure of its embedding is raised."""
        self._raise_recent_failure(media)
        ready = self._video_ready(media)
        if ready is None:
            self.submit(project, media, URGENT)
        return ready


class EmbeddingQueue(AskingForEmbeddings):
    """``embed``: how to embed a video, or that per kind of media ("video", "image"); ``ready``: a video's
    embeddings when the cache has them."""

    def __init__(self, embed: Embed | Mapping[str, Embed],
                 ready: Callable[[TaskMedia], VideoEmbeddings | None], cached: Callable[[TaskMedia], bool],
                 on_ready: Callable[[int], None], workers: int = 1):
        self._embed = dict(embed) if isinstance(embed, Mapping) else {"video": embed}
        self._ready, self._cached, self._on_ready = ready, cached, on_ready
        self._jobs: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._futures: dict[str, Future] = {}  # media URL -> its embedding, while it is queued or running
        self._priority: dict[str, int] = {}  # media URL -> the best priority it was queued with
        self._owners: dict[str, set[int]] = {}  # media URL -> the projects that asked for it
        self._awaited: dict[int, set[str]] = {}  # project -> videos a request gave up on, not done yet
        self._awaited_ok: set[int] = set()  # projects with one of those videos embedded since the last bump
        self._failed: dict[str, tuple[float, Exception]] = {}  # media URL -> when and why it failed
        self._counts: dict[int, Counter] = {}
        self._frames: dict[str, tuple[int, int]] = {}  # media URL being embedded -> (frames done, expected)
        self._closed = threading.Event()
        for k in range(workers):
            threading.Thread(target=self._work, name=f"mtclar-embed-{k}", daemon=True).start()
        atexit.register(self.shutdown)

    # -- asking -------------------------------------------------------------------------------------------

    def _video_ready(self, media: TaskMedia) -> VideoEmbeddings | None:
        return self._ready(media)

    def submit(self, project: int | None, media: TaskMedia, priority: int = URGENT, kind: str = "video") -> Future:
        """Queue ``media``'s video (once, however many tasks or requests ask for it; a more urgent ask moves
        it ahead of the backlog). ``kind``: which embedding (frame mode asks for its image's)."""
        with self._lock:
            future = self._futures.get(media.url)
            if future is None:
                future = Future()
                self._futures[media.url], self._owners[media.url] = future, set()
            if priority < self._priority.get(media.url, BACKLOG + 1):
                self._priority[media.url] = priority
                # a stale entry (queued again with a better priority) is skipped by the worker
                self._jobs.put((priority, next(self._order), media, self._embed[kind]))
            if project is not None and project not in self._owners[media.url]:
                self._owners[media.url].add(project)
                self._count(project, "queued")
            return future

    def wait(self, project: int | None, media: TaskMedia, timeout: float,
             kind: str = "video") -> VideoEmbeddings | None:
        """The video's embeddings if they are ready within ``timeout`` seconds, else None (they keep coming,
        and the project's revision bumps once every video a request gave up on is done). Errors of the
        embedding (a missing or broken file) are raised."""
        future = self.submit(project, media, URGENT, kind)
        try:
            return future.result(timeout=max(0.0, min(timeout, 3600.0)))
        except FutureTimeout:
            with self._lock:
                if not future.done():
                    if project is not None:
                        self._awaited.setdefault(project, set()).add(media.url)
                    return None
            return future.result()

    def progress(self, project: int | None = None) -> dict:
        with self._lock:
            if project is not None:
                out = dict(self._counts.get(project, Counter()))
                running = [self._frames[url] for url, owners in self._owners.items()
                           if project in owners and url in self._frames]
                if running:  # a long video shows how far it got
                    out["frames_done"] = sum(done for done, _ in running)
                    out["frames_expected"] = sum(expected for _, expected in running)
                return out
            total: Counter = Counter()
            for counts in self._counts.values():
                total.update(counts)
            return {**total, "in_flight": len(self._futures)}

    def shutdown(self) -> None:
        """Stop taking jobs (the one running finishes in its daemon thread or dies with the process)."""
        self._closed.set()
        self._jobs.put((-1, -1, None, None))

    # -- working ------------------------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._closed.is_set():
            priority, _, media, embed = self._jobs.get()
            if media is None:
                self._jobs.put((priority, -1, None, None))  # wake the next worker too
                return
            with self._lock:
                future = self._futures.get(media.url)
                if future is None or self._priority.get(media.url) != priority or \
                        not future.set_running_or_notify_cancel():
                    continue  # done already, or queued again with a better priority
            def report(done: int, expected: int, url: str = media.url) -> None:
                with self._lock:
                    self._frames[url] = (done, expected)

            try:
                result, error = embed(media, on_progress=report), None
            except Exception as failure:  # reported to whoever waits; a bug is logged below too
                result, error = None, failure
            self._finish(media.url, future, result, error)

    def _finish(self, url: str, future: Future, result: VideoEmbeddings | None, error: Exception | None) -> None:
        bump = []
        with self._lock:
            self._futures.pop(url, None)
            self._priority.pop(url, None)
            self._frames.pop(url, None)
            if error is not None:
                self._failed[url] = (time.monotonic(), error)
            for project in self._owners.pop(url, set()):
                self._count(project, "failed" if error is not None else "done")
                awaited = self._awaited.get(project)
                if awaited is not None and url in awaited:
                    awaited.discard(url)
                    if error is None:
                        self._awaited_ok.add(project)
                    if not awaited:
                        del self._awaited[project]
                        if project in self._awaited_ok:  # nothing new when every one of them failed
                            self._awaited_ok.discard(project)
                            bump.append(project)
        if error is not None:
            if not isinstance(error, MediaError):
                log.error("embedding %s failed", url[:200], exc_info=error)
            future.set_exception(error)
        else:
            future.set_result(result)
        for project in bump:  # outside the lock: the callback writes to the store
            self._on_ready(project)

    def _raise_recent_failure(self, media: TaskMedia) -> None:
        with self._lock:
            failed = self._failed.get(media.url)
            if failed is not None and time.monotonic() - failed[0] > RETRY_FAILED_AFTER_S:
                del self._failed[media.url]
                failed = None
        if failed is not None:
            raise failed[1]

    def _count(self, project: int | None, key: str) -> None:
        if project is not None:
            self._counts.setdefault(project, Counter())[key] += 1
