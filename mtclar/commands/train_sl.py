"""`mtclar train-sl --checkpoint CK --data PATH --out DIR`: MT-CLAR+SL, a single-image head (8 expression
classes and/or V/A) on the frozen embedding of a checkpoint's encoder (MLP 256-1024-512-256-128-N, Adam
1e-3, batch 512, 60 epochs, StepLR(15, 0.1), class-balanced sampling). Writes the checkpoint with the head
to --out; `mtclar label` then labels videos with no anchors (method sl) when the head predicts V/A."""

from __future__ import annotations

import argparse
from pathlib import Path

from mtclar.model.checkpoint import load_checkpoint
from mtclar.model.device import resolve_device
from mtclar.settings import Settings
from mtclar.training.config import SL_TARGETS

from .train import add_training_options, resolve_config


def add_parser(sub, settings: Settings) -> None:
    parser = sub.add_parser("train-sl", help="train the single-image MT-CLAR+SL head", description=__doc__)
    add_training_options(parser, settings)
    parser.add_argument("--checkpoint", default=settings.checkpoint,
                        help="checkpoint whose encoder embeds the faces (default: the shipped model)")
    parser.add_argument("--encoder-weights", default=settings.encoder_weights)
    parser.add_argument("--target", choices=SL_TARGETS, default=None, help="what the head predicts")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    parser.add_argument("--name", default=None, help="checkpoint name (default: <checkpoint>-sl)")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    import torch

    from mtclar.training.supervised import run_supervised

    config = resolve_config(args, {"sl.target": args.target, "sl.batch_size": args.batch_size})
    if args.epochs is not None or args.lr is not None:  # --epochs / --lr mean the SL head's here
        from mtclar.training.config import override

        config = override(config, {"sl.epochs": args.epochs, "sl.lr": args.lr})
    if config.run.threads:
        torch.set_num_threads(config.run.threads)
    checkpoint = load_checkpoint(args.checkpoint)
    result, history = run_supervised(config, checkpoint, args.cache_dir / "crops", args.out, args.encoder_weights,
                                     str(resolve_device(config.run.device)), args.name, not args.no_progress)
    sl = result.metrics["sl_head"]
    print(f"MT-CLAR+SL ({config.sl.target}) on {result.trained_on['sl_head']['train_items']} items, "
          f"{config.sl.epochs} epochs: first loss {history[0]['loss']:.4f}, last {history[-1]['loss']:.4f}")
    for stage in ("train", "val"):
        if sl.get(stage):
            print(f"  {stage}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                             for k, v in sl[stage].items()))
    print(f"wrote {result.name} to {args.out}")
    return 0
