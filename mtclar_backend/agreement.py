"""Annotations -> per-annotator frame labels -> agreement (``mtclar.model.agreement``), from the backend's store
or from tasks read over the Label Studio API.

An annotator is who Label Studio says completed the annotation (``completed_by``); an annotation whose author
is unknown counts as its own rater (``annotation <id>``). Two annotations of the same person on one task are
one rater (their spans averaged where they overlap, as anchors are).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from mtclar.model.agreement import Ratings, per_video_and_pooled
from mtclar.model.errors import PayloadError

from .anchors import Span, expand
from .ls_format import LabelSetup, annotation_spans, read_task
from .payload import Task
from .store import Store

log = logging.getLogger(__name__)
MAX_NAME_CHARS = 200


def annotator_name(completed_by: Any, users: Mapping[int, str] | None = None) -> str | None:
    """Label Studio's ``completed_by`` (a user id, or a user object) -> a rater name; None when it names nobody."""
    if isinstance(completed_by, dict):
        email = completed_by.get("email")
        if isinstance(email, str) and email.strip():
            return email.strip()[:MAX_NAME_CHARS]
        completed_by = completed_by.get("id")
    if isinstance(completed_by, bool) or not isinstance(completed_by, int):
        return None
    return (users or {}).get(completed_by) or f"user {completed_by}"


def ratings_by_annotator(annotations: Iterable[tuple[int | None, str | None, list[Span]]],
                         bound: int) -> dict[str, Ratings]:
    """(annotation id, annotator or None, spans) of one video -> rater -> frame -> (v, a) inside ``[0, bound)``."""
    grouped: dict[str, list[list[Span]]] = {}
    for annotation_id, annotator, spans in annotations:
        grouped.setdefault(annotator or f"annotation {annotation_id}", []).append(spans)
    return {rater: expand(spans, bound) for rater, spans in grouped.items()}


def store_ratings(store: Store, project: int, bound: int) -> dict[str, dict[str, Ratings]]:
    """video key -> rater -> frame labels, from the anchors the backend stored."""
    names = store.annotators(project)
    return {key: ratings_by_annotator(((aid, names.get(aid), spans) for aid, spans in store.annotations(project, key)),
                                      bound)
            for key in store.video_keys(project)}


def project_agreement(store: Store, project: int, bound: int) -> dict:
    """Agreement per video and pooled for a project (see ``per_video_and_pooled``)."""
    return per_video_and_pooled(store_ratings(store, project, bound))


def task_ratings(setup: LabelSetup, tasks: Iterable[dict], max_frame: int,
                 users: Mapping[int, str] | None = None) -> dict[str, dict[str, Ratings]]:
    """Tasks as the Label Studio API lists them (with annotations) -> video -> rater -> frame labels. A task the
    API returns malformed is skipped with a warning, as the backfill does."""
    per_video: dict[str, list[tuple[int | None, str | None, list[Span]]]] = {}
    for raw in tasks:
        try:
            task = Task.model_validate(raw)
            media = read_task(setup, task, max_frame)
            entries = [(a.id, annotator_name(a.completed_by, users),
                        annotation_spans(setup, a.result, f"task {task.id}: annotations[{k}]", max_frame, media.frame))
                       for k, a in enumerate(task.annotations) if a.usable]
        except (ValidationError, PayloadError) as error:
            log.warning("task %s is skipped: %s", raw.get("id") if isinstance(raw, dict) else "?", str(error)[:300])
            continue
        name = media.video_key if setup.mode == "frame" else f"task:{task.id}"
        per_video.setdefault(name, []).extend(entries)
    return {video: ratings_by_annotator(entries, max_frame + 1) for video, entries in per_video.items()}
