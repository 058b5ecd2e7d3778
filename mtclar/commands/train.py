"""`mtclar train --data PATH [--config FILE] --out DIR`: train MT-CLAR (Siamese encoder + pair heads) on
labelled faces: an AFEW-VA folder, an AffectNet CSV or a CSV manifest (video,frame and/or path rows with
expression, valence, arousal). Paper defaults come from configs/mtclar_paper.yaml; flags and --set
override them. Multi-GPU: `torchrun --nproc_per_node N $(which mtclar) train ...` (CPU: gloo).

Writes <out>/best and <out>/final (checkpoints for `mtclar label --checkpoint`), <out>/log.jsonl,
<out>/config.yaml and <out>/state.pt (for --resume)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mtclar.settings import Settings
from mtclar.training.config import ENCODER_MODES, load_config, override, parse_set
from mtclar.training.run_files import CONFIG_FILE


def add_training_options(parser: argparse.ArgumentParser, settings: Settings) -> None:
    """Options shared by train and train-sl."""
    parser.add_argument("--config", type=Path, default=None,
                        help="training YAML (default: configs/mtclar_paper.yaml, the paper's settings)")
    parser.add_argument("--data", default=None, help="AFEW-VA folder, AffectNet CSV or CSV manifest")
    parser.add_argument("--val-data", default=None, help="validation data, same formats "
                        "(default: hold out data.val_fraction of the training videos/images)")
    parser.add_argument("--images-root", default=None, help="AffectNet images folder (default: beside its CSV)")
    parser.add_argument("--videos", action="append", default=None,
                        help="more folders to look for a manifest's videos in (repeatable)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers per process")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda (torchrun: one GPU per process)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    parser.add_argument("--cache-dir", type=Path, default=settings.cache_dir,
                        help="face-crop cache root (default: %(default)s; MTCLAR_CACHE_DIR)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config value, e.g. --set optim.plateau_patience=3 (repeatable)")


def add_parser(sub, settings: Settings) -> None:
    parser = sub.add_parser("train", help="train MT-CLAR on labelled faces", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_training_options(parser, settings)
    parser.add_argument("--out", default=None, help="run folder (default: run.out of the config)")
    parser.add_argument("--name", default=None, help="checkpoint name root (default: mtclar-<encoder>-<data>)")
    parser.add_argument("--encoder", default=None, help="faceapi-expression (default) or emonet")
    parser.add_argument("--encoder-weights", default=None, help="weights file (emonet: emonet_8.pth)")
    parser.add_argument("--encoder-mode", choices=ENCODER_MODES, default=None,
                        help="frozen: heads only; partial: faceapi's last dense block / EmoNet's emotion branch "
                        "(the paper); finetune: the whole encoder")
    parser.add_argument("--resume", type=Path, default=None,
                        help="run folder (or its state.pt) to continue; its config.yaml is the default config")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def resolve_config(args: argparse.Namespace, extra: dict | None = None):
    config_path = args.config
    if config_path is None and getattr(args, "resume", None) is not None:
        run_dir = args.resume if args.resume.is_dir() else args.resume.parent
        if (run_dir / CONFIG_FILE).is_file():
            config_path = run_dir / CONFIG_FILE
    config = load_config(config_path)
    values = {
        "data.train": args.data, "data.val": args.val_data, "data.images_root": args.images_root,
        "data.search": args.videos, "optim.epochs": args.epochs, "optim.lr": args.lr,
        "run.seed": args.seed, "run.workers": args.workers, "run.device": args.device, "run.threads": args.threads,
        **(extra or {}),
    }
    config = override(config, values)
    return override(config, parse_set(args.set))


def run(args: argparse.Namespace, settings: Settings) -> int:
    from mtclar.training.distributed import DistInfo
    from mtclar.training.run import run_training

    config = resolve_config(args, {"optim.batch_size": args.batch_size, "run.out": args.out, "run.name": args.name,
                                   "model.encoder": args.encoder, "model.encoder_weights": args.encoder_weights,
                                   "model.encoder_mode": args.encoder_mode})
    info = DistInfo(settings.world_size, settings.rank, settings.local_rank, settings.local_world_size)
    main = info.is_main
    summary = run_training(config, args.cache_dir / "crops", args.resume, show_progress=not args.no_progress,
                           info=info)
    if main:
        out = Path(config.run.out)
        print(f"trained {config.optim.epochs} epochs ({config.model.encoder}, encoder {config.model.encoder_mode}); "
              f"best val loss {summary['best_val_loss']:.4f} ({summary['best']})")
        for record in summary["history"]:
            print(json.dumps(record, allow_nan=True))
        print(f"checkpoints: {out / 'best'} -> {(out / 'best').resolve().name}, {out / 'final'}; "
              f"log: {out / 'log.jsonl'}")
    return 0
