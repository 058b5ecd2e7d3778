"""`mtclar serve`: the ML backend under gunicorn (or Flask's server with --dev)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mtclar.model.precision import PRECISIONS
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
    group.add_argument("--precision", choices=PRECISIONS, default=None,
                       help="MTCLAR_PRECISION: the encoder on CUDA, fp16 (autocast) or fp32; auto = fp16 on CUDA")
    group.add_argument("--label-studio-url", default=None, help="LABEL_STUDIO_URL")
    group.add_argument("--label-studio-api-key", default=None, help="LABEL_STUDIO_API_KEY")
    group.add_argument("--redis-url", default=None, help="REDIS_URL (optional)")
    parser.set_defaults(run=run)


def config_from(args: argparse.Namespace, settings: Settings) -> Settings:
    return settings.with_overrides(model_dir=args.model_dir, checkpoint=args.checkpoint, device=args.device,
                                  precision=args.precision,
                                  label_studio_url=args.label_studio_url,
                                  label_studio_api_key=args.label_studio_api_key, redis_url=args.redis_url)


def run(args: argparse.Namespace, settings: Settings) -> int:
    config = config_from(args, settings)
    if args.dev:
        import logging

        from mtclar_backend.app import create_app
        from mtclar_backend.runtime import Runtime

        logging.getLogger().setLevel(logging.INFO)
        create_app(Runtime(config)).run(host=args.host, port=args.port, threaded=True)
        return 0
    print(f"mtclar backend on http://{args.host}:{args.port} (model dir {config.model_dir.resolve()}, "
          f"store {'redis' if config.redis_url else 'sqlite'})", flush=True)
    # gunicorn in this process's place: its master stays small (it never imports the model; each worker
    # builds the settings from the environment, with this command's options written into it)
    os.execve(sys.executable, [sys.executable, "-m", "gunicorn", "--bind", f"{args.host}:{args.port}",
                               "--workers", str(args.workers), "--threads", str(args.http_threads),
                               "--worker-class", "mtclar_backend.http_worker.HealthLaneWorker",
                               "--timeout", "600",  # a first predict on a long video embeds every frame
                               "--graceful-timeout", "10", "--access-logfile", "-", "mtclar_backend.wsgi:app"],
              config.environment())
    return 0  # not reached
