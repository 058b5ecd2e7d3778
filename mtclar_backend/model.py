"""The ML backend model in the shape of the official SDK: ``setup()``, ``predict(tasks, context)``,
``fit(event, data)``. One object per request, built around the process's ``Runtime``.

Requests arrive as the typed objects of ``payload``. Every task and annotation of a request is read (and
so validated) before anything is stored: a request that fails changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from mtclar.model.embeddings import VideoEmbeddings
from mtclar.model.errors import LabelConfigError, MediaError, MtclarError, PayloadError

from .agreement import annotator_name
from .anchors import Span, expand
from .curve import build_curve
from .ls_api import LabelStudioAPI
from .ls_format import (
    LabelSetup,
    TaskMedia,
    annotation_spans,
    check_prediction,
    frame_prediction,
    parse_label_config,
    read_task,
    suggestion_regions,
    video_prediction,
)
from .payload import Annotation, Context, Task, WebhookRequest
from .project_data import frame_rows, media_fps, project_setup, stored_media
from .runtime import Runtime
from .segments import merge_segments, merge_within_budget
from .store import StoredAnnotation, StoredTask

log = logging.getLogger(__name__)
ANNOTATION_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")
DELETE_EVENTS = ("ANNOTATION_DELETED", "ANNOTATIONS_DELETED")
PENDING = object()  # a task whose video is still being embedded when the request's budget runs out
WORK_SHARE = 0.75  # of the /predict budget spent waiting for and computing embeddings; the rest answers
ANSWER_S_PER_TASK = 0.0005  # also kept back per task: queueing and answering one (measured ~0.3 ms, 2 cores)
SUGGESTION_HALF_WIDTH_S = 0.2  # a "label me" region spans the suggested frame +- this long (visible on the timeline)
FLOOR_WEIGHTS = "floor_weights"  # project state: video key -> the correction weight its own segments validated


def project_weight(weights: dict[str, list[float]], video_key: str) -> tuple[float, float] | None:
    """The correction weight validated on the project's *other* videos (their mean), for a video with too few
    segments to validate its own; None when no other video has validated one (the labeller's default)."""
    others = [w for key, w in weights.items() if key != video_key]
    if not others:
        return None
    mean = np.mean(np.asarray(others, dtype=np.float64), axis=0)
    return float(mean[0]), float(mean[1])


@dataclass
class ReadTask:
    """A task of a request, read and validated: its media and the anchor spans of each usable annotation."""

    task: Task
    media: TaskMedia
    annotations: list[tuple[Annotation, list[Span]]]


class MTCLARModel:
    def __init__(self, runtime: Runtime, project_id: int | None = None, label_config: str | None = None):
        self.runtime = runtime
        self.store = runtime.store
        self.project_id = project_id
        self.label_config = label_config
        self.setup()

    # -- setup ----------------------------------------------------------------------------------------

    def setup(self) -> None:
        self.label_setup: LabelSetup | None = None
        if self.label_config:
            self.label_setup = parse_label_config(self.label_config)
        elif self.project_id is not None:
            self.label_setup = project_setup(self.runtime, self.project_id)

    def remember_setup(self) -> None:
        """Keep the project's config (for fits and webhooks without one); called once a request is valid."""
        if self.label_config and self.project_id is not None:
            known = self.store.get_state(self.project_id, "setup") or {}
            if known.get("label_config") != self.label_config:
                self.store.set_state(self.project_id, "setup", {"label_config": self.label_config})

    @property
    def model_version(self) -> str:
        return self.runtime.model_version(self.project_id)

    def _setup(self) -> LabelSetup:
        if self.label_setup is None:
            raise LabelConfigError("no labelling config: call /setup first or send label_config with the request")
        return self.label_setup

    def backfill(self, api: LabelStudioAPI | None = None) -> None:
        """Anchors from every annotated task of the project, through the Label Studio API, in a thread
        (Label Studio gives /setup 3 s)."""
        if api is not None and self.project_id is not None and self.label_setup is not None:
            self.runtime.backfills.start(self.project_id, api, self.store, self._remember_tasks)

    def _remember_tasks(self, tasks: list[Task]) -> set[int]:
        """Store a batch of the API's tasks (a malformed one is skipped and logged); their annotations' ids."""
        reads = []
        for task in tasks:
            try:
                reads.append(self._read(task))
            except PayloadError as error:
                log.warning("project %s: task %s from the API is skipped: %s", self.project_id, task.id,
                            str(error)[:300])
        self._remember(reads)
        return {annotation.id for read in reads for annotation, _ in read.annotations if annotation.id is not None}

    # -- reading and storing --------------------------------------------------------------------------

    def _read(self, task: Task) -> ReadTask:
        setup, limit = self._setup(), self.runtime.config.max_frame
        media = read_task(setup, task, limit)
        annotations = [(annotation, annotation_spans(setup, annotation.result, f"task {task.id}: annotations[{k}]",
                                                     limit, media.frame))
                       for k, annotation in enumerate(task.annotations) if annotation.usable]
        return ReadTask(task, media, annotations)

    def _remember(self, reads: list[ReadTask], embed: bool = True) -> bool:
        """Store read tasks and their annotations' anchors (when the project is known), in one write each.
        True if anchors changed. ``embed``: queue the tasks' videos for embedding now, before anyone asks."""
        if self.project_id is None:
            return False
        if embed and self._setup().mode == "video":
            for read in reads:
                self.runtime.embeddings.queue(self.project_id, read.media)
        self.store.set_tasks(self.project_id, [StoredTask(r.media.task_id, r.media.video_key, r.media.frame,
                                                          r.media.to_dict()) for r in reads])
        return self.store.set_annotations(self.project_id, [
            StoredAnnotation(annotation.id, read.media.video_key, spans, annotator_name(annotation.completed_by))
            for read in reads for annotation, spans in read.annotations if annotation.id is not None])

    def _spans(self, read: ReadTask) -> list[list[Span]]:
        """Anchor spans of a task's video: the stored ones (which include this request's annotations once
        remembered), or, with no project, the annotations sent with the task."""
        if self.project_id is not None:
            return self.store.spans(self.project_id, read.media.video_key)
        return [spans for _, spans in read.annotations]

    # -- predict --------------------------------------------------------------------------------------

    def predict(self, tasks: list[Task], context: Context | None = None, received: float | None = None,
                **kwargs) -> dict:
        """``received``: when the request arrived (``time.perf_counter()``), where the time budget starts."""
        setup = self._setup()
        started = time.perf_counter() if received is None else received
        # embeddings may use this much of the budget; the rest reads, queues and answers every task
        deadline = started + WORK_SHARE * self.runtime.config.predict_budget_s - ANSWER_S_PER_TASK * len(tasks)
        reads = [self._read(task) for task in tasks]  # validates everything before anything is stored
        extra = annotation_spans(setup, context.result, "context", self.runtime.config.max_frame) \
            if context is not None and context.result and setup.mode == "video" else []
        self.remember_setup()
        self._remember(reads, embed=False)  # predict queues what it needs itself
        version = self.model_version
        if setup.mode == "video":
            # the videos at hand come from the cache; every other one starts embedding now, in the background
            ready = [self._ready_video(read) for read in reads]
            results = [self._predict_video(read, extra, version, deadline, video)
                       for read, video in zip(reads, ready, strict=True)]
            pending = sum(r is PENDING for r in results)
            if pending:
                log.info("/predict: %d of %d tasks wait for their video's embeddings; a new model version "
                         "follows when they are ready", pending, len(results))
            results = [{"result": [], "score": 0.0, "model_version": version} if r is PENDING else r
                       for r in results]
        else:
            results = self._predict_frames(reads, version, deadline)
            pending = sum(r is PENDING for r in results)
            if pending:
                log.info("/predict: %d of %d frame tasks wait for their images' embeddings", pending, len(results))
            results = [{"result": [], "score": 0.0, "model_version": version} if r is PENDING else r
                       for r in results]
        failed = [r for r in results if isinstance(r, MediaError)]
        if failed and len(failed) == len(results):
            raise MediaError("; ".join(str(e) for e in failed[:5]))
        for error in failed:
            log.warning("%s", error)
        out = [{"result": [], "score": 0.0, "model_version": version} if isinstance(r, Exception) else r
               for r in results]
        self.runtime.latencies.record(setup.mode, len(tasks), time.perf_counter() - started)
        return {"results": out, "model_version": version}

    def _ready_video(self, read: ReadTask) -> VideoEmbeddings | MediaError | None:
        try:
            return self.runtime.embeddings.ready_or_submit(self.project_id, read.media)
        except MediaError as error:
            return error

    def _predict_video(self, read: ReadTask, context: list[Span], version: str, deadline: float,
                       video: VideoEmbeddings | MediaError | None) -> dict | MediaError | object:
        setup = self._setup()
        if isinstance(video, MediaError):
            return video
        if video is None:
            try:
                video = self.runtime.embeddings.wait(self.project_id, read.media, deadline - time.perf_counter())
            except MediaError as error:
                return error
        if video is None:
            return PENDING
        anchors = expand(self._spans(read) + ([context] if context else []), video.n_frames)
        if not anchors or not video.has_face.any():
            return {"result": [], "score": 0.0, "model_version": version}
        key = read.media.video_key
        weights = (self.store.get_state(self.project_id, FLOOR_WEIGHTS) or {}) if self.project_id is not None else {}
        with self.runtime.model_slot():
            labels = self.runtime.labeler(self.project_id).label(video, anchors,
                                                                 fallback_weight=project_weight(weights, key))
        if self.project_id is not None and not context and labels.details.get("weight_validated"):
            # (an editor's draft, the interactive context, validates nothing for the project)
            weights = {**weights, key: labels.details["correction_weight"]}
            self.store.set_state(self.project_id, FLOOR_WEIGHTS, weights)
        predicted = np.flatnonzero(labels.source == "predicted")
        config = self.runtime.config
        budget = max(10, round(video.n_frames / video.info.fps * config.segments_per_second))
        segments, _ = merge_within_budget(predicted, labels.values[predicted], labels.score[predicted],
                                          config.segment_tolerance, budget)
        frames = np.array(sorted(anchors), dtype=int)  # the labelled frames go back as the person's regions
        human = merge_segments(frames, np.array([anchors[f] for f in frames]), np.ones(len(frames)), tolerance=0.0)
        score = float(labels.score[predicted].mean()) if predicted.size else 1.0
        suggestions = []
        if setup.suggest_label and config.suggest_k:  # (numpy only, milliseconds: no model slot)
            picked = self.runtime.labeler(self.project_id).suggest(video, anchors, config.suggest_k)
            suggestions = suggestion_regions(setup, picked, video.n_frames,
                                             half_width=max(1, round(video.info.fps * SUGGESTION_HALF_WIDTH_S)))
        prediction = video_prediction(setup, segments, human, score, version, suggestions)
        problems = check_prediction(setup, prediction, video.n_frames)
        if problems:  # our own construction failed: a bug, not bad input
            raise RuntimeError(f"task {read.task.id}: invalid prediction: {'; '.join(problems[:5])}")
        if setup.curve is not None and not context:  # (a draft's preview is not the task's curve)
            curve = build_curve(setup.curve, labels, video.time_s, setup.valence.from_model, setup.arousal.from_model)
            if curve is not None:
                self.runtime.curves.submit(read.task.id, setup.curve.data_key, curve)
        return prediction

    def _predict_frames(self, reads: list[ReadTask], version: str, deadline: float) -> list[dict | MediaError | object]:
        """Frame tasks grouped by video: anchors are the annotated frames of the same video (stored or sent).
        Images are embedded here until the deadline, then in the background (their tasks are PENDING)."""
        setup = self._setup()
        empty = {"result": [], "score": 0.0, "model_version": version}
        results: list[dict | MediaError] = [empty] * len(reads)
        groups: dict[str, list[int]] = defaultdict(list)
        for i, read in enumerate(reads):
            groups[read.media.video_key].append(i)
        for key, members in groups.items():
            media = {m.frame: m for m in stored_media(self.runtime, self.project_id, key)} \
                if self.project_id is not None else {}
            spans = self.store.spans(self.project_id, key) if self.project_id is not None else \
                [s for i in members for _, s in reads[i].annotations]
            media.update({reads[i].media.frame: reads[i].media for i in members})
            anchors = expand(spans, self.runtime.config.max_frame + 1)
            queries = {reads[i].media.frame: i for i in members}
            images, errors, late = {}, {}, set()
            # the anchors' images first: until they are all ready, no task of the group can be predicted
            wanted = sorted(set(anchors) & set(media)) + sorted((set(queries) - set(anchors)) & set(media))
            for frame in wanted:
                try:
                    in_time = time.perf_counter() < deadline  # past it, even cache reads go to the background
                    ready = self.runtime.ready_image_embeddings(media[frame], read_cache=in_time)
                    if ready is None and in_time:
                        ready = self.runtime.image_embeddings(media[frame])
                    if ready is None:
                        ready = self.runtime.embeddings.wait(self.project_id, media[frame], 0, kind="image")
                    if ready is None:
                        late.add(frame)
                    else:
                        images[frame] = ready
                except MediaError as error:
                    errors[frame] = error
            for frame, i in queries.items():
                results[i] = errors.get(frame, empty)
            if late & set(anchors):  # an anchor's image is still coming: the whole group waits
                for frame, i in queries.items():
                    results[i] = errors.get(frame, PENDING)
                continue
            for frame in late & set(queries):
                results[queries[frame]] = PENDING
            if not anchors or not images:
                continue
            rows = frame_rows(images, anchors, media_fps(setup, reads[members[0]].media))
            with self.runtime.model_slot():
                labels = self.runtime.labeler(self.project_id).label(rows.embeddings, rows.anchors(anchors))
            for frame, i in queries.items():
                if frame in errors or frame in late:
                    continue
                row = rows.row(frame)
                if labels.source[row] == "no_face":
                    continue
                prediction = frame_prediction(setup, labels.valence[row], labels.arousal[row], labels.score[row],
                                              version)
                problems = check_prediction(setup, prediction)
                if problems:
                    raise RuntimeError(f"task {reads[i].task.id}: invalid prediction: {'; '.join(problems)}")
                results[i] = prediction
        return results

    # -- fit ------------------------------------------------------------------------------------------

    def fit(self, event: str, data: WebhookRequest, **kwargs) -> dict:
        project = self.project_id
        if project is None:
            raise PayloadError(f"project: {event} needs the project ({{'id': N}})")
        if event == "START_TRAINING":
            state = self.runtime.jobs.start(project, "requested")
            return {"training": state, "job": state.get("job"),  # Label Studio follows it through /job_status
                    "report": f"/report?project={project}"}
        if event in DELETE_EVENTS:
            ids = [a.id for a in data.annotations or []] + ([data.annotation.id] if data.annotation and
                                                            data.annotation.id is not None else [])
            removed = [i for i in ids if self.store.delete_annotation(project, i)]
            return {"removed_annotations": removed, "model_version": self.model_version}
        if event in ANNOTATION_EVENTS:
            if data.task is None or data.annotation is None or data.annotation.id is None:
                raise PayloadError(f"{event} needs task and annotation (with its id)")
            annotation = data.annotation
            task = data.task.model_copy(update={"annotations": [annotation]})
            read = self._read(task)
            self.remember_setup()
            if not annotation.usable:  # cancelled or emptied: its anchors go
                read.annotations = [(annotation, [])]
            changed = self._remember([read])
            out = {"anchors_changed": changed, "model_version": self.model_version}
            every = self.runtime.config.train_every
            if changed and every:
                count = (self.store.get_state(project, "annotations_since_training") or {}).get("count", 0) + 1
                self.store.set_state(project, "annotations_since_training", {"count": count})
                if count >= every:
                    out["training"] = self.runtime.jobs.start(project, f"{count} new annotations")
            return out
        raise MtclarError(f"unhandled webhook action {event}")
