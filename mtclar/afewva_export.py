"""Exported rows -> the AFEW-VA folder layout that ``training.sources.read_afewva`` reads back.

``<root>/<name>/<name>.json`` holds ``{"frames": {"00000": {"valence": v, "arousal": a, "source": ...}}}`` on
AFEW-VA's -10..10 scale (the model's [-1, 1] times 10, not rounded to AFEW-VA's integers: rounding would lose
the labelling config's step), beside one ``<frame>.png`` per decoded frame (5 digits, as AFEW-VA names them;
a frame-mode project's images are copied as they are). A frame several annotators labelled gets their mean;
frames with no value are left out of ``frames``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2

from mtclar.model.errors import MediaError
from mtclar.model.files import atomic_write
from mtclar.model.video import IMAGE_EXTENSIONS, iter_frames, read_image
from mtclar_backend.export_rows import ExportRow, mean_human

AFEWVA_SCALE = 10.0
SOURCES = ("human", "all")  # which frames go into the JSON: human only, or human + predicted


def afewva_frames(rows: list[ExportRow], include: str = "human") -> dict[str, dict]:
    """Rows -> AFEW-VA's ``frames`` object (keys are 5-digit 0-based frame numbers)."""
    values: dict[int, tuple[float, float, str]] = {f: (v, a, "human") for f, (v, a) in mean_human(rows).items()}
    if include == "all":
        for row in rows:
            if row.source == "predicted" and row.valence is not None and row.arousal is not None:
                values[row.frame] = (row.valence, row.arousal, "predicted")
    return {f"{frame:05d}": {"valence": round(v * AFEWVA_SCALE, 6), "arousal": round(a * AFEWVA_SCALE, 6),
                             "source": source}
            for frame, (v, a, source) in sorted(values.items())}


def write_afewva(root: Path, name: str, video: Path, n_frames: int, rows: list[ExportRow], include: str = "human",
                 metadata: dict | None = None) -> Path:
    """Write ``root/name/`` from a video: every decoded frame as a PNG, and ``name.json``; returns the folder."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for batch in iter_frames(video):
        for index, rgb in zip(batch.indices.tolist(), batch.frames, strict=True):
            if index >= n_frames:
                break
            if not cv2.imwrite(str(folder / f"{index:05d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
                raise MediaError(f"{folder}: cannot write frame {index:05d}.png")
            written += 1
    if written != n_frames:
        raise MediaError(f"{video}: {written} frames decoded now, {n_frames} before: the file changed?")
    _write_json(folder, name, rows, include, metadata)
    return folder


def write_afewva_images(root: Path, name: str, images: dict[int, Path], rows: list[ExportRow],
                        include: str = "human", metadata: dict | None = None) -> Path:
    """Write ``root/name/`` from frame images ({0-based frame: image file}, copied as ``00042.<ext>``)."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for frame, image in sorted(images.items()):
        suffix = image.suffix.lower() if image.suffix.lower() in IMAGE_EXTENSIONS else ".png"
        if suffix == image.suffix.lower():
            shutil.copyfile(image, folder / f"{frame:05d}{suffix}")
        elif not cv2.imwrite(str(folder / f"{frame:05d}.png"), cv2.cvtColor(read_image(image), cv2.COLOR_RGB2BGR)):
            raise MediaError(f"{folder}: cannot write frame {frame:05d}.png")
    _write_json(folder, name, rows, include, metadata)
    return folder


def _write_json(folder: Path, name: str, rows: list[ExportRow], include: str, metadata: dict | None) -> None:
    document = {**(metadata or {}), "frames": afewva_frames(rows, include)}
    with atomic_write(folder / f"{name}.json", "w") as f:
        f.write(json.dumps(document, indent=1, allow_nan=False) + "\n")
