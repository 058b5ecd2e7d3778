"""Embedding on RQ workers (REDIS_URL): a real redis-server and a real RQ worker; two queue objects stand for
two web workers. The embedding itself is a stand-in here (the slow test at the end runs the real model in a
real `mtclar worker` process)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
import uuid

import pytest
from redis import Redis
from rq import SimpleWorker

from mtclar.model.errors import MediaError
from mtclar.settings import Settings
from mtclar_backend.embedding_queue import BACKLOG, URGENT
from mtclar_backend.embedding_rq import RQEmbeddingQueue
from mtclar_backend.ls_format import TaskMedia

WORKER: dict[str, RQEmbeddingQueue] = {}  # the queue object of the (in-process) worker, per test queue name


def media(name: str) -> TaskMedia:
    return TaskMedia(task_id=1, video_key=name, url=f"/data/local-files/?d={name}")


def run_job(kind: str, fields: dict) -> dict:
    """The worker's job function, as ``mtclar_backend.worker.embed_job`` is in production."""
    from rq import get_current_job

    return WORKER[get_current_job().origin].run(kind, TaskMedia(**fields))


class Cluster:
    """A shared cache (a dict), one worker-side queue object and as many web-side ones as asked for."""

    def __init__(self, redis_url: str, **beats):
        self.redis_url = redis_url
        self.beats = beats  # the job heartbeat's period and lifetime (beat_s, beat_ttl_s)
        self.name = f"test-embed-{uuid.uuid4().hex[:8]}"
        self.prefix = f"test:{self.name}"
        self.cache: dict[str, str] = {}
        self.order: list[str] = []
        self.bumps: list[int] = []
        WORKER[self.name] = self.queue()

    def embed(self, m: TaskMedia) -> str:
        self.order.append(m.video_key)
        if m.video_key.startswith("bad"):
            raise MediaError(f"{m.video_key}: not a video")
        if m.video_key.startswith("slow"):
            time.sleep(60)
        if m.video_key.startswith("oom"):
            raise MemoryError("CUDA out of memory")
        self.cache[m.url] = f"embeddings of {m.video_key}"
        return self.cache[m.url]

    def queue(self) -> RQEmbeddingQueue:
        return RQEmbeddingQueue(self.redis_url, {"video": self.embed}, {"video": lambda m: self.cache.get(m.url)},
                                lambda m: m.url in self.cache, self.bumps.append, target=run_job,
                                prefix=self.prefix, queue_name=self.name, **self.beats)

    def work(self) -> None:
        """What `mtclar worker` does, until the queue is empty."""
        connection = Redis.from_url(self.redis_url)
        queue = WORKER[self.name].rq
        SimpleWorker([queue], connection=connection).work(burst=True)


@pytest.fixture
def cluster(redis_url) -> Cluster:
    return Cluster(redis_url)


def test_one_job_per_video_whichever_web_worker_asks_and_the_job_carries_no_secret(cluster):
    web1, web2 = cluster.queue(), cluster.queue()
    web1.submit(7, media("a.mp4"), BACKLOG)
    web2.submit(7, media("a.mp4"), URGENT)
    web2.queue(8, media("a.mp4"))  # another project, the same file
    assert web1.rq.count == 1
    job = web1.rq.jobs[0]
    assert job.args == ("video", dataclasses.asdict(media("a.mp4"))) and not job.kwargs
    assert web2.progress(7) == {"queued": 1} and web1.progress(8) == {"queued": 1}
    assert web1.progress()["in_flight"] == 1
    cluster.work()
    assert cluster.order == ["a.mp4"]
    assert web2.progress(7) == {"queued": 1, "done": 1} and web1.progress(8) == {"queued": 1, "done": 1}
    assert web1.progress() == {"queued": 2, "done": 2, "in_flight": 0, "workers": 0}
    web1.queue(7, media("a.mp4"))  # cached now: not queued again
    assert web1.rq.count == 0


