"""`mtclar finetune --anchors anchors.csv VIDEO... --out DIR`: train the MT-CLAR heads on a project's own
labelled frames and keep them only where they predict held-out anchors better than the base model
(held-out segments; whole videos with 3 or more). Prints the before/after table and writes the model to
serve to --out."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

from mtclar.model.errors import AnchorError
from mtclar.model.fewshot import STRATEGIES
from mtclar.settings import Settings
from mtclar.training.finetune import FinetuneConfig, ProjectVideo, finetune_project

from .common import (
    add_model_options,
    add_video_anchor_options,
    check_decoded_frames,
    make_labeler,
    read_videos_and_anchors,
)

log = logging.getLogger(__name__)


def add_parser(sub, settings: Settings) -> None:
    parser = sub.add_parser("finetune", help="fine-tune the MT-CLAR heads on a project's labelled frames",
                            description=__doc__)
    add_video_anchor_options(parser)
    parser.add_argument("--out", type=Path, required=True, help="folder to write the checkpoint that should serve")
    parser.add_argument("--name", default=None, help="name (model version) of the new checkpoint "
                        "(default: <base>-ft<N>)")
    defaults = FinetuneConfig()
    parser.add_argument("--folds", type=int, default=defaults.folds)
    parser.add_argument("--steps", type=int, default=defaults.steps, help="optimiser steps per fit")
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--hidden", type=int, nargs="+", default=list(defaults.hidden), help="head hidden sizes")
    parser.add_argument("--dropout", type=float, default=defaults.dropout)
    parser.add_argument("--jitter-frames", type=int, default=defaults.jitter_frames)
    parser.add_argument("--no-cross-video", action="store_true", help="pairs only within a video")
    parser.add_argument("--no-self-pairs", action="store_true", help="leave out (i, i) pairs")
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(defaults.strategies))
    parser.add_argument("--min-improvement", type=float, default=defaults.min_improvement,
                        help="keep the new heads only when they lower mean(V, A RMSE) by at least this")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--json", type=Path, default=None, help="also write before/after metrics here")
    add_model_options(parser, settings)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    stems, rows = read_videos_and_anchors(args.videos, args.anchors)
    try:
        config = replace(FinetuneConfig(), folds=args.folds, steps=args.steps, lr=args.lr, hidden=tuple(args.hidden),
                         dropout=args.dropout, jitter_frames=args.jitter_frames, cross_video=not args.no_cross_video,
                         self_pairs=not args.no_self_pairs, strategies=tuple(args.strategies),
                         min_improvement=args.min_improvement, seed=args.seed)
    except ValueError as error:
        raise AnchorError(f"bad fine-tune option: {error}") from None
    labeler = make_labeler(args)
    videos = []
    for stem, path in stems.items():
        anchors = {r.frame: (r.valence, r.arousal) for r in rows.get(stem, [])}
        if not anchors:
            print(f"{stem}: no anchors in {args.anchors}; not used", file=sys.stderr)
            continue
        embeddings = labeler.embed(path, show_progress=True)
        check_decoded_frames(args.anchors, rows, stem, embeddings.n_frames)
        videos.append(ProjectVideo(stem, embeddings, anchors))

    last = [""]

    def on_progress(stage: str, fraction: float) -> None:
        if stage != last[0] and sys.stderr.isatty():
            print(f"  {fraction:4.0%} {stage}", file=sys.stderr)
        last[0] = stage

    result = finetune_project(labeler.checkpoint, videos, labeler.expression_classes, config, on_progress, args.name)
    print(result.table())
    folder = result.checkpoint.save(args.out)
    print(f"wrote {'the new' if result.kept_new else 'the base'} checkpoint {result.checkpoint.name} to {folder}")
    summary = {"kept_new": result.kept_new, "checkpoint": result.checkpoint.name, "base": result.base_name,
               "before": result.before, "after": result.after, "improvement": result.improvement,
               "seconds": result.seconds, "anchors": result.anchors, "out": str(folder)}
    print(json.dumps(summary, allow_nan=True))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1, allow_nan=True))
    return 0
