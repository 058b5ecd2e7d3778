"""Labelled data on disk -> records: AFEW-VA folders, AffectNet CSVs, generic CSV manifests, anchor CSVs.

Values are returned on the [-1, 1] scale (AFEW-VA's [-10, 10] is divided by 10). Errors name the file and row.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from mtclar.model.errors import AnchorError, DataError
from mtclar.model.video import VIDEO_EXTENSIONS, list_frame_images

AFEWVA_FPS = 25.0
AFFECTNET_CLASSES = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")


@dataclass
class LabelledVideo:
    """One video (a file, or a folder of numbered frame images) and its labelled frames."""

    name: str
    video_file: Path | None = None
    frame_files: dict[int, Path] | None = None
    fps: float | None = None  # for frame folders; video files carry their own
    labels: dict[int, tuple[float, float]] = field(default_factory=dict)  # frame -> (valence, arousal)
    expressions: dict[int, int] = field(default_factory=dict)  # frame -> class index, where known


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    valence: float = math.nan
    arousal: float = math.nan
    expression: int = -1


def csv_number(row: dict, column: str, where: str, required: bool = True) -> float:
    raw = (row.get(column) or "").strip()
    if not raw:
        if required:
            raise DataError(f"{where}: missing value in column {column!r}")
        return math.nan
    try:
        value = float(raw)
    except ValueError:
        raise DataError(f"{where}: {column} = {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: {column} = {raw!r} is not finite")
    return value


def check_va(value: float, column: str, where: str) -> float:
    if not math.isnan(value) and not -1 <= value <= 1:
        raise DataError(f"{where}: {column} = {value} is outside [-1, 1]")
    return value


def _rows(path: Path, required: set[str], any_of: tuple[set[str], ...] = ()) -> list[tuple[int, dict]]:
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or [])
        missing = required - columns
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(sorted(missing))} "
                            f"(has: {', '.join(sorted(columns))})")
        if any_of and not any(group <= columns for group in any_of):
            options = " or ".join("+".join(sorted(g)) for g in any_of)
            raise DataError(f"{path}: needs column(s) {options}")
        return [(line, row) for line, row in enumerate(reader, start=2)]


# -- AFEW-VA -----------------------------------------------------------------------------------------


def read_afewva(root: str | Path) -> list[LabelledVideo]:
    """``<root>/<id>/<id>.json`` + ``<root>/<id>/<frame>.png``; V/A / 10."""
    root = Path(root)
    videos = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        annotation = folder / f"{folder.name}.json"
        if not annotation.is_file():
            continue
        try:
            data = json.loads(annotation.read_text())
            frames = data["frames"]
            if not isinstance(frames, dict):
                raise TypeError(f"frames is a {type(frames).__name__}, not an object")
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise DataError(f"{annotation}: not an AFEW-VA annotation ({error})") from error
        files = list_frame_images(folder)
        video = LabelledVideo(folder.name, frame_files=files, fps=AFEWVA_FPS)
        for key, value in frames.items():
            where = f"{annotation} frame {key}"
            if not key.isdigit():
                raise DataError(f"{where}: frame names must be numbers")
            if not isinstance(value, dict):
                raise DataError(f"{where}: expected an object with valence and arousal, got {value!r}")
            v = check_va(csv_number({"valence": str(value.get("valence", ""))}, "valence", where) / 10, "valence/10",
                         where)
            a = check_va(csv_number({"arousal": str(value.get("arousal", ""))}, "arousal", where) / 10, "arousal/10",
                         where)
            if int(key) not in files:
                raise DataError(f"{where}: labelled, but there is no image {key}.png in {folder}")
            video.labels[int(key)] = (v, a)
        videos.append(video)
    if not videos:
        raise DataError(f"{root}: no AFEW-VA clip found (expected <id>/<id>.json with frame images beside it)")
    return videos


# -- AffectNet ---------------------------------------------------------------------------------------


def read_affectnet(csv_path: str | Path, images_root: str | Path | None = None) -> list[LabelledImage]:
    """AffectNet's CSV (``subDirectory_filePath, expression, valence, arousal``); classes >= 8 are dropped."""
    csv_path = Path(csv_path)
    root = Path(images_root) if images_root is not None else csv_path.parent
    images = []
    for line, row in _rows(csv_path, {"subDirectory_filePath", "expression", "valence", "arousal"}):
        where = f"{csv_path} row {line}"
        expression = int(csv_number(row, "expression", where))
        if not 0 <= expression < len(AFFECTNET_CLASSES):
            continue  # 8 none, 9 uncertain, 10 no face
        path = root / row["subDirectory_filePath"].strip()
        images.append(LabelledImage(path, check_va(csv_number(row, "valence", where), "valence", where),
                                    check_va(csv_number(row, "arousal", where), "arousal", where), expression))
    return images


