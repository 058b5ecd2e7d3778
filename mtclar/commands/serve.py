"""`mtclar serve`: the ML backend under gunicorn (or Flask's server with --dev)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mtclar.settings import Settings


def add_parser(sub, settings: Settings) -> None:
    parser = sub.add_parser("serve", help="serve the Label Studio ML backend", description=__doc__)
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port)
    parser.add_argument("--workers", type=int, default=settings.workers,
                        help="gunicorn worker processes (each loads the model)")
    parser.add_argument("--http-threads", type=int, default=settings.http_threads,
                        help="threads per worker, so webhooks and health answer during a long predict")
    parser.add_argument("--dev", action="store_true", help="Flask's development server instead of gunicorn")
    group = parser.add_argument_group("backend settings (default: the environment variables in README)")
    group.add_argument("--model-dir", type=Path, default=None, help="MODEL_DIR: anchor store, checkpoints, media")
    group.add_argument("--checkpoint", default=None, help="MTCLAR_CHECKPOINT: base model (default: shipped)")
    group.add_argument("--device", default=None, help="MTCLAR_DEVICE: cpu, cuda or auto")
    group.add_argument("--label-studio-url", default=None, help="LABEL_STUDIO_URL")
    group.add_argument("--label-studio-api-key", default=None, help="LABEL_STUDIO_API_KEY")
    group.add_argument("--redis-url", default=None, help="REDIS_URL (optional)")
    parser.set_defaults(run=run)


def config_from(args: argparse.Namespace, settings: Settings) -> Settings:
    return settings.with_overrides(model_dir=args.model_dir, checkpoint=args.checkpoint, device=args.device,
                                  label_studio_url=args.label_studio_url,
                                  label_studio_api_key=args.label_studio_api_key, redis_url=args.redis_url)


def run(args: argparse.Namespace, settings: Settings) -> int:
    import logging

    from mtclar_backend.app import create_app
    from mtclar_backend.runtime import Runtime

    config = config_from(args, settings)
    logging.getLogger().setLevel(logging.INFO)
    if args.dev:
        create_app(Runtime(config)).run(host=args.host, port=args.port, threaded=True)
        return 0

    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("worker_class", "mtclar_backend.http_worker.HealthLaneWorker")
            self.cfg.set("threads", args.http_threads)
            self.cfg.set("timeout", 600)  # a first predict on a long video embeds every frame
            self.cfg.set("graceful_timeout", 10)
            self.cfg.set("accesslog", "-")

        def load(self):
            return create_app(Runtime(config))

    print(f"mtclar backend on http://{args.host}:{args.port} (model dir {config.model_dir.resolve()}, "
          f"store {'redis' if config.redis_url else 'sqlite'})", flush=True)
    Server().run()
    return 0
