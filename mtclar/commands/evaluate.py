"""`mtclar evaluate --data PATH --support every:20 ...`: the model against hold-last-anchor and linear
interpolation on labelled videos (AFEW-VA layout or a CSV manifest)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mtclar.model.config_io import json_safe
from mtclar.model.evaluate import case_of, embed_case, evaluate, format_table
from mtclar.model.fewshot import STRATEGIES
from mtclar.model.support import parse_support
from mtclar.settings import Settings
from mtclar.training.sources import load_labelled_videos

from .common import add_model_options, add_queue_option, make_labeler


def add_parser(sub, settings: Settings) -> None:
    parser = sub.add_parser("evaluate", help="few-shot accuracy against the baselines", description=__doc__)
    parser.add_argument("--data", type=Path, required=True,
                        help="AFEW-VA folder, or CSV manifest video,frame,valence,arousal with the videos beside it")
    parser.add_argument("--videos", type=Path, action="append", default=[],
                        help="more folders to look for the manifest's videos in (repeatable)")
    parser.add_argument("--support", nargs="+", default=["every:20"], type=_support_spec,
                        help="support sets: every:N first:K random:K suggest:K (several allowed)")
    parser.add_argument("--strategy", choices=STRATEGIES, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    add_model_options(parser, settings)
    add_queue_option(parser)
    parser.set_defaults(run=run)


def _support_spec(spec: str) -> str:
    try:
        parse_support(spec)  # fail before any work
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return spec


def _embed_on_workers(args: argparse.Namespace, labeler, videos: list) -> list:
    """The cases in the order of ``videos`` (the evaluation depends on it), embedded by the workers."""
    from mtclar.dataset_jobs import ModelOptions, VideoJob, fan_out, from_cache, report_failures, say

    jobs = [VideoJob(video.name, video.video_file and video.video_file.resolve(),
                     video.frame_files and {i: path.resolve() for i, path in video.frame_files.items()}, video.fps)
            for video in videos]
    embedded, failed, workers = {}, [], set()
    for done in fan_out(args.queue, ModelOptions.of(args), jobs):
        workers.add(done.worker)
        if done.error is not None:
            failed.append(done)
            say(f"mtclar evaluate: error: {done.job.video or done.job.name}: {done.error}")
        else:
            embedded[id(done.job)] = from_cache(labeler, done.job)
    report_failures(failed, len(jobs), workers)
    return [case_of(video, embedded[id(job)]) for video, job in zip(videos, jobs, strict=True)]


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.queue:
        from mtclar.dataset_jobs import connect

        connect(args.queue, not args.no_cache)  # before any work
    videos = load_labelled_videos(args.data, args.videos)
    labeler = make_labeler(args)
    if args.queue:
        cases = _embed_on_workers(args, labeler, videos)
    else:
        cases = [embed_case(labeler, video, show_progress=True) for video in videos]
    rows = evaluate(labeler, cases, args.support, args.strategy, args.seed, show_progress=sys.stderr.isatty())
    result = {"data": str(args.data), "model_version": labeler.model_version, "videos": len(cases),
              "labelled_frames": sum(len(c.truth) for c in cases),
              "frames_with_face": sum(int(c.embeddings.has_face.sum()) for c in cases),
              "rows": [row.to_dict() for row in rows]}
    print(f"{args.data}: {len(cases)} videos, {result['labelled_frames']} labelled frames; model "
          f"{labeler.model_version} (method {labeler.labeler.method})")
    print(format_table(rows))
    result = json_safe(result)  # NaN (e.g. PCC of constant labels) -> null
    print(json.dumps(result, allow_nan=False))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, allow_nan=False))
    return 0
