"""`mtclar worker`: run background fine-tunes queued on Redis (needs REDIS_URL).

The worker reads its settings (model dir, Label Studio URL and key, media roots) from its own environment;
nothing but the project id travels through Redis.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from mtclar.settings import Settings


def add_parser(sub, settings: Settings) -> None:
    parser = sub.add_parser("worker", help="RQ worker for fine-tune jobs (REDIS_URL)", description=__doc__)
    parser.add_argument("--redis-url", default=settings.redis_url)
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from mtclar.model.errors import ConfigError
    from mtclar_backend import worker
    from mtclar_backend.jobs import QUEUE

    if not args.redis_url:
        raise ConfigError("mtclar worker needs --redis-url or REDIS_URL")
    worker.configure(replace(settings, redis_url=args.redis_url))
    from redis import Redis
    from rq import Queue, Worker

    connection = Redis.from_url(args.redis_url)
    Worker([Queue(QUEUE, connection=connection)], connection=connection).work(burst=args.burst)
    return 0
