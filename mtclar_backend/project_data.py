"""A project's tasks and anchors (from the store) -> per-video embeddings and anchors, for predict and fit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from model.embeddings import VideoEmbeddings
from model.errors import LabelConfigError, MtclarError

from .ls_format import LabelSetup, parse_label_config

DEFAULT_FPS = 25.0


def video_key(setup: LabelSetup, task: dict) -> str:
    if setup.mode == "video":
        return f"task:{task['id']}"
    data = task.get("data") or {}
    group = data.get("video_id", data.get("video"))
    if group in (None, ""):
        raise MtclarError(f"task {task.get('id')}: frame mode needs data.video_id (and data.frame) to group frames")
    return f"video:{group}"


def frame_number(task: dict) -> int:
    data = task.get("data") or {}
    try:
        return int(data["frame"])
    except (KeyError, TypeError, ValueError):
        raise MtclarError(f"task {task.get('id')}: frame mode needs an integer data.frame") from None


def task_fps(setup: LabelSetup, data: dict) -> float:
    for value in (data.get(setup.fps_key) if setup.fps_key else None, setup.fps_value, data.get("fps")):
        try:
            if value is not None and float(value) > 0:
                return float(value)
        except (TypeError, ValueError):
            continue
    return DEFAULT_FPS


def assemble_frames(rows: dict[int, VideoEmbeddings], fps: float, n_rows: int | None = None) -> VideoEmbeddings:
    """One-image embeddings of frame tasks -> one sequence whose row i is frame i (empty rows between)."""
    if not rows:
        raise MtclarError("no frames to assemble")
    first = next(iter(rows.values()))
    n = max(max(rows) + 1, n_rows or 0)
    dim, classes = first.embeddings.shape[1], first.expression_probs.shape[1]
    out = VideoEmbeddings(
        replace(first.info, n_frames=n, fps=fps, path="frames"),
        np.zeros(n, dtype=bool), np.zeros(n, dtype=np.float32), np.full((n, 4), np.nan, np.float32),
        np.full((n, 5, 2), np.nan, np.float32), np.full((n, dim), np.nan, np.float32),
        np.full((n, classes), np.nan, np.float32), first.encoder, first.weights_id)
    for frame, one in rows.items():
        out.has_face[frame], out.face_score[frame] = one.has_face[0], one.face_score[0]
        out.boxes[frame], out.landmarks[frame] = one.boxes[0], one.landmarks[0]
        out.embeddings[frame], out.expression_probs[frame] = one.embeddings[0], one.expression_probs[0]
    return out


def project_setup(runtime, project: int) -> LabelSetup:
    state = runtime.store.get_state(project, "setup")
    if not state or not state.get("label_config"):
        raise LabelConfigError(f"project {project}: no labelling config known yet (Label Studio sends it on /setup)")
    return parse_label_config(state["label_config"])


def project_videos(runtime, project: int) -> Iterator[tuple[str, VideoEmbeddings, dict]]:
    """(name, embeddings, anchors) for every video of the project that has anchors."""
    setup = project_setup(runtime, project)
    for key in runtime.store.video_keys(project):
        anchors = runtime.store.anchors(project, key)
        tasks = runtime.store.tasks(project, key)
        if not anchors or not tasks:
            continue
        if setup.mode == "video":
            task_id, _, data = tasks[0]
            embeddings = runtime.video_embeddings(data.get(setup.value_key), task_id)
        else:
            images = {frame: runtime.image_embeddings(data.get(setup.value_key), task_id)
                      for task_id, frame, data in tasks if frame in anchors}
            if not images:
                continue
            embeddings = assemble_frames(images, task_fps(setup, tasks[0][2]))
        yield key, embeddings, {f: va for f, va in anchors.items() if f < embeddings.n_frames}
