"""`mtclar worker`: run background fine-tunes queued on Redis (needs REDIS_URL).

The worker reads its settings (model dir, Label Studio URL and key, media roots) from its own environment;
nothing but the project id travels through Redis.
"""

from __future__ import annotations

import argparse
import os


def add_parser(sub) -> None:
    parser = sub.add_parser("worker", help="RQ worker for fine-tune jobs (REDIS_URL)", description=__doc__)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mtclar.model.errors import ConfigError
    from mtclar_backend import worker
    from mtclar_backend.config import BackendConfig
    from mtclar_backend.jobs import QUEUE

    if not args.redis_url:
        raise ConfigError("mtclar worker needs --redis-url or REDIS_URL")
    worker.configure(BackendConfig.from_env(redis_url=args.redis_url))
    from redis import Redis
    from rq import Queue, Worker

    connection = Redis.from_url(args.redis_url)
    Worker([Queue(QUEUE, connection=connection)], connection=connection).work(burst=args.burst)
    return 0
