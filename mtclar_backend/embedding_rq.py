"""Background embedding on RQ workers (REDIS_URL set): the in-process queue's interface, its state in Redis.

A job carries what kind of media it is and the task's media reference (task id, video key, URL), never a
secret: the worker (`mtclar worker`) resolves the media with its own settings and writes the embeddings into
the cache every process shares (MTCLAR_CACHE_DIR on a shared volume); a web worker reads them from there.
Which videos are queued, done and failed, per project, lives in Redis, so /health and /metrics on any web
worker show it. A video queued or running is not queued again. The process that finishes the last video a
request gave up on bumps the project's revision, once: an atomic script decides.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict

from mtclar.model.embeddings import VideoEmbeddings
from mtclar.model.errors import MediaError

from .embedding_queue import RETRY_FAILED_AFTER_S, URGENT, AskingForEmbeddings
from .ls_format import TaskMedia

log = logging.getLogger(__name__)
QUEUE = "mtclar-embed"
JOB_TIMEOUT_S = 3600  # one video; a worker kills a job running longer (it is then recorded as failed)
KEEP_S = JOB_TIMEOUT_S + 600  # a job whose worker died unreported stops blocking its video after this long
POLL_S = 0.05
LOST_AFTER_S = 60  # a job key this old whose RQ job is gone was lost (younger: it may be being enqueued)
BEAT_S = 10.0  # a running embedding job refreshes its heartbeat this often...
BEAT_TTL_S = 30.0  # ...and a started job without one this long was lost: its worker died (RQ's own heartbeat of a
#                    SimpleWorker lasts the job's whole timeout, so a killed worker would block its video an hour)
Embed = Callable[[TaskMedia], VideoEmbeddings]
Ready = Callable[[TaskMedia], VideoEmbeddings | None]

# KEYS: job, owners, counts, projects, inflight. ARGV: video hash, project ("" none), priority, new job id, ttl,
# now (s).
# -> {"new" | "promote" | "", the job id}
_SUBMIT = """
local job = redis.call('HMGET', KEYS[1], 'id', 'priority')
local outcome, id = '', job[1]
if not id then
  id = ARGV[4]
  redis.call('HSET', KEYS[1], 'id', id, 'priority', ARGV[3], 'at', ARGV[6])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  redis.call('SADD', KEYS[5], ARGV[1])
  outcome = 'new'
elseif tonumber(ARGV[3]) < tonumber(job[2]) then
  redis.call('HSET', KEYS[1], 'priority', ARGV[3])
  outcome = 'promote'
end
if ARGV[2] ~= '' and redis.call('SADD', KEYS[2], ARGV[2]) == 1 then
  redis.call('EXPIRE', KEYS[2], ARGV[5])
  redis.call('HINCRBY', KEYS[3], 'queued', 1)
  redis.call('SADD', KEYS[4], ARGV[2])
end
return {outcome, id}
"""

# KEYS: job, awaited, awaited_ok. ARGV: video hash, ttl. -> 1 (still coming: awaited) or 0 (done meanwhile)
_GIVE_UP = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('EXPIRE', KEYS[3], ARGV[2]) end
return 1
"""

# KEYS: job, owners, failed, inflight. ARGV: video hash, "1" ok | "0" failed, failure, failure ttl, key prefix,
# ttl, the job id that ended ("" any; a job that is no longer the video's current one changes nothing).
# -> the projects whose awaited videos are now all done, one of them at least embedded (to bump). An empty
# failure (a lost job) is counted but not remembered: the next ask queues the video again.
_FINISH = """
if ARGV[7] ~= '' and redis.call('HGET', KEYS[1], 'id') ~= ARGV[7] then return {} end
local owners = redis.call('SMEMBERS', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[4], ARGV[1])
local ok = ARGV[2] == '1'
if not ok and ARGV[3] ~= '' then redis.call('SET', KEYS[3], ARGV[3], 'EX', ARGV[4]) end
local bump = {}
for _, project in ipairs(owners) do
  redis.call('HINCRBY', ARGV[5] .. ':counts:' .. project, ok and 'done' or 'failed', 1)
  local awaited = ARGV[5] .. ':awaited:' .. project
  local flag = ARGV[5] .. ':awaited_ok:' .. project
  if redis.call('SREM', awaited, ARGV[1]) == 1 then
    if ok then redis.call('SET', flag, 1, 'EX', ARGV[6]) end
    if redis.call('SCARD', awaited) == 0 and redis.call('DEL', flag) == 1 then table.insert(bump, project) end
  end
end
return bump
"""


