"""`mtclar label VIDEO... --anchors anchors.csv --out DIR`: per-frame V/A for every frame of each video."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mtclar import __version__
from mtclar.model.errors import AnchorError
from mtclar.model.fewshot import METHODS, STRATEGIES
from mtclar.model.files import utc_now
from mtclar.outputs import label_rows, plot_curves, write_csv, write_json
from mtclar.settings import Settings

from .common import (
    add_model_options,
    add_queue_option,
    add_video_anchor_options,
    check_decoded_frames,
    make_labeler,
    read_videos_and_anchors,
)


def add_parser(sub, settings: Settings) -> None:
    parser = sub.add_parser("label", help="label every frame of videos from a few labelled frames",
                            description=__doc__)
    add_video_anchor_options(parser)
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--strategy", choices=STRATEGIES, default=None,
                        help="how per-anchor estimates combine (default: the checkpoint's)")
    parser.add_argument("--method", default=None, choices=[m for m in METHODS if m != "auto"],
                        help="mtclar | kernel | interpolation | hold-last | sl (default: the checkpoint's)")
    parser.add_argument("--suggest", type=int, default=0, metavar="K", help="print the K frames to label next")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    add_model_options(parser, settings)
    add_queue_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.queue:
        from mtclar.dataset_jobs import connect

        connect(args.queue, not args.no_cache)  # before any work
    stems, rows = read_videos_and_anchors(args.videos, args.anchors)
    labeler = make_labeler(args)
    if labeler.labeler.sl_head is None:
        missing = [stem for stem in stems if stem not in rows]
        if missing:
            raise AnchorError(f"{args.anchors}: no anchors for {', '.join(missing)}; label at least one frame of "
                              "each video")

    args.out.mkdir(parents=True, exist_ok=True)
    if args.queue:
        return _run_on_workers(args, labeler, stems, rows)
    for stem, path in stems.items():
        _label_one(args, labeler, stem, path, rows, labeler.embed(path, show_progress=True))
    return 0


def _run_on_workers(args: argparse.Namespace, labeler, stems: dict[str, Path], rows: dict) -> int:
    from mtclar.dataset_jobs import ModelOptions, VideoJob, fan_out, from_cache, report_failures, say

    jobs = [VideoJob(stem, video=path.resolve()) for stem, path in stems.items()]
    failed, workers = [], set()
    for done in fan_out(args.queue, ModelOptions.of(args), jobs):
        workers.add(done.worker)
        if done.error is not None:
            failed.append(done)
            say(f"mtclar label: error: {stems[done.job.name]}: {done.error}")
            continue
        _label_one(args, labeler, done.job.name, stems[done.job.name], rows, from_cache(labeler, done.job))
    report_failures(failed, len(jobs), workers)
    return 0


def _label_one(args: argparse.Namespace, labeler, stem: str, path: Path, rows: dict, embeddings) -> None:
    """Check the video's anchors against its decoded frames, label it and write its files."""
    anchors = {r.frame: (r.valence, r.arousal) for r in rows.get(stem, [])}
    check_decoded_frames(args.anchors, rows, stem, embeddings.n_frames)
    labels = labeler.label(embeddings, anchors, method=args.method, strategy=args.strategy)
    frame_rows = label_rows(embeddings, labels)
    metadata = {
        "video": str(path), "video_sha256": embeddings.info.content_id, "frames": embeddings.n_frames,
        "fps": embeddings.info.fps, "anchors": {str(k): list(v) for k, v in sorted(anchors.items())},
        "model_version": labeler.model_version, "encoder": labeler.encoder.name,
        "encoder_weights": labeler.encoder.weights_id, "device": labeler.placement,
        "method": args.method or labeler.labeler.method,
        "strategy": args.strategy or labeler.labeler.config.strategy,
        "frames_with_face": int(embeddings.has_face.sum()), "mtclar_version": __version__,
        "created": utc_now(),
    }
    write_csv(args.out / f"{stem}.csv", frame_rows)
    write_json(args.out / f"{stem}.json", frame_rows, metadata)
    if not args.no_plot:
        plot_curves(args.out / f"{stem}.png", embeddings, labels,
                    f"{stem}: {len(anchors)} anchors, {labeler.model_version}")
    counts = {s: int((labels.source == s).sum()) for s in ("anchor", "predicted", "no_face")}
    print(f"{stem}: {embeddings.n_frames} frames -> {args.out / stem}.csv/.json"
          f"{'' if args.no_plot else '/.png'} ({counts['anchor']} anchors, {counts['predicted']} predicted, "
          f"{counts['no_face']} without a face)")
    if not embeddings.has_face.any():
        print(f"{stem}: no face was found in any frame: nothing to predict", file=sys.stderr)
    if args.suggest:
        frames = labeler.suggest(embeddings, anchors, args.suggest)
        times = ", ".join(f"{f} ({embeddings.time_s[f]:.2f}s)" for f in frames)
        print(f"{stem}: label next: {times}")
