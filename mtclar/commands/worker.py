"""`mtclar worker`: run background jobs queued on Redis (needs --redis-url or REDIS_URL).

Queues: ``mtclar`` (the backend's fine-tunes), ``mtclar-embed`` (the backend's video embeddings) and
``mtclar-datasets`` (`mtclar label|evaluate --queue`, one video per job). The worker reads its settings (model
dir, Label Studio URL and key, media roots, cache folder) from its own environment; a backend job carries a
project id and a task's media reference, a dataset job a video path and model options: never a secret.
The worker runs jobs in its own process, one at a time, and keeps the models it loaded between jobs.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from mtclar.settings import Settings


def queue_names() -> tuple[str, ...]:
    from mtclar.dataset_jobs import QUEUE as DATASETS
    from mtclar_backend.embedding_rq import QUEUE as EMBED
    from mtclar_backend.jobs import QUEUE as FINETUNE

    return FINETUNE, EMBED, DATASETS


def add_parser(sub, settings: Settings) -> None:
    parser = sub.add_parser("worker", help="RQ worker for fine-tune, embedding and dataset jobs (REDIS_URL)",
                            description=__doc__)
    parser.add_argument("--redis-url", default=settings.redis_url)
    parser.add_argument("--queues", nargs="+", default=None, metavar="NAME",
                        help="the queues to take jobs from, first one first (default: all of them)")
    parser.add_argument("--name", default=None, help="the worker's name in RQ (default: a random one)")
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from mtclar.model.errors import ConfigError
    from mtclar_backend import worker

    if not args.redis_url:
        raise ConfigError("mtclar worker needs --redis-url or REDIS_URL")
    known = queue_names()
    names = args.queues or list(known)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(f"--queues: unknown queue {unknown[0]!r}; known: {', '.join(known)}")
    worker.configure(replace(settings, redis_url=args.redis_url))
    from redis import Redis
    from rq import Queue, SimpleWorker

    connection = Redis.from_url(args.redis_url)
    SimpleWorker([Queue(name, connection=connection) for name in names], connection=connection,
                 name=args.name).work(burst=args.burst)
    return 0