def video_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:24]


class RQEmbeddingQueue(AskingForEmbeddings):
    """``embed`` and ``ready``: per kind of media ("video", "image"), how to embed it (run by the worker) and
    how to read it from the cache when it is there. ``target``: the dotted path of the function a worker runs,
    ``f(kind, media fields)``, which calls ``run`` on the worker's own queue object."""

    def __init__(self, redis_url: str, embed: Mapping[str, Embed], ready: Mapping[str, Ready],
                 cached: Callable[[TaskMedia], bool], on_ready: Callable[[int], None],
                 target: str | Callable = "mtclar_backend.worker.embed_job", prefix: str = "mtclar:embed",
                 queue_name: str = QUEUE, beat_s: float = BEAT_S, beat_ttl_s: float = BEAT_TTL_S):
        from redis import Redis
        from rq import Queue

        self.redis = Redis.from_url(redis_url)
        self.rq = Queue(queue_name, connection=self.redis)
        self._embed, self._ready, self._cached, self._on_ready = dict(embed), dict(ready), cached, on_ready
        self.target, self.prefix = target, prefix
        self.beat_s, self.beat_ttl_s = beat_s, beat_ttl_s
        self._submit = self.redis.register_script(_SUBMIT)
        self._give_up = self.redis.register_script(_GIVE_UP)
        self._finish = self.redis.register_script(_FINISH)

    def _key(self, *parts: object) -> str:
        return ":".join([self.prefix, *map(str, parts)])

    # -- asking (web workers) -------------------------------------------------------------------------------

    def _video_ready(self, media: TaskMedia) -> VideoEmbeddings | None:
        return self._ready["video"](media)

    def submit(self, project: int | None, media: TaskMedia, priority: int = URGENT, kind: str = "video") -> None:
        """Queue the media on the workers, once however many ask (an urgent ask moves it to the queue's front)."""
        digest = video_hash(media.url)
        outcome, job_id = self._submit(
            keys=[self._key("job", digest), self._key("owners", digest), self._key("counts", project),
                  self._key("projects"), self._key("inflight")],
            args=[digest, "" if project is None else project, priority, f"embed-{uuid.uuid4().hex}", KEEP_S,
                  int(time.time())])
        outcome, job_id = outcome.decode(), job_id.decode()
        if outcome == "new":
            self.rq.enqueue(self.target, kind, asdict(media), job_id=job_id, at_front=priority == URGENT,
                            job_timeout=JOB_TIMEOUT_S, result_ttl=600, failure_ttl=KEEP_S,
                            description=f"embed task {media.task_id}")
        elif outcome == "promote" and self.rq.remove(job_id):  # still waiting in the queue: to its front
            self.rq.push_job_id(job_id, at_front=True)

    def wait(self, project: int | None, media: TaskMedia, timeout: float,
             kind: str = "video") -> VideoEmbeddings | None:
        """The embeddings if a worker has them ready within ``timeout`` seconds, else None (the project's
        revision bumps once every video a request gave up on is done). A failure of the embedding is raised."""
        self._raise_recent_failure(media)
        ready = self._ready[kind](media) if timeout > 0 else None  # past a request's budget: not even a cache read
        if ready is not None:
            return ready
        self.submit(project, media, URGENT, kind)
        digest = video_hash(media.url)
        if self._lost(digest):
            self.submit(project, media, URGENT, kind)
        deadline = time.monotonic() + max(0.0, min(timeout, 3600.0))
        while True:
            in_flight = self.redis.exists(self._key("job", digest))
            if not in_flight:
                break
            if time.monotonic() >= deadline:
                still = self._give_up(keys=[self._key("job", digest), self._key("awaited", project),
                                            self._key("awaited_ok", project)], args=[digest, KEEP_S]) \
                    if project is not None else 1
                if still:
                    return None
                break
            time.sleep(POLL_S)
        self._raise_recent_failure(media)
        return self._ready[kind](media)

    def _beat(self, key: str, stop: threading.Event) -> None:
        while not stop.wait(self.beat_s):
            self.redis.set(key, 1, px=int(self.beat_ttl_s * 1000))
        self.redis.delete(key)

    def _lost(self, digest: str) -> bool:
        """Whether the video's job ended without reporting (its worker died, or it was removed from RQ); if so
        it is counted as failed and forgotten, so that it can be queued again."""
        from rq.job import Job

        job_id, at = self.redis.hmget(self._key("job", digest), "id", "at")
        if job_id is None:
            return False
        status = self.redis.hget(Job.key_for(job_id.decode()), "status")
        gone = status is None and time.time() - int(at or 0) > LOST_AFTER_S  # (not yet enqueued, when younger)
        # started, but its heartbeat stopped: the worker was killed mid-job (SIGKILL, out of memory)
        dead = status == b"started" and not self.redis.exists(self._key("beat", job_id.decode())) and \
            time.time() - int(at or 0) > self.beat_ttl_s
        if not (gone or dead) and status not in (b"failed", b"stopped", b"canceled"):
            return False
        log.warning("embedding job %s of %s was lost (RQ status %s)", job_id.decode(), digest,
                    status.decode() if status else "gone")
        self._record(digest, job_id.decode(), "")
        return True

    def progress(self, project: int | None = None) -> dict:
        if project is not None:
            return {k.decode(): int(v) for k, v in self.redis.hgetall(self._key("counts", project)).items()}
        total: dict[str, int] = {}
        for member in self.redis.smembers(self._key("projects")):
            for k, v in self.redis.hgetall(self._key("counts", member.decode())).items():
                total[k.decode()] = total.get(k.decode(), 0) + int(v)
        inflight = [m.decode() for m in self.redis.smembers(self._key("inflight"))]
        lost = [m for m in inflight if not self.redis.exists(self._key("job", m))]  # its worker died
        if lost:
            self.redis.srem(self._key("inflight"), *lost)
        return {**total, "in_flight": len(inflight) - len(lost), "workers": self._workers()}

    def _workers(self) -> int:
        from rq import Worker

        return sum(self.rq.name in w.queue_names() for w in Worker.all(connection=self.redis))

    def shutdown(self) -> None:
        """Nothing runs in this process: the workers keep going."""

    def _raise_recent_failure(self, media: TaskMedia) -> None:
        raw = self.redis.get(self._key("failed", video_hash(media.url)))
        if raw is None:
            return
        failure = json.loads(raw)
        if failure["media"]:
            raise MediaError(failure["message"])
        # not the media's fault (a job timeout, a worker out of memory): still this task's failure, reported
        # with its empty prediction, never the whole request's
        raise MediaError(f"embedding task {media.task_id} failed on a worker: {failure['message']}")

    def _record(self, digest: str, job_id: str, failure: str | None) -> None:
        """The video's job ended: embedded (``failure`` None), failed (remembered for a while) or lost ("")."""
        bump = self._finish(keys=[self._key("job", digest), self._key("owners", digest),
                                  self._key("failed", digest), self._key("inflight")],
                            args=[digest, "1" if failure is None else "0", failure or "", int(RETRY_FAILED_AFTER_S),
                                  self.prefix, KEEP_S, job_id])
        for project in bump:
            self._on_ready(int(project))

    # -- working (`mtclar worker`) --------------------------------------------------------------------------

    def run(self, kind: str, media: TaskMedia) -> dict:
        """Embed one queued media file into the shared cache and record how it ended; the last of a project's
        awaited videos bumps its revision. A failure is recorded (and shown to whoever asks), then raised."""
        from rq import get_current_job

        digest = video_hash(media.url)
        current = get_current_job()
        stop = threading.Event()
        if current is not None:
            beat = self._key("beat", current.id)
            self.redis.set(beat, 1, px=int(self.beat_ttl_s * 1000))
            threading.Thread(target=self._beat, args=(beat, stop), name="mtclar-embed-beat", daemon=True).start()
        try:
            embeddings, error = self._embed[kind](media), None
        except Exception as failure:  # recorded for the web workers, then re-raised for RQ's failed registry
            embeddings, error = None, failure
        finally:
            stop.set()
        self._record(digest, current.id if current is not None else "", None if error is None else
                     json.dumps({"media": isinstance(error, MediaError), "message": str(error)[:2000]}))
        if error is not None:
            raise error
        return {"task": media.task_id, "frames": embeddings.n_frames if embeddings is not None else 0}
