"""Annotations -> per-annotator frame labels -> agreement (``mtclar.model.agreement``), from the backend's store
or from tasks read over the Label Studio API.

An annotator is who Label Studio says completed the annotation (``completed_by``); an annotation whose author
is unknown counts as its own rater (``annotation <id>``). Two annotations of the same person on one task are
one rater (their spans averaged where they overlap, as anchors are).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from pydantic import ValidationError

from mtclar.model.agreement import Runs, per_video_and_pooled, runs_from_spans
from mtclar.model.errors import PayloadError

from .anchors import Span
from .annotators import annotator_name as annotator_name  # the webhook names annotators by it
from .annotators import human_spans, rater_name
from .ls_format import LabelSetup, read_task
from .payload import Task
from .store import Store

log = logging.getLogger(__name__)


def ratings_by_annotator(annotations: Iterable[tuple[str, list[Span]]], bound: int) -> dict[str, Runs]:
    """(rater, spans) of one video -> rater -> runs of labels inside ``[0, bound)`` (a rater's overlapping spans
    averaged). Costs the number of spans, whatever frames they name."""
    grouped: dict[str, list[Span]] = {}
    for rater, spans in annotations:
        grouped.setdefault(rater, []).extend(spans)
    return {rater: runs_from_spans((max(s.start, 0), min(s.end, bound - 1), s.valence, s.arousal) for s in spans)
            for rater, spans in grouped.items()}


def store_ratings(store: Store, project: int, bound: int) -> dict[str, dict[str, Runs]]:
    """video key -> rater -> runs of labels, from the anchors the backend stored."""
    names = store.annotators(project)
    return {key: ratings_by_annotator(((rater_name(aid, names.get(aid)), spans)
                                       for aid, spans in store.annotations(project, key)), bound)
            for key in store.video_keys(project)}


def project_agreement(store: Store, project: int, bound: int) -> dict:
    """Agreement per video and pooled for a project (see ``per_video_and_pooled``)."""
    return per_video_and_pooled(store_ratings(store, project, bound))


def task_ratings(setup: LabelSetup, tasks: Iterable[dict], max_frame: int,
                 users: Mapping[int, str] | None = None) -> dict[str, dict[str, Runs]]:
    """Tasks as the Label Studio API lists them (with annotations) -> video -> rater -> runs of labels. A task the
    API returns malformed is skipped with a warning, as the backfill does."""
    per_video: dict[str, list[tuple[str, list[Span]]]] = {}
    for raw in tasks:
        try:
            task = Task.model_validate(raw)
            media = read_task(setup, task, max_frame)
            entries = human_spans(setup, task, max_frame, users, media.frame)
        except (ValidationError, PayloadError) as error:
            log.warning("task %s is skipped: %s", raw.get("id") if isinstance(raw, dict) else "?", str(error)[:300])
            continue
        per_video.setdefault(media.video_key, []).extend(entries)
    return {video: ratings_by_annotator(entries, max_frame + 1) for video, entries in per_video.items()}
