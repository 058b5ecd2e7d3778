"""The /setup backfill stores what the Label Studio API returns in batches: one write and at most one revision
bump per batch, however many tasks the project has; a malformed task is skipped, the others are kept."""

from __future__ import annotations

from functools import partial

from mtclar.settings import Settings
from mtclar_backend.backfill import BATCH, Backfills
from mtclar_backend.label_configs import FRAME
from mtclar_backend.model import MTCLARModel
from mtclar_backend.runtime import Runtime


class ProjectTasks:
    """The one call the walk makes: the project's tasks, as Label Studio's API pages them out."""

    def __init__(self, tasks: list):
        self.tasks = tasks

    def iter_tasks(self, project: int):
        yield from self.tasks


def frame_task(i: int) -> dict:
    numbers = [{"id": f"n{k}", "from_name": k, "to_name": "frame", "type": "number", "value": {"number": 0.1}}
               for k in ("valence", "arousal")]
    return {"id": 1000 + i, "data": {"image": f"/data/upload/1/{i}.png", "video_id": "clip", "frame": i},
            "annotations": [{"id": 5000 + i, "result": numbers}]}


def test_a_large_project_is_stored_in_batches_and_a_malformed_task_is_skipped(tmp_path):
    runtime = Runtime(Settings(model_dir=tmp_path / "model", cache_dir=tmp_path / "cache"))
    model = MTCLARModel(runtime, 6, FRAME)
    tasks = [frame_task(i) for i in range(2 * BATCH + 10)]
    tasks[7] = {"id": "not a task"}  # fails validation
    tasks[8]["data"]["frame"] = -3  # fails reading (a negative frame)
    Backfills()._walk(6, ProjectTasks(tasks), runtime.store, model._remember_tasks)
    assert runtime.store.revision(6) <= 3  # one bump per batch at most, not one per annotated task
    frames = sorted(frame for _, frame, _ in runtime.store.tasks(6, "video:clip"))
    assert len(frames) == len(tasks) - 2 and 7 not in frames and 8 not in frames
    assert len(runtime.store.get_state(6, "annotation_ids")["ids"]) == len(tasks) - 2


def test_annotations_gone_from_label_studio_are_dropped(tmp_path):
    runtime = Runtime(Settings(model_dir=tmp_path / "model", cache_dir=tmp_path / "cache"))
    model = MTCLARModel(runtime, 6, FRAME)
    walk = partial(Backfills()._walk, 6, store=runtime.store, remember=model._remember_tasks)
    walk(ProjectTasks([frame_task(i) for i in range(5)]))
    walk(ProjectTasks([frame_task(i) for i in range(3)]))
    assert runtime.store.get_state(6, "annotation_ids")["ids"] == [5000, 5001, 5002]
    assert sorted(a for key in runtime.store.video_keys(6) for a, _ in runtime.store.annotations(6, key)) == \
        [5000, 5001, 5002]
