"""The ML backend model in the shape of the official SDK: ``setup()``, ``predict(tasks, context)``,
``fit(event, data)``. One object per request, built around the process's ``Runtime``."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict

import numpy as np

from model.errors import LabelConfigError, MediaError, MtclarError

from .ls_format import (
    LabelSetup,
    check_prediction,
    frame_prediction,
    frame_values,
    parse_label_config,
    usable_annotations,
    video_anchors,
    video_prediction,
)
from .project_data import assemble_frames, frame_number, project_setup, task_fps, video_key
from .runtime import Runtime
from .segments import merge_segments, merge_within_budget

log = logging.getLogger(__name__)
ANNOTATION_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")
DELETE_EVENTS = ("ANNOTATION_DELETED", "ANNOTATIONS_DELETED")
BACKFILL_EVERY_S = 600.0  # Label Studio calls /setup often; the API walk runs at most this often per project
_backfilling: set[int] = set()
_backfilled_at: dict[int, float] = {}
_backfill_lock = threading.Lock()


def parse_project(value) -> int | None:
    """Label Studio sends ``"<id>.<timestamp>"`` on /setup and /predict, an object in webhooks."""
    if isinstance(value, dict):
        value = value.get("id")
    if value in (None, ""):
        return None
    try:
        return int(str(value).split(".")[0])
    except ValueError:
        raise MtclarError(f"bad project id {value!r}") from None


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
            if self.project_id is not None:
                known = self.store.get_state(self.project_id, "setup") or {}
                if known.get("label_config") != self.label_config:
                    self.store.set_state(self.project_id, "setup", {"label_config": self.label_config})
        elif self.project_id is not None:
            self.label_setup = project_setup(self.runtime, self.project_id)

    def get(self, key: str) -> str:
        return self.runtime.model_version(self.project_id) if key == "model_version" else ""

    @property
    def model_version(self) -> str:
        return self.runtime.model_version(self.project_id)

    def backfill(self, api=None) -> None:
        """Anchors from every annotated task of the project, through the Label Studio API (in a thread: setup has
        3 s). Annotations the store has but Label Studio no longer has are dropped."""
        api = api or self.runtime.api
        project, setup = self.project_id, self.label_setup
        if api is None or project is None or setup is None:
            return
        with _backfill_lock:
            recent = time.monotonic() - _backfilled_at.get(project, -BACKFILL_EVERY_S) < BACKFILL_EVERY_S
            if project in _backfilling or recent:
                return
            _backfilling.add(project)
            _backfilled_at[project] = time.monotonic()

        def run() -> None:
            try:
                seen: set[int] = set()
                for task in api.iter_tasks(project):
                    for annotation in usable_annotations(task):
                        seen.add(int(annotation["id"]))
                        self._remember(task, annotation)
                stale = self.store.get_state(project, "annotation_ids") or {}
                for annotation_id in set(stale.get("ids", [])) - seen:
                    self.store.delete_annotation(project, annotation_id)
                self.store.set_state(project, "annotation_ids", {"ids": sorted(seen)})
                log.info("project %s: backfilled %d annotations from Label Studio", project, len(seen))
            except Exception as error:
                log.warning("project %s: backfill from Label Studio failed: %s", project, error)
            finally:
                with _backfill_lock:
                    _backfilling.discard(project)

        threading.Thread(target=run, name=f"mtclar-backfill-{project}", daemon=True).start()

    # -- anchors --------------------------------------------------------------------------------------

    def _remember(self, task: dict, annotation: dict) -> bool:
        """Store one annotation's anchors (and the task, to find its media later). True if anything changed."""
        assert self.label_setup is not None and self.project_id is not None
        setup, key = self.label_setup, video_key(self.label_setup, task)
        data = task.get("data") or {}
        frame = frame_number(task) if setup.mode == "frame" else -1
        self.store.set_task(self.project_id, int(task["id"]), key, frame, data)
        result = annotation.get("result") or []
        if setup.mode == "video":
            anchors = video_anchors(setup, result)
        else:
            values = frame_values(setup, result)
            anchors = {frame: values} if values is not None else {}
        if annotation.get("was_cancelled"):
            anchors = {}
        return self.store.set_annotation(self.project_id, int(annotation["id"]), key, anchors)

    def _task_anchors(self, task: dict, context: dict | None) -> dict[int, tuple[float, float]]:
        """Stored anchors of the task's video, plus annotations sent with the task, plus the interactive context."""
        assert self.label_setup is not None
        for annotation in usable_annotations(task):
            if self.project_id is not None and annotation.get("id") is not None:
                self._remember(task, annotation)
        key = video_key(self.label_setup, task)
        anchors = dict(self.store.anchors(self.project_id, key)) if self.project_id is not None else {}
        if self.project_id is None:
            for annotation in usable_annotations(task):
                anchors.update(video_anchors(self.label_setup, annotation["result"]))
        if context and context.get("result") and self.label_setup.mode == "video":
            anchors.update(video_anchors(self.label_setup, context["result"]))
        return anchors

    # -- predict --------------------------------------------------------------------------------------

    def predict(self, tasks: list[dict], context: dict | None = None, **kwargs) -> dict:
        if self.label_setup is None:
            raise LabelConfigError("no labelling config: call /setup first or send label_config with /predict")
        started = time.perf_counter()
        if self.label_setup.mode == "video":
            results = [self._predict_video(task, context) for task in tasks]
        else:
            results = self._predict_frames(tasks, context)
        failed = [r for r in results if isinstance(r, MediaError)]
        if failed and len(failed) == len(results):
            raise MediaError("; ".join(str(e) for e in failed))
        for error in failed:
            log.warning("%s", error)
        version = self.model_version
        out = [{"result": [], "score": 0.0, "model_version": version} if isinstance(r, Exception) else r
               for r in results]
        self.runtime.record_latency(self.label_setup.mode, len(tasks), time.perf_counter() - started)
        return {"results": out, "model_version": version}

    def _predict_video(self, task: dict, context: dict | None) -> dict | MediaError:
        setup = self.label_setup
        assert setup is not None
        task_id = task.get("id")
        data = task.get("data") or {}
        if self.project_id is not None and task_id is not None:
            self.store.set_task(self.project_id, int(task_id), video_key(setup, task), -1, data)
        try:
            video = self.runtime.video_embeddings(data.get(setup.value_key), task_id)
        except MediaError as error:
            return error
        anchors = {f: va for f, va in self._task_anchors(task, context).items() if f < video.n_frames}
        version = self.model_version
        if not anchors:
            return {"result": [], "score": 0.0, "model_version": version}
        labeler = self.runtime.labeler(self.project_id)
        labels = labeler.label(video, anchors)
        predicted = np.flatnonzero(labels.source == "predicted")
        config = self.runtime.config
        budget = max(10, round(video.n_frames / video.info.fps * config.segments_per_second))
        segments, _ = merge_within_budget(predicted, labels.values[predicted], labels.score[predicted],
                                          config.segment_tolerance, budget)
        anchor_frames = np.array(sorted(anchors), dtype=int)
        human = merge_segments(anchor_frames, np.array([anchors[f] for f in anchor_frames]),
                               np.ones(len(anchor_frames)), tolerance=0.0)
        kept = video_prediction(setup, human, [], 1.0, version)["result"]
        for item in kept:
            item.pop("origin", None)
            item.pop("score", None)
            item["id"] = item["id"].replace("mtclar-", "human-")
        score = float(labels.score[predicted].mean()) if predicted.size else 1.0
        prediction = video_prediction(setup, segments, kept, score, version)
        problems = check_prediction(setup, prediction, video.n_frames)
        if problems:  # our own construction failed: a bug, not bad input
            raise RuntimeError(f"task {task_id}: invalid prediction: {'; '.join(problems[:5])}")
        return prediction

    def _predict_frames(self, tasks: list[dict], context: dict | None) -> list[dict | MediaError]:
        """Frame tasks grouped by video: anchors are the annotated frames of the same video (stored or sent)."""
        setup = self.label_setup
        assert setup is not None
        version = self.model_version
        empty = {"result": [], "score": 0.0, "model_version": version}
        results: list[dict | MediaError] = [empty] * len(tasks)
        groups: dict[str, list[int]] = defaultdict(list)
        for i, task in enumerate(tasks):
            groups[video_key(setup, task)].append(i)
        for key, members in groups.items():
            media: dict[int, tuple[int | None, str]] = {}  # frame -> (task id, url)
            stored = self.store.tasks(self.project_id, key) if self.project_id is not None else []
            for task_id, frame, data in stored:
                media[frame] = (task_id, data.get(setup.value_key))
            anchors = dict(self.store.anchors(self.project_id, key)) if self.project_id is not None else {}
            for i in members:
                task, frame = tasks[i], frame_number(tasks[i])
                media[frame] = (task.get("id"), (task.get("data") or {}).get(setup.value_key))
                if self.project_id is not None:
                    self.store.set_task(self.project_id, int(task["id"]), key, frame, task.get("data") or {})
                for annotation in usable_annotations(task):
                    if self.project_id is not None:
                        self._remember(task, annotation)
                    values = frame_values(setup, annotation["result"])
                    if values is not None:
                        anchors[frame] = values
            queries = {frame_number(tasks[i]): i for i in members}
            images, errors = {}, {}
            for frame in (set(anchors) | set(queries)) & set(media):
                task_id, url = media[frame]
                try:
                    images[frame] = self.runtime.image_embeddings(url, task_id)
                except MediaError as error:
                    errors[frame] = error
            if not anchors or not images:
                for frame, i in queries.items():
                    results[i] = errors.get(frame, empty)
                continue
            n_rows = max(max(images), max(anchors)) + 1
            video = assemble_frames(images, task_fps(setup, tasks[members[0]].get("data") or {}), n_rows)
            labels = self.runtime.labeler(self.project_id).label(video, anchors)
            for frame, i in queries.items():
                if frame in errors:
                    results[i] = errors[frame]
                elif labels.source[frame] != "no_face":
                    prediction = frame_prediction(setup, labels.valence[frame], labels.arousal[frame],
                                                  labels.score[frame], version)
                    problems = check_prediction(setup, prediction)
                    if problems:
                        raise RuntimeError(f"task {tasks[i].get('id')}: invalid prediction: {'; '.join(problems)}")
                    results[i] = prediction
        return results

    # -- fit ------------------------------------------------------------------------------------------

    def fit(self, event: str, data: dict, **kwargs) -> dict:
        project = self.project_id
        if event == "START_TRAINING":
            if project is None:
                raise MtclarError("START_TRAINING without a project")
            return {"training": self.runtime.jobs.start(project, "requested")}
        if event in DELETE_EVENTS:
            removed = []
            for annotation in data.get("annotations") or [data.get("annotation") or {}]:
                annotation_id = annotation.get("id")
                if annotation_id is not None and project is not None and \
                        self.store.delete_annotation(project, int(annotation_id)):
                    removed.append(int(annotation_id))
            return {"removed_annotations": removed, "model_version": self.model_version}
        if event in ANNOTATION_EVENTS:
            task, annotation = data.get("task") or {}, data.get("annotation") or {}
            if project is None or self.label_setup is None or not task or annotation.get("id") is None:
                raise MtclarError(f"{event} needs project, task and annotation")
            changed = self._remember(task, annotation)
            out = {"anchors_changed": changed, "model_version": self.model_version}
            every = self.runtime.config.train_every
            if changed and every:
                count = (self.store.get_state(project, "annotations_since_training") or {}).get("count", 0) + 1
                self.store.set_state(project, "annotations_since_training", {"count": count})
                if count >= every:
                    out["training"] = self.runtime.jobs.start(project, f"{count} new annotations")
            return out
        return {"ignored": event}