# -- generic manifest --------------------------------------------------------------------------------


def find_video(name: str, search: list[Path]) -> tuple[Path | None, dict[int, Path] | None]:
    """``<dir>/<name>.<ext>`` or a frame folder ``<dir>/<name>/`` in the first search dir that has it."""
    for folder in search:
        for ext in VIDEO_EXTENSIONS:
            if (folder / f"{name}{ext}").is_file():
                return folder / f"{name}{ext}", None
        if (folder / name).is_dir():
            return None, list_frame_images(folder / name)
    return None, None


def read_manifest(csv_path: str | Path, search: list[Path] | None = None, fps: float = AFEWVA_FPS
                  ) -> tuple[list[LabelledVideo], list[LabelledImage]]:
    """Rows ``video,frame`` (frames of videos) and/or ``path`` (single images), optional
    ``expression, valence, arousal``. Videos are looked up beside the CSV, then in ``search``."""
    csv_path = Path(csv_path)
    search = [csv_path.parent, *(search or [])]
    rows = _rows(csv_path, set(), any_of=({"video", "frame"}, {"path"}))
    videos: dict[str, LabelledVideo] = {}
    images: list[LabelledImage] = []
    for line, row in rows:
        where = f"{csv_path} row {line}"
        v = check_va(csv_number(row, "valence", where, required=False), "valence", where)
        a = check_va(csv_number(row, "arousal", where, required=False), "arousal", where)
        expression = csv_number(row, "expression", where, required=False)
        expression = -1 if math.isnan(expression) else int(expression)
        if (row.get("video") or "").strip():
            name = row["video"].strip()
            frame = csv_number(row, "frame", where)
            if frame != int(frame) or frame < 0:
                raise DataError(f"{where}: frame {row['frame']!r} must be a whole number >= 0")
            if name not in videos:
                file, frames = find_video(name, search)
                if file is None and frames is None:
                    raise DataError(f"{where}: video {name!r} not found as <dir>/{name}.mp4 (or .mov, ...) or "
                                    f"<dir>/{name}/ frame images in: {', '.join(map(str, search))}")
                videos[name] = LabelledVideo(name, file, frames, None if file else fps)
            if math.isnan(v) != math.isnan(a):
                raise DataError(f"{where}: valence and arousal go together (one of them is empty)")
            if int(frame) in videos[name].labels or int(frame) in videos[name].expressions:
                raise DataError(f"{where}: frame {int(frame)} of {name} is listed twice")
            if not (math.isnan(v) or math.isnan(a)):
                videos[name].labels[int(frame)] = (v, a)
            if expression >= 0:
                videos[name].expressions[int(frame)] = expression
        elif (row.get("path") or "").strip():
            path = Path(row["path"].strip())
            images.append(LabelledImage(path if path.is_absolute() else csv_path.parent / path, v, a, expression))
        else:
            raise DataError(f"{where}: neither video nor path is given")
    return list(videos.values()), images


