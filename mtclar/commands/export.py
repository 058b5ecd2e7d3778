"""`mtclar export --ls-url URL --project N --out DIR`: every video's V/A curve as files, frame-exact.

Per video: ``DIR/<video>.csv`` (frame,time_s,valence,arousal,source,annotator), ``DIR/<video>.json`` (the same
rows + metadata), with ``--formats ...,afewva`` ``DIR/afew-va/<video>/`` (AFEW-VA layout); and
``DIR/export.json`` (one entry per video). Video mode: a task is a video, its rows are the frames of the decoded
video, not Label Studio's count. Frame mode: the image tasks of one ``video_id`` are a video.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, unquote, urlsplit

from mtclar import __version__
from mtclar.model.errors import MtclarError
from mtclar.model.files import utc_now
from mtclar.settings import Settings
from mtclar_backend.export_rows import parse_task
from mtclar_backend.ls_api import LabelStudioAPI, label_studio_errors
from mtclar_backend.ls_format import LabelSetup, TaskMedia, read_task
from mtclar_backend.media import MediaResolver
from mtclar_backend.payload import Task

FORMATS = ("csv", "json", "afewva")
UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")  # Label Studio prefixes uploaded file names with 8 hex digits


def add_parser(sub, settings: Settings) -> None:
    parser = sub.add_parser("export", help="export a Label Studio project's V/A curves (CSV, JSON, AFEW-VA)",
                            description=__doc__)
    parser.add_argument("--ls-url", default=settings.label_studio_url, help="LABEL_STUDIO_URL")
    parser.add_argument("--api-key", default=settings.label_studio_api_key, help="LABEL_STUDIO_API_KEY")
    parser.add_argument("--project", type=int, required=True, help="Label Studio project id (video mode)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--media-root", type=Path, default=None,
                        help="read the videos from this folder (by file name, or a local-files path under it) "
                             "instead of downloading them from Label Studio")
    parser.add_argument("--formats", default="csv,json",
                        help="comma-separated subset of csv,json,afewva (default: csv,json; afewva writes a PNG "
                             "per decoded frame)")
    parser.add_argument("--afewva-frames", choices=("human", "all"), default="human",
                        help="frames in the AFEW-VA JSON: human labels only (default), or human + predicted")
    parser.set_defaults(run=run)


def media_name(url: str) -> str:
    """A task's media URL -> the video's file stem (Label Studio's upload prefix removed)."""
    parts = urlsplit(url)
    path = parse_qs(parts.query).get("d", [parts.path])[0]
    stem = PurePosixPath(unquote(path)).stem
    if "/data/upload/" in parts.path:
        stem = UPLOAD_PREFIX.sub("", stem)
    return safe_name(stem)


def safe_name(text: str) -> str:
    """A file name made of the text's letters, digits, dots and dashes."""
    return re.sub(r"[^\w.-]+", "_", text).strip("._") or "video"


def unique_name(name: str, names: set[str], task_id: int) -> str:
    """``name``, else ``name-task<id>``, else ``name-task<id>-2``, ... : the first not in ``names`` (added to it)."""
    candidate, k = name, 1
    while candidate in names:
        candidate = f"{name}-task{task_id}" + (f"-{k}" if k > 1 else "")
        k += 1
    names.add(candidate)
    return candidate


def in_media_root(url: str, root: Path, folder: str = "") -> Path | None:
    """The task's file in ``root/folder`` by its name (an upload's: as uploaded or as named before the upload; a
    local-files URL's: the ``?d=`` path's name)."""
    parts = urlsplit(url)
    name = PurePosixPath(unquote(parse_qs(parts.query).get("d", [parts.path])[0])).name
    for candidate in (name, UPLOAD_PREFIX.sub("", name)):
        path = (root / folder / candidate).resolve()
        if candidate and path.is_relative_to(root.resolve()) and path.is_file():
            return path
    return None


@dataclass
class ProjectSource:
    """What the export reads from Label Studio, once per project."""

    api: LabelStudioAPI
    setup: LabelSetup
    resolver: MediaResolver
    predictions: dict[int, list[dict]]  # task id -> its predictions
    users: dict[int, str]  # user id -> email


def local_media(source: ProjectSource, media: TaskMedia, media_root: Path | None, folder: str = "") -> Path:
    """The task's file: a local-files path under a media root, else by name in ``--media-root`` (``folder``: a
    frame-mode video's subfolder, where frame names repeat across videos), else fetched like the backend does."""
    return source.resolver.local_path(media.url, media.task_id, download=False) or \
        (in_media_root(media.url, media_root, folder) if media_root else None) or \
        source.resolver.local_path(media.url, media.task_id)


def open_project(args: argparse.Namespace, settings: Settings) -> ProjectSource:
    from mtclar_backend.ls_format import parse_label_config

    api = LabelStudioAPI(args.ls_url, args.api_key)
    setup = parse_label_config(api.client.projects.get(id=args.project).label_config)
    roots = ((args.media_root,) if args.media_root else ()) + settings.media_roots
    resolver = MediaResolver(settings.media_cache, roots, api, settings.media_hosts)
    predictions: dict[int, list[dict]] = {}
    for prediction in api.predictions(args.project):
        predictions.setdefault(int(prediction.get("task") or -1), []).append(prediction)
    return ProjectSource(api, setup, resolver, predictions, api.user_emails())


def export_task(source: ProjectSource, raw: dict, args: argparse.Namespace, settings: Settings,
                formats: list[str], names: set[str]) -> dict:
    """One task -> its files; returns its metadata. Raises MtclarError when the task cannot be exported."""
    from mtclar.afewva_export import write_afewva
    from mtclar.model.video import probe_video
    from mtclar_backend.export_rows import label_studio_frames, latest_prediction, task_rows

    task = parse_task(raw)
    media = read_task(source.setup, task, settings.max_frame)
    path = local_media(source, media, args.media_root)
    info = probe_video(path)
    latest = latest_prediction(source.predictions.get(task.id, []))
    rows = task_rows(source.setup, task, latest, info.n_frames, info.fps, settings.max_frame, source.users)
    name = unique_name(media_name(media.url), names, task.id)
    ls_frames = label_studio_frames(task)
    if ls_frames is not None and ls_frames != info.n_frames:
        print(f"warning: {name} (task {task.id}): Label Studio says {ls_frames} frames, the decoded video has "
              f"{info.n_frames}: the export follows the decoded video", file=sys.stderr)
    counts = {s: len({r.frame for r in rows if r.source == s}) for s in ("human", "predicted", "none")}
    metadata = {
        "project": args.project, "task": task.id, "video": name, "media_url": media.url,
        "video_sha256": info.content_id, "frames": info.n_frames, "fps": info.fps,
        "label_studio_frames": ls_frames, "prediction_id": latest.get("id") if latest else None,
        "prediction_model_version": latest.get("model_version") if latest else None,
        "annotators": sorted({r.annotator for r in rows if r.source == "human"}),
        "frames_by_source": counts, "mtclar_version": __version__, "created": utc_now(),
    }
    write_tables(args.out, name, rows, metadata, formats)
    if "afewva" in formats:
        write_afewva(args.out / "afew-va", name, path, info.n_frames, rows, args.afewva_frames,
                     {k: metadata[k] for k in ("project", "task", "video", "fps", "frames")})
    print(f"{name} (task {task.id}): {info.n_frames} frames at {info.fps:g} fps: {counts['human']} human, "
          f"{counts['predicted']} predicted, {counts['none']} without a value")
    return metadata


def export_frame_video(source: ProjectSource, video_id: str, tasks: list[tuple[Task, TaskMedia]],
                       args: argparse.Namespace, settings: Settings, formats: list[str], names: set[str]) -> dict:
    """Frame mode: the image tasks of one ``video_id`` -> its files (rows for the frames that have a task)."""
    from mtclar.afewva_export import write_afewva_images
    from mtclar_backend.export_rows import frame_task_rows, latest_prediction
    from mtclar_backend.project_data import media_fps

    fps = media_fps(source.setup, tasks[0][1])
    latest = {task.id: latest_prediction(source.predictions.get(task.id, [])) for task, _ in tasks}
    rows = frame_task_rows(source.setup, [(task, media.frame, latest[task.id]) for task, media in tasks], fps,
                           settings.max_frame, source.users)
    name = unique_name(safe_name(video_id), names, tasks[0][0].id)
    counts = {s: len({r.frame for r in rows if r.source == s}) for s in ("human", "predicted", "none")}
    versions = sorted({str(p.get("model_version")) for p in latest.values() if p})
    metadata = {
        "project": args.project, "video": name, "video_id": video_id, "tasks": [task.id for task, _ in tasks],
        "frames": len({r.frame for r in rows}), "fps": fps, "prediction_model_versions": versions,
        "annotators": sorted({r.annotator for r in rows if r.source == "human"}),
        "frames_by_source": counts, "mtclar_version": __version__, "created": utc_now(),
    }
    write_tables(args.out, name, rows, metadata, formats)
    if "afewva" in formats:
        images = {media.frame: local_media(source, media, args.media_root, video_id) for _, media in tasks}
        write_afewva_images(args.out / "afew-va", name, images, rows, args.afewva_frames,
                            {k: metadata[k] for k in ("project", "video", "video_id", "fps", "frames")})
    print(f"{name}: {metadata['frames']} frame tasks at {fps:g} fps: {counts['human']} human, "
          f"{counts['predicted']} predicted, {counts['none']} without a value")
    return metadata


def run(args: argparse.Namespace, settings: Settings) -> int:
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise MtclarError(f"--formats: unknown {', '.join(unknown) or '(empty)'}; choose from {', '.join(FORMATS)}")
    if not args.ls_url or not args.api_key:
        raise MtclarError("needs --ls-url and --api-key (or LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY)")
    if args.media_root is not None and not args.media_root.is_dir():
        raise MtclarError(f"--media-root {args.media_root}: not a folder")
    index, failed, names = [], [], {"export"}  # export.json is the summary
    with label_studio_errors(args.ls_url):
        source = open_project(args, settings)
        args.out.mkdir(parents=True, exist_ok=True)
        if source.setup.mode == "video":
            for raw in source.api.iter_tasks(args.project):
                try:
                    index.append(export_task(source, raw, args, settings, formats, names))
                except MtclarError as error:
                    failed.append(raw.get("id"))
                    print(f"task {raw.get('id')}: not exported: {error}", file=sys.stderr)
        else:
            videos: dict[str, list[tuple[Task, TaskMedia]]] = {}
            for raw in source.api.iter_tasks(args.project):
                try:
                    task = parse_task(raw)
                    media = read_task(source.setup, task, settings.max_frame)
                except MtclarError as error:
                    failed.append(raw.get("id"))
                    print(f"task {raw.get('id')}: not exported: {error}", file=sys.stderr)
                    continue
                videos.setdefault(media.video_key.removeprefix("video:"), []).append((task, media))
            for video_id, tasks in videos.items():
                try:
                    index.append(export_frame_video(source, video_id, tasks, args, settings, formats, names))
                except MtclarError as error:
                    failed += [task.id for task, _ in tasks]
                    print(f"video {video_id}: not exported: {error}", file=sys.stderr)
    summary = {"project": args.project, "videos": index, "failed_tasks": failed}
    (args.out / "export.json").write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n")
    print(f"project {args.project}: {len(index)} videos exported to {args.out}"
          f"{f', {len(failed)} tasks failed' if failed else ''}")
    return 1 if failed else 0


def write_tables(out: Path, name: str, rows: list, metadata: dict, formats: list[str]) -> None:
    """A video's rows as ``<name>.csv`` and ``<name>.json``, where asked for."""
    from mtclar.outputs import write_csv, write_json
    from mtclar_backend.export_rows import COLUMNS

    dict_rows = [r.as_dict() for r in rows]
    if "csv" in formats:
        write_csv(out / f"{name}.csv", dict_rows, COLUMNS)
    if "json" in formats:
        write_json(out / f"{name}.json", dict_rows, metadata)

