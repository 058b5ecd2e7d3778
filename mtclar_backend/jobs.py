"""Background fine-tuning: one job per project at a time, in a thread (default) or on RQ (REDIS_URL).

Label Studio waits about 1 s on a webhook, so `fit` only queues; the state lives in the store so that
/health, /metrics and other workers see it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import traceback
from collections.abc import Callable

from .store import Store

log = logging.getLogger(__name__)
ACTIVE = ("queued", "running")
JOB_TIMEOUT_S = 3600  # an RQ job running longer is killed by its worker; its state is stale after that


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _stale(state: dict) -> bool:
    """A queued or running RQ job older than its timeout: its worker died or killed it without reporting."""
    since = state.get("started") or state.get("queued")
    if not since:
        return True
    age = dt.datetime.now(dt.timezone.utc) - dt.datetime.fromisoformat(since)
    return age.total_seconds() > 2 * JOB_TIMEOUT_S


class TrainingJobs:
    def __init__(self, store: Store, run: Callable[[int, Callable[[str, float], None]], dict],
                 redis_url: str | None = None, rq_target: str | None = None, rq_args: tuple = ()):
        self.store = store
        self.run = run
        self.redis_url = redis_url
        self.rq_target = rq_target  # dotted path of the function an RQ worker runs: f(project, *rq_args)
        self.rq_args = rq_args
        self._lock = threading.Lock()
        self._threads: dict[int, threading.Thread] = {}

    def state(self, project: int) -> dict:
        return self.store.get_state(project, "training") or {"status": "idle"}

    def _set(self, project: int, **fields) -> None:
        self.store.set_state(project, "training", {**self.state(project), **fields})

    def start(self, project: int, reason: str) -> dict:
        with self._lock:
            current = self.state(project)
            thread = self._threads.get(project)
            alive = thread is not None and thread.is_alive()
            if current.get("status") in ACTIVE and (alive or (self.redis_url and not _stale(current))):
                return {**current, "note": "a fine-tune of this project is already queued or running"}
            self.store.set_state(project, "training", {"status": "queued", "reason": reason, "queued": now(),
                                                       "progress": 0.0})
            if self.redis_url and self.rq_target:
                from redis import Redis
                from rq import Queue

                Queue("mtclar", connection=Redis.from_url(self.redis_url)).enqueue(
                    self.rq_target, project, *self.rq_args, job_timeout=JOB_TIMEOUT_S)
            else:
                thread = threading.Thread(target=self.execute, args=(project,), name=f"mtclar-fit-{project}",
                                          daemon=True)
                self._threads[project] = thread
                thread.start()
            return self.state(project)

    def execute(self, project: int) -> dict:
        """Run one job now (in the thread, or in an RQ worker) and record how it ended."""
        self._set(project, status="running", started=now(), message="")

        def progress(message: str, fraction: float) -> None:
            self._set(project, message=message, progress=round(float(fraction), 3))

        try:
            outcome = self.run(project, progress)
        except Exception as error:
            log.error("fine-tune of project %s failed:\n%s", project, traceback.format_exc())
            self._set(project, status="failed", finished=now(), message=f"{type(error).__name__}: {error}")
            return self.state(project)
        self._set(project, status="done", finished=now(), progress=1.0, **outcome)
        return self.state(project)

    def wait(self, project: int, timeout: float | None = None) -> dict:
        thread = self._threads.get(project)
        if thread is not None:
            thread.join(timeout)
        return self.state(project)
