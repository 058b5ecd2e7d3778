"""`mtclar label|evaluate --queue redis://…`: one RQ job per video, run by `mtclar worker` processes.

A job embeds one video into the embedding cache and says which worker did it; the command then reads the
embeddings from the cache and labels or evaluates exactly as a local run does, so the results are the same.
A job carries the video's path and the model options as plain values (never a secret): every worker must see
the videos and the cache folder at the same paths as the command (one shared volume, mounted alike).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from mtclar.model.embeddings import VideoEmbeddings
from mtclar.model.errors import ConfigError
from mtclar.model.labeling import VideoLabeler

QUEUE = "mtclar-datasets"
JOB_TIMEOUT_S = 3600  # one video; a longer job is killed by its worker and reported as failed
RESULT_TTL_S = 3600
POLL_S = 0.1  # the first wait between looks at the jobs; it grows to 1 s while none finishes
LIVENESS_S = 10.0  # how often to check that a worker still listens


@dataclass(frozen=True)
class ModelOptions:
    """The model a command runs, as plain values a job can carry."""

    checkpoint: str | None
    encoder_weights: str | None
    device: str
    batch_size: int
    threads: int
    cache_dir: str | None  # the embeddings folder; None: no cache
    precision: str = "auto"

    @classmethod
    def of(cls, args) -> ModelOptions:
        """From the parsed options of ``commands.common.add_model_options``."""
        cache = None if args.no_cache else str(Path(args.cache_dir, "embeddings").resolve())
        from mtclar.model.device import resolve_device, resolve_precision

        # the precision is part of the cache key: resolved here, so that a GPU worker asked by a CPU command
        # writes the fp32 embeddings the command reads (auto would mean fp16 there)
        precision = resolve_precision(str(args.precision), resolve_device(str(args.device)))
        return cls(_absolute(args.checkpoint), _absolute(args.encoder_weights), str(args.device),
                   int(args.batch_size), int(args.threads or 0), cache, precision)


def _absolute(path: str | Path | None) -> str | None:
    """A path a worker with another working directory finds too (a name that is not a file stays a name)."""
    if path is None:
        return None
    return str(Path(path).resolve()) if Path(path).exists() else str(path)


@dataclass(frozen=True)
class VideoJob:
    """One video of a dataset: a file, or numbered frame images (AFEW-VA) with their frame rate."""

    name: str
    video: Path | None = None
    frames: dict[int, Path] | None = None
    fps: float | None = None

    def embed(self, labeler: VideoLabeler, show_progress: bool = False) -> VideoEmbeddings:
        if self.video is not None:
            return labeler.embed(self.video, show_progress)
        assert self.frames is not None and self.fps is not None
        return labeler.embedder.embed_frames(self.frames, self.fps, self.name, show_progress)

    def cached(self, labeler: VideoLabeler) -> VideoEmbeddings | None:
        if self.video is not None:
            return labeler.embedder.cached(self.video)
        assert self.frames is not None
        return labeler.embedder.cached_frames(self.frames)


@dataclass(frozen=True)
class Finished:
    job: VideoJob
    worker: str | None
    error: str | None  # one line, when the job failed


def build_labeler(options: ModelOptions) -> VideoLabeler:
    from mtclar.model.device import resolve_device

    if options.threads:
        import torch

        torch.set_num_threads(options.threads)
    return VideoLabeler(options.checkpoint, encoder_weights=options.encoder_weights, cache_dir=options.cache_dir,
                        device=str(resolve_device(options.device)), batch_size=options.batch_size,
                        threads=options.threads, precision=options.precision)


_labelers: dict[ModelOptions, VideoLabeler] = {}  # a worker keeps the model it loaded between jobs


def embed_job(options: dict, job: VideoJob) -> dict:
    """Run by `mtclar worker`: embed one video into the cache the options name."""
    from rq import get_current_job

    model = ModelOptions(**options)
    if model.cache_dir is None:
        raise ConfigError("a dataset job needs the embedding cache: it is how the embeddings reach the command")
    if model not in _labelers:
        _labelers.clear()  # one model at a time: another command's options replace it
        _labelers[model] = build_labeler(model)
    embeddings = job.embed(_labelers[model])
    current = get_current_job()
    return {"worker": current.worker_name if current is not None else None, "frames": embeddings.n_frames}


def say(line: str) -> None:
    """A line on stderr that does not tear the progress bar."""
    import sys

    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)


def _one_line(exc_string: str | None) -> str:
    lines = [line for line in (exc_string or "").strip().splitlines() if line.strip()]
    if not lines:
        return "the job failed without a message (its worker died?)"
    last = lines[-1]
    kind, sep, message = last.partition(": ")  # "mtclar.model.errors.MediaError: x.mp4: not a video"
    return f"{kind.rsplit('.', 1)[-1]}: {message}" if sep and " " not in kind else last


def connect(queue_url: str, cache: bool):
    """The Redis of ``--queue``, checked before any work: reachable, with a worker on the dataset queue."""
    from redis import Redis
    from redis.exceptions import RedisError
    from rq import Worker

    if not cache:
        raise ConfigError("--queue needs the embedding cache (not --no-cache): the workers write the embeddings "
                          "there and this command reads them back")
    try:
        connection = Redis.from_url(queue_url)
        workers = Worker.all(connection=connection)
    except (RedisError, ValueError) as error:
        raise ConfigError(f"--queue {_safe(queue_url)}: {error}") from None
    if not any(QUEUE in w.queue_names() for w in workers):
        raise ConfigError(f"--queue {_safe(queue_url)}: no `mtclar worker` takes jobs from queue {QUEUE!r} there")
    return connection


def fan_out(queue_url: str, options: ModelOptions, jobs: list[VideoJob]) -> Iterator[Finished]:
    """Enqueue one job per video and yield each as it finishes (in the order they finish), with one progress
    bar over the videos. Jobs not finished when the caller stops (an error, ^C) are cancelled."""
    from redis.exceptions import RedisError
    from rq import Queue
    from rq.job import Job, JobStatus
    from tqdm import tqdm

    connection = connect(queue_url, options.cache_dir is not None)
    queue = Queue(QUEUE, connection=connection)
    try:
        enqueued = queue.enqueue_many([
            Queue.prepare_data("mtclar.dataset_jobs.embed_job", (asdict(options), job), timeout=JOB_TIMEOUT_S,
                               result_ttl=RESULT_TTL_S, failure_ttl=RESULT_TTL_S, description=f"embed {job.name}")
            for job in jobs])
    except (RedisError, ValueError) as error:
        raise ConfigError(f"--queue {_safe(queue_url)}: {error}") from None
    pending: dict[str, VideoJob] = {rq_job.id: job for rq_job, job in zip(enqueued, jobs, strict=True)}
    bar = tqdm(total=len(jobs), unit="video", desc="videos")
    poll, checked = POLL_S, time.monotonic()
    try:
        while pending:
            ids = list(pending)
            pipe = connection.pipeline(transaction=False)
            for job_id in ids:
                pipe.hget(Job.key_for(job_id), "status")
            statuses = [JobStatus(raw.decode()) if raw else None for raw in pipe.execute()]
            for job_id, status in zip(ids, statuses, strict=True):
                if status not in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED, None):
                    continue
                video = pending.pop(job_id)
                bar.update(1)
                poll = POLL_S
                yield _finished(video, job_id, status, connection)
            if pending:
                if time.monotonic() - checked > LIVENESS_S:  # every worker gone: the jobs would wait forever
                    checked = time.monotonic()
                    if not _listening(connection):
                        raise ConfigError(f"no `mtclar worker` takes jobs from queue {QUEUE!r} any more; "
                                          f"{len(pending)} videos were not embedded")
                time.sleep(poll)
                poll = min(poll * 1.5, 1.0)
    finally:
        bar.close()
        for job_id in pending:
            with contextlib.suppress(Exception):  # best effort: it may have finished or expired meanwhile
                Job.fetch(job_id, connection=connection).cancel()


def _finished(video: VideoJob, job_id: str, status, connection) -> Finished:
    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus

    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return Finished(video, None, "the job is gone (expired before its result was read)")
    result = job.latest_result()
    if status == JobStatus.FINISHED and result is not None:
        return Finished(video, (result.return_value or {}).get("worker"), None)
    if status == JobStatus.FAILED:
        return Finished(video, job.worker_name, _one_line(result.exc_string if result is not None else None))
    return Finished(video, job.worker_name, f"the job is {status.value}")


def _listening(connection) -> bool:
    from rq import Worker

    return any(QUEUE in w.queue_names() for w in Worker.all(connection=connection))


def _safe(url: str) -> str:
    """A Redis URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if "@" in rest else url


def from_cache(labeler: VideoLabeler, job: VideoJob) -> VideoEmbeddings:
    """A finished job's embeddings, read from the cache the worker wrote."""
    embeddings = job.cached(labeler)
    if embeddings is None:
        raise ConfigError(f"{job.name}: a worker embedded it, but its embeddings are not in "
                          f"{labeler.embedder.cache.root}: start the workers on a cache folder this machine shares, "
                          "mounted at the same path (--cache-dir / MTCLAR_CACHE_DIR)")
    return embeddings


def report_failures(failed: list[Finished], total: int, workers: set[str | None]) -> None:
    """The workers that did the jobs (on stderr), then one error for the failed videos, if any."""
    import sys

    from mtclar.model.errors import MediaError

    names = sorted(w for w in workers if w)
    print(f"{total} videos on {len(names)} workers: {', '.join(names)}", file=sys.stderr)
    if failed:
        raise MediaError(f"{len(failed)} of {total} videos failed on the workers: "
                         f"{', '.join(f.job.name for f in failed)}")