def test_one_bump_per_project_once_every_awaited_video_is_done(cluster):
    web1, web2 = cluster.queue(), cluster.queue()
    assert web1.wait(7, media("a.mp4"), 0.01) is None
    assert web2.wait(7, media("b.mp4"), 0.01) is None
    assert web2.wait(8, media("a.mp4"), 0.01) is None
    cluster.work()
    assert sorted(cluster.bumps) == [7, 8]
    assert web1.wait(7, media("b.mp4"), 0.01) == "embeddings of b.mp4"  # from the shared cache, no new job
    assert web1.rq.count == 0 and sorted(cluster.bumps) == [7, 8]


def test_an_urgent_ask_moves_a_queued_video_to_the_front(cluster):
    web1, web2 = cluster.queue(), cluster.queue()
    for name in ("b1", "b2", "b3"):
        web1.submit(1, media(name), BACKLOG)
    web2.submit(1, media("wanted"), URGENT)
    web1.submit(2, media("b3"), URGENT)
    cluster.work()
    assert cluster.order == ["b3", "wanted", "b1", "b2"]


def test_a_failure_is_seen_by_every_web_worker_and_not_retried_at_once_and_brings_no_bump(cluster):
    web1, web2 = cluster.queue(), cluster.queue()
    assert web1.wait(3, media("bad.mp4"), 0.01) is None
    cluster.work()
    assert cluster.bumps == [] and web2.progress(3) == {"queued": 1, "failed": 1}
    with pytest.raises(MediaError, match="bad.mp4: not a video"):
        web2.ready_or_submit(3, media("bad.mp4"))
    with pytest.raises(MediaError, match="not a video"):
        web1.wait(3, media("bad.mp4"), 0.01)
    assert web1.rq.count == 0 and cluster.order == ["bad.mp4"]
    assert len(web1.rq.failed_job_registry) == 1  # RQ keeps the traceback too


def test_a_worker_failure_that_is_not_the_medias_is_still_one_tasks_media_error(cluster):
    """(a job timeout, a worker out of memory): that task gets an empty prediction, not the request a 500"""
    web = cluster.queue()
    assert web.wait(3, media("oom.mp4"), 0.01) is None
    cluster.work()
    with pytest.raises(MediaError, match="task 1 failed on a worker: CUDA out of memory"):
        web.wait(3, media("oom.mp4"), 0.01)


def test_past_the_budget_a_wait_reads_nothing_and_queues(cluster):
    reads = []
    web = RQEmbeddingQueue(cluster.redis_url, {"video": cluster.embed},
                           {"video": lambda m: reads.append(m.url) or cluster.cache.get(m.url)},
                           lambda m: m.url in cluster.cache, cluster.bumps.append, target=run_job,
                           prefix=cluster.prefix, queue_name=cluster.name)
    assert web.wait(5, media("late.mp4"), 0) is None
    assert reads == [] and web.rq.count == 1


def test_an_awaited_video_that_fails_does_not_hold_back_the_bump_of_one_that_worked(cluster):
    web = cluster.queue()
    assert web.wait(4, media("bad.mp4"), 0.01) is None and web.wait(4, media("good.mp4"), 0.01) is None
    cluster.work()
    assert cluster.bumps == [4]


