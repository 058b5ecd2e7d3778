"""Background fine-tuning: one job per project at a time, in a thread (default) or on RQ (REDIS_URL).

Label Studio waits about 1 s on a webhook, so `fit` only queues; the state lives in the store so that
/health, /metrics and other workers see it. A running job writes a heartbeat; a job whose process died
(kill -9, a lost worker) stops beating and reads as failed, so it never blocks the next fine-tune.
An RQ job carries the project id only: the worker reads its own settings (and secrets) from its environment.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import traceback
import uuid
from collections.abc import Callable

from mtclar.model.files import utc_now

from .store import Store

log = logging.getLogger(__name__)
ACTIVE = ("queued", "running")
JOB_TIMEOUT_S = 3600  # an RQ job running longer is killed by its worker
HEARTBEAT_S = 5.0  # a running job refreshes its heartbeat this often
LOST_AFTER_S = 60.0  # a running job without a heartbeat this long is lost (its process died)
QUEUE = "mtclar"
HISTORY = "training_history"  # project state: {"runs": [finished job states, oldest first]}
HISTORY_KEEP = 100


def _age_s(timestamp: str | None) -> float:
    if not timestamp:
        return float("inf")
    return (dt.datetime.now(dt.timezone.utc) - dt.datetime.fromisoformat(timestamp)).total_seconds()


class TrainingJobs:
    def __init__(self, store: Store, run: Callable[[int, Callable[[str, float], None]], dict],
                 redis_url: str | None = None, rq_target: str | None = None,
                 heartbeat_s: float = HEARTBEAT_S, lost_after_s: float = LOST_AFTER_S):
        self.store = store
        self.run = run
        self.redis_url = redis_url
        self.rq_target = rq_target  # dotted path of the function an RQ worker runs: f(project)
        self.heartbeat_s = heartbeat_s
        self.lost_after_s = lost_after_s
        self._lock = threading.Lock()  # start() decisions
        self._write = threading.Lock()  # read-modify-write of a state (progress and heartbeat threads)
        self._threads: dict[int, threading.Thread] = {}

    def state(self, project: int) -> dict:
        """The stored state, with a lost job (no heartbeat, or an RQ job that is gone) reported as failed."""
        state = self.store.get_state(project, "training") or {"status": "idle"}
        lost = self._lost(project, state)
        if lost:
            return {**state, "status": "failed", "message": lost}
        return state

    def _lost(self, project: int, state: dict) -> str | None:
        status = state.get("status")
        if status == "running" and _age_s(state.get("heartbeat") or state.get("started")) > self.lost_after_s:
            return (f"lost: no heartbeat since {state.get('heartbeat') or state.get('started')} (the process running "
                    "the fine-tune ended without reporting)")
        if status != "queued":
            return None
        if not self.redis_url:  # a thread starts at once: a queued state without its thread was never run
            thread = self._threads.get(project)
            if (thread is None or not thread.is_alive()) and _age_s(state.get("queued")) > self.lost_after_s:
                return "lost: queued but never started (the backend restarted)"
            return None
        job_status = self._rq_status(state.get("job"))
        if job_status in (None, "failed", "stopped", "canceled"):
            return f"lost: the RQ job is {job_status or 'gone'}"
        return None

    def _rq_status(self, job_id: str | None) -> str | None:
        if not job_id:
            return None
        from redis import Redis
        from rq.exceptions import NoSuchJobError
        from rq.job import Job

        try:
            return str(Job.fetch(job_id, connection=Redis.from_url(self.redis_url)).get_status(refresh=True).value)
        except NoSuchJobError:
            return None

    def _set(self, project: int, **fields) -> None:
        with self._write:
            current = self.store.get_state(project, "training") or {}
            self.store.set_state(project, "training", {**current, **fields})

    def start(self, project: int, reason: str) -> dict:
        with self._lock:
            current = self.state(project)
            if current.get("status") in ACTIVE:
                return {**current, "note": "a fine-tune of this project is already queued or running"}
            job = f"{project}-{uuid.uuid4().hex}"  # the project it belongs to, for /job_status
            self.store.set_state(project, "training", {"status": "queued", "reason": reason, "queued": utc_now(),
                                                       "progress": 0.0, "job": job})
            if self.redis_url and self.rq_target:
                from redis import Redis
                from rq import Queue

                Queue(QUEUE, connection=Redis.from_url(self.redis_url)).enqueue(
                    self.rq_target, project, job_id=job, job_timeout=JOB_TIMEOUT_S)
            else:
                thread = threading.Thread(target=self.execute, args=(project,), name=f"mtclar-fit-{project}",
                                          daemon=True)
                self._threads[project] = thread
                thread.start()
            return self.state(project)

    def execute(self, project: int) -> dict:
        """Run one job now (in the thread, or in an RQ worker) and record how it ended."""
        self._set(project, status="running", started=utc_now(), heartbeat=utc_now(), message="")
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.heartbeat_s):
                self._set(project, heartbeat=utc_now())

        beating = threading.Thread(target=beat, name=f"mtclar-heartbeat-{project}", daemon=True)
        beating.start()

        def progress(message: str, fraction: float) -> None:
            self._set(project, message=message, progress=round(float(fraction), 3))

        try:
            outcome = self.run(project, progress)
        except Exception as error:
            log.error("fine-tune of project %s failed:\n%s", project, traceback.format_exc())
            outcome = None
            failure = f"{type(error).__name__}: {error}"
        finally:
            done.set()
            beating.join()
        if outcome is None:
            self._set(project, status="failed", finished=utc_now(), message=failure)
        else:
            self._set(project, status="done", finished=utc_now(), progress=1.0, **outcome)
        self._record(project)
        return self.state(project)

    def _record(self, project: int) -> None:
        """Append how the job ended to the project's training history (the last ``HISTORY_KEEP`` runs)."""
        with self._write:
            state = self.store.get_state(project, "training") or {}
            runs = (self.store.get_state(project, HISTORY) or {}).get("runs", [])
            entry = {k: v for k, v in state.items() if k not in ("progress", "heartbeat")}
            self.store.set_state(project, HISTORY, {"runs": [*runs, entry][-HISTORY_KEEP:]})

    def history(self, project: int) -> list[dict]:
        """Every finished fine-tune of the project, oldest first: kept or not, before/after scores, why."""
        return (self.store.get_state(project, HISTORY) or {}).get("runs", [])

    def job_status(self, job: str) -> dict | None:
        """Label Studio's view of a training job (``/job_status``): None when the job is unknown or was
        replaced by a later one."""
        project, _, _ = job.partition("-")
        if not (project.isascii() and project.isdecimal()) or len(project) > 12:
            return None
        state = self.state(int(project))
        if state.get("job") != job:
            return None
        status = {"queued": "queued", "running": "started", "done": "finished"}.get(state.get("status"), "failed")
        return {"job_status": status, "project": int(project), **state}

    def wait(self, project: int, timeout: float | None = None) -> dict:
        thread = self._threads.get(project)
        if thread is not None:
            thread.join(timeout)
        return self.state(project)
