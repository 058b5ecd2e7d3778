"""A task's annotations and latest prediction -> one row per frame (export).

Video mode: every frame of the decoded video. Frames are the backend's: Label Studio's 1-based timeline ranges
become 0-based decode-order frames (``start - 1 .. end - 1``, ``ls_format``), clipped to the frames that really
decode (``anchors.expand``). Frame mode: the frames that have an image task (``data.frame``, 0-based).
Values are on the model's [-1, 1] scale (the tags' own scale is mapped back, as for anchors).

Rows per frame: one ``human`` row per annotation that labels it (``annotator`` says whose; a frame several
regions of one annotation cover gets their mean, as the backend's anchors do), else one ``predicted`` row
from the task's latest prediction, else one ``none`` row with no values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from mtclar.model.errors import PayloadError

from .anchors import Anchors, expand
from .annotators import human_spans
from .ls_format import LabelSetup, annotation_spans
from .payload import ResultItem, Task

COLUMNS = ("frame", "time_s", "valence", "arousal", "source", "annotator")
LS_FRAME_KEYS = ("frames", "frameCount", "framesCount")  # task data keys that may hold Label Studio's count


@dataclass(frozen=True)
class ExportRow:
    frame: int  # 0-based, decode order
    time_s: float
    valence: float | None
    arousal: float | None
    source: str  # human | predicted | none
    annotator: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"frame": self.frame, "time_s": self.time_s, "valence": self.valence, "arousal": self.arousal,
                "source": self.source, "annotator": self.annotator}


def parse_task(raw: dict) -> Task:
    """A task as the API lists it (``fields=all``) -> the backend's typed task, or a PayloadError naming it."""
    try:
        return Task.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise PayloadError(f"task {raw.get('id', '?')}: {field}: {first['msg']}") from None


def human_anchors(setup: LabelSetup, task: Task, n_frames: int, max_frame: int, users: dict[int, str],
                  frame: int = -1) -> list[tuple[str, Anchors]]:
    """(annotator, per-frame values) for each usable annotation, in Label Studio's order (``frame``: a frame
    task's frame)."""
    return [(who, expand([spans], n_frames)) for who, spans in human_spans(setup, task, max_frame, users, frame)]


def prediction_anchors(setup: LabelSetup, prediction: dict | None, task_id: int, n_frames: int,
                       max_frame: int, frame: int = -1) -> Anchors:
    """Per-frame values of a prediction's result (every region, the predicted and the copied human ones)."""
    if not prediction:
        return {}
    raw = prediction.get("result") or []
    if not isinstance(raw, list):
        raise PayloadError(f"task {task_id}: prediction {prediction.get('id')}: result is not a list")
    try:
        result = [ResultItem.model_validate(item) for item in raw]
    except ValidationError as error:
        raise PayloadError(f"task {task_id}: prediction {prediction.get('id')}: {error.errors()[0]['msg']}") from None
    spans = annotation_spans(setup, result, f"task {task_id}: prediction {prediction.get('id')}", max_frame,
                             frame, human_only=False)
    return expand([spans], n_frames)


def latest_prediction(predictions: list[dict]) -> dict | None:
    """The newest prediction (by creation time, then id) of a task."""
    if not predictions:
        return None
    return max(predictions, key=lambda p: (str(p.get("created_at") or ""), int(p.get("id") or 0)))


def frame_rows(frames: Iterable[int], fps: float, humans: list[tuple[str, Anchors]],
               predicted: Anchors) -> list[ExportRow]:
    """Each of ``frames`` (in order): its human rows (sorted by annotator), else predicted, else none."""
    labelled: dict[int, list[tuple[str, float, float]]] = {}
    for _, (who, anchors) in sorted(enumerate(humans), key=lambda item: (item[1][0], item[0])):
        for frame, (v, a) in anchors.items():
            labelled.setdefault(frame, []).append((who, v, a))
    rows: list[ExportRow] = []
    for frame in frames:
        time_s = round(frame / fps, 6)
        if frame in labelled:
            rows += [ExportRow(frame, time_s, _value(v), _value(a), "human", who) for who, v, a in labelled[frame]]
        elif frame in predicted:
            v, a = predicted[frame]
            rows.append(ExportRow(frame, time_s, _value(v), _value(a), "predicted"))
        else:
            rows.append(ExportRow(frame, time_s, None, None, "none"))
    return rows


def task_rows(setup: LabelSetup, task: Task, prediction: dict | None, n_frames: int, fps: float, max_frame: int,
              users: dict[int, str] | None = None) -> list[ExportRow]:
    """A video task -> rows for each of the ``n_frames`` frames of its decoded video."""
    humans = human_anchors(setup, task, n_frames, max_frame, users or {})
    predicted = prediction_anchors(setup, prediction, task.id, n_frames, max_frame)
    return frame_rows(range(n_frames), fps, humans, predicted)


def frame_task_rows(setup: LabelSetup, tasks: list[tuple[Task, int, dict | None]], fps: float, max_frame: int,
                    users: dict[int, str] | None = None) -> list[ExportRow]:
    """Frame mode: the tasks of one video as (task, its 0-based frame, its latest prediction) -> rows for the
    frames that have a task, in frame order (a frame with no image task has no row: there is nothing to decode)."""
    humans: list[tuple[str, Anchors]] = []
    predicted: Anchors = {}
    for task, frame, prediction in tasks:
        humans += human_anchors(setup, task, frame + 1, max_frame, users or {}, frame)
        predicted.update(prediction_anchors(setup, prediction, task.id, frame + 1, max_frame, frame))
    return frame_rows(sorted({frame for _, frame, _ in tasks}), fps, humans, predicted)


def label_studio_frames(task: Task) -> int | None:
    """The frame count Label Studio (or ``mtclar import``) recorded for the task, when it did: the task data's
    ``frames``/``frameCount``/``framesCount``, else a ``framesCount`` the editor wrote into a result value."""
    for key in LS_FRAME_KEYS:
        value = task.data.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    for annotation in task.annotations:
        for item in annotation.result:
            value = item.value.get("framesCount")
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def mean_human(rows: list[ExportRow]) -> Anchors:
    """Human rows -> one (valence, arousal) per frame, the mean over annotators (the backend's anchors)."""
    totals: dict[int, list[float]] = {}
    for row in rows:
        if row.source == "human" and row.valence is not None and row.arousal is not None:
            total = totals.setdefault(row.frame, [0.0, 0.0, 0])
            total[0], total[1], total[2] = total[0] + row.valence, total[1] + row.arousal, total[2] + 1
    return {frame: (t[0] / t[2], t[1] / t[2]) for frame, t in sorted(totals.items())}


def _value(x: float) -> float:
    return round(float(x), 6)
