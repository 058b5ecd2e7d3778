"""One annotator's labels from CSV: ``frame,valence,arousal`` and optionally ``video``; a folder stands for every
``*.csv`` in it (e.g. one labelling pass, one file per clip). Rows without a video column belong to the file's
stem inside a folder, and to one video (``DEFAULT_VIDEO``) when the file is given alone. Values on [-1, 1]."""

from __future__ import annotations

import csv
from pathlib import Path

from mtclar.model.errors import DataError
from mtclar.training.sources import check_va, csv_number

REQUIRED = ("frame", "valence", "arousal")
DEFAULT_VIDEO = "video"


def parse_ratings(lines: list[str], name: str,
                  default_video: str = DEFAULT_VIDEO) -> dict[str, dict[int, tuple[float, float]]]:
    """CSV text lines -> video -> frame -> (valence, arousal); ``name`` is the source (errors name its rows)."""
    try:
        return _parse(lines, name, default_video)
    except csv.Error as error:
        raise DataError(f"{name}: not a readable CSV: {error}") from None


def _parse(lines: list[str], name: str, default_video: str) -> dict[str, dict[int, tuple[float, float]]]:
    reader = csv.DictReader(lines)
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{name}: missing column(s) {', '.join(missing)} (has: {', '.join(reader.fieldnames or [])})")
    out: dict[str, dict[int, tuple[float, float]]] = {}
    for line, row in enumerate(reader, start=2):
        where = f"{name} row {line}"
        video = (row.get("video") or "").strip() if "video" in reader.fieldnames else default_video
        if not video:
            raise DataError(f"{where}: empty video")
        frame = csv_number(row, "frame", where)
        if frame != int(frame) or frame < 0:
            raise DataError(f"{where}: frame {row['frame']!r} must be a whole number >= 0")
        valence = check_va(csv_number(row, "valence", where), "valence", where)
        arousal = check_va(csv_number(row, "arousal", where), "arousal", where)
        frames = out.setdefault(video, {})
        if int(frame) in frames:
            raise DataError(f"{where}: frame {int(frame)} of {video} is labelled twice")
        frames[int(frame)] = (valence, arousal)
    return out


def read_ratings(path: Path) -> dict[str, dict[int, tuple[float, float]]]:
    """A CSV file, or a folder of them -> video -> frame -> (valence, arousal)."""
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise DataError(f"{path}: no CSV file there")
    out: dict[str, dict[int, tuple[float, float]]] = {}
    for file in files:
        with open(file, newline="", encoding="utf-8-sig") as handle:
            lines = handle.read().splitlines()
            default = file.stem if path.is_dir() else DEFAULT_VIDEO
            for video, frames in parse_ratings(lines, str(file), default).items():
                if video in out and set(out[video]) & set(frames):
                    raise DataError(f"{file}: video {video} is also in another file of {path}")
                out.setdefault(video, {}).update(frames)
    return out
