"""kill -9 at the worst moment: training state and checkpoints recover; a bad video does not poison a project."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from mtclar.model.checkpoint import load_checkpoint
from mtclar.settings import Settings
from mtclar_backend.app import create_app
from mtclar_backend.jobs import TrainingJobs
from mtclar_backend.label_configs import VIDEO
from mtclar_backend.runtime import Runtime
from mtclar_backend.store import SQLiteStore

from .conftest import region

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_a_killed_training_job_reads_as_failed_and_does_not_block_the_next(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {REPO!r})
        from mtclar_backend.jobs import TrainingJobs
        from mtclar_backend.store import SQLiteStore
        jobs = TrainingJobs(SQLiteStore({str(tmp_path / "s.db")!r}), run=lambda p, progress: time.sleep(60),
                            heartbeat_s=0.2)
        jobs.execute(1)
    """)
    process = subprocess.Popen([sys.executable, "-c", script])
    store = SQLiteStore(tmp_path / "s.db")
    jobs = TrainingJobs(store, run=lambda project, progress: {"ok": True}, lost_after_s=4.0)
    for _ in range(600):  # the child imports the package first (slow on a busy machine)
        if jobs.state(1).get("status") == "running":
            break
        time.sleep(0.1)
    assert jobs.state(1)["status"] == "running"
    time.sleep(5.0)
    assert jobs.state(1)["status"] == "running"  # longer than lost_after_s: the heartbeat keeps it alive
    process.send_signal(signal.SIGKILL)
    process.wait()
    time.sleep(5.0)
    state = jobs.state(1)
    assert state["status"] == "failed" and "no heartbeat" in state["message"]
    assert "note" not in jobs.start(1, "again")  # a lost job does not block a new one
    assert jobs.wait(1, timeout=10)["status"] == "done"


def test_a_queued_job_whose_process_restarted_is_lost(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    store.set_state(1, "training", {"status": "queued", "queued": "2020-01-01T00:00:00+00:00"})
    assert TrainingJobs(store, run=lambda p, progress: {}).state(1)["status"] == "failed"


@pytest.mark.slow
def test_checkpoint_replace_survives_kill_9_and_leaves_no_litter(tmp_path):
    target = tmp_path / "ckpt"
    script = textwrap.dedent(f"""
        import sys, dataclasses
        sys.path.insert(0, {REPO!r})
        import torch
        from mtclar.model.checkpoint import load_checkpoint
        base = load_checkpoint()
        i = 0
        while True:
            i += 1
            state = {{"heads.w": torch.randn(512, 512)}}
            dataclasses.replace(base, name=f"n{{i}}", state=state).save({str(target)!r})
    """)
    load_checkpoint().save(target)
    for attempt in range(15):
        process = subprocess.Popen([sys.executable, "-c", script])
        time.sleep(2.0 + 0.137 * attempt)  # import time, then a different moment of the save loop each time
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert load_checkpoint(target).name  # always a complete checkpoint at the path
    load_checkpoint().save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no staging or old folders left


@pytest.mark.slow
def test_a_deleted_video_or_a_stored_bad_row_does_not_poison_the_fine_tune(tmp_path, shared_dir):
    media = tmp_path / "media" / "videos"
    media.mkdir(parents=True)
    shutil.copy(shared_dir / "data" / "videos" / "single_face.mp4", media / "gone.mp4")
    shutil.copy(shared_dir / "data" / "videos" / "WolfgangLanger_Pexels.mp4", media / "kept.mp4")
    runtime = Runtime(Settings(model_dir=tmp_path / "m", cache_dir=tmp_path / "c", media_roots=(media.parent,),
                                    finetune_min_improvement=-10.0))
    client = create_app(runtime).test_client()
    anchors = (region("a", 1, 4, -0.4, -0.2) + region("b", 120, 123, -0.2, 0.0) + region("c", 200, 203, 0.2, 0.3)
               + region("d", 300, 303, 0.5, 0.6))
    for task_id, name in ((1, "gone.mp4"), (2, "kept.mp4")):
        hook = {"action": "ANNOTATION_CREATED", "project": {"id": 3, "label_config": VIDEO},
                "task": {"id": task_id, "data": {"video": f"/data/local-files/?d=videos/{name}"}},
                "annotation": {"id": task_id * 10, "result": anchors}}
        assert client.post("/webhook", json=hook).status_code == 201
    (media / "gone.mp4").unlink()
    with sqlite3.connect(tmp_path / "m" / "anchors.sqlite3") as db:  # a row stored before validation existed
        db.execute("INSERT INTO tasks VALUES (3, 9, 'task:9', -1, '[1]')")
        db.execute("INSERT INTO annotations VALUES (3, 90, 'task:9', '{\"0\": [0.1, 0.1]}')")
    assert client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 3}}).status_code == 201
    state = runtime.jobs.wait(3, timeout=300)
    assert state["status"] == "done", state
    assert state["videos"] == 1 and set(state["skipped_videos"]) == {"task:1", "task:9"}
    assert "gone.mp4" in state["skipped_videos"]["task:1"]