def load_labelled_videos(path: str | Path, search: list[Path] | None = None) -> list[LabelledVideo]:
    """A folder in the AFEW-VA layout, or a CSV manifest with ``video,frame,valence,arousal``."""
    path = Path(path)
    if path.is_dir():
        return read_afewva(path)
    if path.suffix.lower() == ".csv":
        videos, _ = read_manifest(path, search)
        if not videos:
            raise DataError(f"{path}: no video,frame rows")
        return videos
    raise DataError(f"{path}: expected an AFEW-VA folder or a .csv manifest")


# -- anchors -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnchorRow:
    video: str
    frame: int
    valence: float
    arousal: float
    line: int


def read_anchor_csv(path: str | Path) -> dict[str, list[AnchorRow]]:
    """``video,frame,valence,arousal`` (video = file stem, frame 0-based) -> rows per video.

    An ``mtclar export`` CSV (``frame,...,source,annotator``, no ``video`` column) is read too: its ``human``
    rows are the anchors of the video named by the CSV's stem, and a frame several annotators labelled gets
    their mean (as the backend's anchors do); ``predicted`` and ``none`` rows are skipped.
    Checks what a CSV alone can tell (columns, numbers, range, duplicates); frame bounds are checked
    against the video by ``check_anchor_rows``.
    """
    path = Path(path)
    try:
        columns = _columns(path)
        exported = "video" not in columns and {"source", "annotator"} <= columns
        rows = _rows(path, {"frame", "valence", "arousal", *(() if exported else ("video",))})
    except DataError as error:
        raise AnchorError(str(error)) from None
    if exported:
        return _read_exported(path, rows)
    out: dict[str, list[AnchorRow]] = {}
    seen: dict[tuple[str, int], int] = {}
    for line, row in rows:
        where = f"{path} row {line}"
        video = (row.get("video") or "").strip()
        frame, v, a = _anchor_values(row, where, video)
        key = (video, frame)
        if key in seen:
            raise AnchorError(f"{where}: frame {frame} of {video} is already labelled on row {seen[key]}")
        seen[key] = line
        out.setdefault(video, []).append(AnchorRow(video, frame, v, a, line))
    return out


def _columns(path: Path) -> set[str]:
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as f:
        return set(next(csv.reader(f), []))


def _anchor_values(row: dict, where: str, video: str) -> tuple[int, float, float]:
    try:
        if not video:
            raise DataError(f"{where}: empty video")
        frame = csv_number(row, "frame", where)
        if frame != int(frame) or frame < 0:
            raise DataError(f"{where}: frame {row['frame']!r} must be a whole number >= 0")
        return int(frame), check_va(csv_number(row, "valence", where), "valence", where), \
            check_va(csv_number(row, "arousal", where), "arousal", where)
    except DataError as error:
        raise AnchorError(str(error)) from None


def _read_exported(path: Path, rows: list[tuple[int, dict]]) -> dict[str, list[AnchorRow]]:
    video = path.stem
    frames: dict[int, list] = {}
    for line, row in rows:
        if (row.get("source") or "").strip() != "human":
            continue
        frame, v, a = _anchor_values(row, f"{path} row {line}", video)
        total = frames.setdefault(frame, [0.0, 0.0, 0, line])
        total[0], total[1], total[2] = total[0] + v, total[1] + a, total[2] + 1
    return {video: [AnchorRow(video, frame, t[0] / t[2], t[1] / t[2], t[3]) for frame, t in sorted(frames.items())]
            } if frames else {}


def check_anchor_rows(path: str | Path, rows: dict[str, list[AnchorRow]], videos: dict[str, int]) -> None:
    """Every row names a known video (by stem) and a frame inside it (``videos``: stem -> frame count)."""
    for video, video_rows in rows.items():
        if video not in videos:
            row = video_rows[0]
            raise AnchorError(f"{path} row {row.line}: unknown video {video!r}; videos given: "
                              f"{', '.join(sorted(videos)) or 'none'}")
        for row in video_rows:
            if row.frame >= videos[video]:
                raise AnchorError(f"{path} row {row.line}: frame {row.frame} is out of range for {video} "
                                  f"({videos[video]} frames, 0..{videos[video] - 1})")
