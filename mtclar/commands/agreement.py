"""`mtclar agreement`: agreement between annotators (CCC, ICC(A,1), Krippendorff's alpha), per video and pooled.

    mtclar agreement --ls-url URL --api-key KEY --project N [--json]   # the annotations of a Label Studio project
    mtclar agreement RATER_A.csv RATER_B.csv [...] [--json]            # offline: one CSV (or folder) per annotator
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mtclar.model.errors import MtclarError
from mtclar.model.metrics import DIMENSIONS
from mtclar.settings import Settings


def add_parser(sub, settings: Settings) -> None:
    parser = sub.add_parser("agreement", help="agreement between annotators (CCC, ICC, Krippendorff's alpha)",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ratings", nargs="*", type=Path, metavar="CSV|FOLDER",
                        help="offline: one per annotator, columns frame,valence,arousal[,video] (video defaults to "
                             "the file stem); a folder = its *.csv files")
    parser.add_argument("--ls-url", default=settings.label_studio_url, help="LABEL_STUDIO_URL")
    parser.add_argument("--api-key", default=settings.label_studio_api_key, help="LABEL_STUDIO_API_KEY")
    parser.add_argument("--project", type=int, default=None, help="a Label Studio project: compare its annotators")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(run=run)


def label_studio_ratings(url: str, api_key: str, project: int, max_frame: int) -> dict:
    from mtclar_backend.agreement import task_ratings
    from mtclar_backend.ls_api import LabelStudioAPI, label_studio_errors
    from mtclar_backend.ls_format import parse_label_config

    with label_studio_errors(url):
        api = LabelStudioAPI(url, api_key)
        setup = parse_label_config(api.client.projects.get(id=project).label_config)
        return task_ratings(setup, api.iter_tasks(project), max_frame, api.user_emails())


def offline_ratings(paths: list[Path]) -> dict:
    from mtclar.ratings_csv import read_ratings

    names = [p.stem if p.is_file() else p.name for p in paths]
    if len(set(names)) != len(names):
        names = [str(p) for p in paths]
    videos: dict[str, dict] = {}
    for name, path in zip(names, paths, strict=True):
        for video, frames in read_ratings(path).items():
            videos.setdefault(video, {})[name] = frames
    return videos


def format_table(result: dict) -> str:
    header = ["video", "annotators", "frames", *(f"{d[0].upper()} {m}" for d in DIMENSIONS
                                               for m in ("CCC", "ICC", "alpha"))]
    rows = [(video, a) for video, a in result["videos"].items()]
    if result["pooled"]:
        rows.append(("pooled", result["pooled"]))

    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines = [[video, " / ".join(a["raters"]), str(a["frames"]),
              *(number(a[d][m]) for d in DIMENSIONS for m in ("ccc", "icc", "alpha"))] for video, a in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    out = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), "-+-".join("-" * w for w in widths)]
    out += [" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(out) + "\nICC = ICC(A,1) (two-way random, absolute agreement, single rater); alpha = interval"


def run(args: argparse.Namespace, settings: Settings) -> int:
    from mtclar.model.agreement import per_video_and_pooled

    if args.project is not None and args.ratings:
        raise MtclarError("give either --project (Label Studio) or CSV files, not both")
    if args.project is not None:
        if not args.ls_url or not args.api_key:
            raise MtclarError("--project needs --ls-url and --api-key (or LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY)")
        videos = label_studio_ratings(args.ls_url, args.api_key, args.project, settings.max_frame)
    elif len(args.ratings) >= 2:
        videos = offline_ratings(args.ratings)
    else:
        raise MtclarError("needs --project N, or two or more CSV files (one per annotator)")
    result = per_video_and_pooled(videos)
    if not result["videos"]:
        raise MtclarError("no frame is labelled by two annotators: nothing to compare")
    print(json.dumps(result, indent=1) if args.json else format_table(result))
    return 0