@pytest.mark.slow
def test_a_real_worker_process_embeds_into_the_shared_cache(redis_url, shared_dir, tmp_path):
    """A web-side runtime on REDIS_URL queues a task's video; a `mtclar worker` process (its own settings, the
    same cache folder) embeds it; the web side reads it from the cache, /health shows the progress and the
    project's revision bumps once."""
    from rq import Queue

    from mtclar_backend.app import create_app
    from mtclar_backend.runtime import Runtime

    Queue("mtclar-embed", connection=Redis.from_url(redis_url)).empty()  # left by other tests of the session
    settings = Settings(model_dir=tmp_path / "web", cache_dir=tmp_path / "cache", media_roots=(shared_dir / "data",),
                        redis_url=redis_url)
    runtime = Runtime(settings)
    project = 9000 + os.getpid() % 1000  # the session's Redis is shared: a project of its own
    revision = runtime.store.revision(project)
    task = TaskMedia(task_id=5, video_key="task:5", url="/data/local-files/?d=videos/single_face.mp4")
    assert runtime.embeddings.wait(project, task, 0.01) is None  # a request gave up on it: queued, awaited
    in_flight = runtime.embeddings.progress()["in_flight"]  # other tests of the session may have left some
    env = {**os.environ, "REDIS_URL": redis_url, "MODEL_DIR": str(tmp_path / "worker"),
           "MTCLAR_CACHE_DIR": str(tmp_path / "cache"), "MTCLAR_MEDIA_ROOTS": str(shared_dir / "data")}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mtclar.cli", "worker", "--queues", "mtclar-embed", "--burst"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"worker process: start, embed single_face.mp4, exit: {time.perf_counter() - started:.1f} s")
    assert len(list((tmp_path / "cache" / "embeddings").rglob("*.npz"))) == 1
    assert not (tmp_path / "web" / "media").exists() or not any((tmp_path / "web" / "media").iterdir())
    embeddings = runtime.embeddings.wait(project, task, 0.01)
    assert embeddings is not None and embeddings.n_frames == 72
    assert runtime.store.revision(project) == revision + 1
    client = create_app(runtime).test_client()
    assert client.get(f"/health?project={project}").get_json()["embedding"] == {"queued": 1, "done": 1}
    metrics = client.get(f"/metrics?project={project}").get_json()
    assert metrics["project_embedding"] == {"queued": 1, "done": 1}
    assert metrics["embedding"]["in_flight"] == in_flight - 1 and metrics["embedding"]["workers"] == 0


def test_a_job_whose_worker_died_is_counted_failed_and_queued_again_at_the_next_ask(cluster):
    from rq.job import JobStatus

    web1, web2 = cluster.queue(), cluster.queue()
    assert web1.wait(6, media("a.mp4"), 0.01) is None
    job = web1.rq.jobs[0]
    web1.rq.remove(job)  # a worker took it and died: RQ moves such a job to its failed registry
    job.set_status(JobStatus.FAILED)
    assert web2.wait(6, media("a.mp4"), 0.01) is None  # lost: counted failed, then queued again at once
    assert web2.progress(6) == {"queued": 2, "failed": 1} and web2.rq.count == 1 and web2.rq.jobs[0].id != job.id
    job.set_status(JobStatus.QUEUED)  # ... and the lost job turns up after all: its end changes nothing
    web1.rq.push_job_id(job.id)
    cluster.work()
    assert cluster.order == ["a.mp4", "a.mp4"] and cluster.bumps == [6]
    assert web1.progress(6) == {"queued": 2, "failed": 1, "done": 1}
    assert web1.wait(6, media("a.mp4"), 0.01) == "embeddings of a.mp4"


def test_a_worker_killed_mid_job_stops_blocking_its_video(redis_url):
    """SIGKILL (or the kernel's out-of-memory killer) leaves the job "started" in RQ: its heartbeat stops, and the
    next ask counts it failed and queues the video again, instead of waiting out the job's timeout."""
    import multiprocessing
    import signal

    from rq.job import Job

    cluster = Cluster(redis_url, beat_s=0.1, beat_ttl_s=0.5)
    web = cluster.queue()
    assert web.wait(9, media("slow.mp4"), 0.01) is None
    job_id = web.rq.job_ids[0]
    worker = multiprocessing.get_context("fork").Process(target=cluster.work, daemon=True)
    worker.start()
    deadline = time.monotonic() + 20
    while Job.fetch(job_id, connection=web.redis).get_status() != "started":
        assert time.monotonic() < deadline, "the worker did not start the job"
        time.sleep(0.05)
    time.sleep(0.3)  # it beats
    assert web.wait(9, media("slow.mp4"), 0.01) is None and web.progress(9) == {"queued": 1}  # alive: still its job
    os.kill(worker.pid, signal.SIGKILL)
    worker.join(5)
    time.sleep(1.0)  # past the heartbeat's lifetime
    assert Job.fetch(job_id, connection=web.redis).get_status() == "started"  # what RQ still says
    assert web.wait(9, media("slow.mp4"), 0.01) is None
    assert web.progress(9) == {"queued": 2, "failed": 1} and web.rq.count == 1 and web.rq.job_ids[0] != job_id

