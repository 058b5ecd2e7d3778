import pytest

from mtclar_backend.store import RedisStore, SQLiteStore, merge


@pytest.fixture(params=["sqlite", "redis"])
def store(request, tmp_path):
    if request.param == "sqlite":
        return SQLiteStore(tmp_path / "anchors.sqlite3")
    url = request.getfixturevalue("redis_url")
    store = RedisStore(url, prefix=f"test-{tmp_path.name}")
    return store


def test_merge_averages_frames_labelled_twice():
    assert merge([{1: (0.2, 0.4)}, {1: (0.4, 0.0), 3: (1.0, -1.0)}]) == {1: (pytest.approx(0.3), pytest.approx(0.2)),
                                                                        3: (1.0, -1.0)}


def test_annotations_set_update_delete(store):
    assert store.revision(1) == 0
    assert store.set_annotation(1, 10, "task:5", {0: (0.1, 0.2), 1: (0.1, 0.2)})
    assert store.revision(1) == 1
    assert not store.set_annotation(1, 10, "task:5", {0: (0.1, 0.2), 1: (0.1, 0.2)})  # unchanged: same revision
    assert store.revision(1) == 1
    store.set_annotation(1, 11, "task:5", {1: (0.3, 0.0)})
    assert store.anchors(1, "task:5") == {0: (0.1, 0.2), 1: (pytest.approx(0.2), pytest.approx(0.1))}
    store.set_annotation(1, 10, "task:5", {7: (0.5, 0.5)})  # updated annotation replaces its frames
    assert store.anchors(1, "task:5") == {1: (0.3, 0.0), 7: (0.5, 0.5)}
    assert store.delete_annotation(1, 11) == "task:5"
    assert store.anchors(1, "task:5") == {7: (0.5, 0.5)}
    assert store.delete_annotation(1, 999) is None
    assert store.revision(1) == 4
    assert store.video_keys(1) == ["task:5"] and store.video_keys(2) == []
    assert store.anchors(2, "task:5") == {}  # projects are separate


def test_tasks_and_state(store):
    store.set_task(3, 1, "video:a", 5, {"image": "/data/upload/1.png", "frame": 5})
    store.set_task(3, 2, "video:a", 2, {"image": "/data/upload/2.png", "frame": 2})
    store.set_task(3, 1, "video:a", 5, {"image": "/data/upload/1b.png", "frame": 5})
    assert store.tasks(3, "video:a") == [(2, 2, {"image": "/data/upload/2.png", "frame": 2}),
                                         (1, 5, {"image": "/data/upload/1b.png", "frame": 5})]
    assert store.get_state(3, "training") is None
    store.set_state(3, "training", {"status": "running"})
    assert store.get_state(3, "training") == {"status": "running"}


def test_sqlite_survives_reopening(tmp_path):
    SQLiteStore(tmp_path / "s.db").set_annotation(1, 1, "task:1", {4: (0.5, -0.5)})
    assert SQLiteStore(tmp_path / "s.db").anchors(1, "task:1") == {4: (0.5, -0.5)}


def test_a_stale_rq_job_does_not_block_training_forever(tmp_path):
    import datetime as dt

    from mtclar_backend.jobs import TrainingJobs

    store = SQLiteStore(tmp_path / "s.db")
    # redis_url set (so a queued/running state could belong to a worker elsewhere), no rq_target: runs in a thread
    jobs = TrainingJobs(store, run=lambda project, progress: {}, redis_url="redis://unused", rq_target=None)
    recent = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    store.set_state(1, "training", {"status": "running", "started": recent})
    assert "already" in jobs.start(1, "again")["note"]
    old = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=3)).isoformat(timespec="seconds")
    store.set_state(1, "training", {"status": "running", "started": old})
    state = jobs.start(1, "again")
    assert "note" not in state
    assert jobs.wait(1, timeout=10)["status"] == "done"
