"""Who made an annotation, and a task's human annotations as spans: the one naming rule that the store, the
agreement and the export share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .anchors import Span
from .ls_format import LabelSetup, annotation_spans
from .payload import Task

MAX_NAME_CHARS = 200


def annotator_name(completed_by: Any, users: Mapping[int, str] | None = None) -> str | None:
    """Label Studio's ``completed_by`` (a user id, or a user object) -> the user's email when known, else
    ``user <id>``; None when it names nobody."""
    if isinstance(completed_by, dict):
        email = completed_by.get("email")
        if isinstance(email, str) and email.strip():
            return email.strip()[:MAX_NAME_CHARS]
        completed_by = completed_by.get("id")
    if isinstance(completed_by, bool) or not isinstance(completed_by, int):
        return None
    return ((users or {}).get(completed_by) or f"user {completed_by}")[:MAX_NAME_CHARS]


def rater_name(annotation_id: int | None, annotator: str | None) -> str:
    """An annotation whose author is unknown is its own rater."""
    return annotator or (f"annotation {annotation_id}" if annotation_id is not None else "unknown annotation")


def human_spans(setup: LabelSetup, task: Task, max_frame: int, users: Mapping[int, str] | None = None,
                frame: int = -1) -> list[tuple[str, list[Span]]]:
    """(rater, spans) of each usable annotation of a task, in Label Studio's order (``frame``: a frame task's
    frame). Raises PayloadError naming the task and annotation."""
    return [(rater_name(a.id, annotator_name(a.completed_by, users)),
             annotation_spans(setup, a.result, f"task {task.id}: annotations[{k}]", max_frame, frame))
            for k, a in enumerate(task.annotations) if a.usable]
