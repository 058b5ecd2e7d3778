"""`mtclar worker`: run background fine-tunes queued on Redis (needs REDIS_URL)."""

from __future__ import annotations

import argparse
import os


def add_parser(sub) -> None:
    parser = sub.add_parser("worker", help="RQ worker for fine-tune jobs (REDIS_URL)", description=__doc__)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from model.errors import MtclarError

    if not args.redis_url:
        raise MtclarError("mtclar worker needs --redis-url or REDIS_URL")
    from redis import Redis
    from rq import Queue, Worker

    connection = Redis.from_url(args.redis_url)
    Worker([Queue("mtclar", connection=connection)], connection=connection).work(burst=args.burst)
    return 0
