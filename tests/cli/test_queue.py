"""`mtclar label|evaluate --queue`: a real redis-server, two real `mtclar worker` processes, the same results
as a local run."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mtclar.cli import main

REPO = Path(__file__).resolve().parents[2]
DEV_LABELS = REPO / "benchmarks" / "data" / "dev_labels.csv"
VIDEOS = ("single_face.mp4", "face_noface.mov")
ANCHORS = [("single_face", 0, -0.3, 0.2), ("single_face", 40, 0.4, 0.1), ("face_noface", 5, 0.2, -0.4),
           ("face_noface", 60, -0.1, 0.5)]


def _wait_for(check, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def redis_url(start_redis) -> str:
    """A redis-server of this module's own: its tests count the workers listening there."""
    return start_redis()


@pytest.fixture(scope="module")
def workers(redis_url, tmp_path_factory):
    """Two `mtclar worker` processes on the dataset queue, started as a user would."""
    from redis import Redis
    from rq import Worker

    logs = tmp_path_factory.mktemp("workers")
    env = {**os.environ, "REDIS_URL": redis_url, "MODEL_DIR": str(logs / "model")}
    processes = []
    for k in range(2):
        with open(logs / f"{k}.log", "w") as log:
            processes.append(subprocess.Popen([sys.executable, "-m", "mtclar.cli", "worker", "--queues",
                                               "mtclar-datasets", "--name", f"test-worker-{k}"], env=env, stdout=log,
                                              stderr=subprocess.STDOUT))
    connection = Redis.from_url(redis_url)
    _wait_for(lambda: len(Worker.all(connection=connection)) == 2, "two workers to register")
    yield ["test-worker-0", "test-worker-1"]
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(30)


@pytest.fixture(scope="module")
def dataset(videos, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dataset")
    for name in VIDEOS:
        (folder / name).symlink_to(videos / name)
    (folder / "anchors.csv").write_text("video,frame,valence,arousal\n" +
                                        "".join(f"{v},{f},{a},{b}\n" for v, f, a, b in ANCHORS))
    with open(DEV_LABELS) as f:
        rows = [r for r in csv.DictReader(f) if r["video"] in {Path(n).stem for n in VIDEOS}]
    with open(folder / "labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["video", "frame", "valence", "arousal"])
        writer.writeheader()
        writer.writerows(rows)
    return folder


def _label(dataset: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return ["label", *(str(dataset / n) for n in VIDEOS), "--anchors", str(dataset / "anchors.csv"), "--out",
            str(out), "--cache-dir", str(cache), "--no-plot", "--threads", "1", *extra]


def _evaluate(dataset: Path, cache: Path, *extra: str) -> list[str]:
    return ["evaluate", "--data", str(dataset / "labels.csv"), "--support", "every:6", "first:1", "--cache-dir",
            str(cache), "--threads", "1", *extra]


def test_queue_without_the_cache_or_an_unreachable_redis_exits_2_before_any_work(dataset, tmp_path, capsys):
    code = main(_label(dataset, tmp_path / "out", tmp_path / "cache", "--no-cache", "--queue", "redis://127.0.0.1:1/0"))
    assert code == 2 and "--queue needs the embedding cache (not --no-cache)" in capsys.readouterr().err
    code = main(_evaluate(dataset, tmp_path / "cache", "--queue", "redis://:hunter2@127.0.0.1:1/0"))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("mtclar evaluate: error: --queue redis://127.0.0.1:1/0: ")
    assert "hunter2" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_queue_with_no_worker_listening_exits_2_before_any_work(dataset, redis_url, tmp_path, capsys):
    code = main(_label(dataset, tmp_path / "out", tmp_path / "cache", "--queue", redis_url))
    assert code == 2
    assert "no `mtclar worker` takes jobs from queue 'mtclar-datasets' there" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_label_and_evaluate_on_two_workers_match_a_local_run(dataset, redis_url, workers, tmp_path, capsys):
    local_cache, queue_cache = tmp_path / "local-cache", tmp_path / "queue-cache"  # each embeds from scratch
    assert main(_label(dataset, tmp_path / "local", local_cache)) == 0
    assert main(_label(dataset, tmp_path / "queued", queue_cache, "--queue", redis_url)) == 0
    err = capsys.readouterr().err
    assert f"2 videos on 2 workers: {', '.join(workers)}" in err  # both workers did a job
    for name in VIDEOS:
        stem = Path(name).stem
        assert (tmp_path / "queued" / f"{stem}.csv").read_bytes() == (tmp_path / "local" / f"{stem}.csv").read_bytes()
        local, queued = (json.loads((tmp_path / run / f"{stem}.json").read_text()) for run in ("local", "queued"))
        assert queued["frames"] == local["frames"]
        assert {k: v for k, v in queued["metadata"].items() if k != "created"} == \
            {k: v for k, v in local["metadata"].items() if k != "created"}
    assert len(list((queue_cache / "embeddings").rglob("*.npz"))) == len(VIDEOS)  # written by the workers

    assert main(_evaluate(dataset, local_cache)) == 0
    local = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(_evaluate(dataset, queue_cache, "--queue", redis_url)) == 0
    queued = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert queued == local and local["videos"] == 2 and len(local["rows"]) == 6


@pytest.mark.slow
def test_evaluate_of_frame_folders_on_workers_matches_a_local_run(shared_dir, redis_url, workers, tmp_path, capsys):
    data = ["evaluate", "--data", str(shared_dir / "data" / "afewva-sample"), "--support", "first:1", "--threads", "1"]
    assert main([*data, "--cache-dir", str(tmp_path / "local")]) == 0
    local = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main([*data, "--cache-dir", str(tmp_path / "queued"), "--queue", redis_url]) == 0
    queued = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert queued == local and local["videos"] == 1


@pytest.mark.slow
def test_a_video_that_fails_on_a_worker_is_one_error_line_naming_it(dataset, redis_url, workers, tmp_path, capsys):
    (tmp_path / "broken.mp4").write_bytes(b"\0" * 4096)
    (tmp_path / "single_face.mp4").symlink_to(dataset / "single_face.mp4")
    (tmp_path / "labels.csv").write_text("video,frame,valence,arousal\nbroken,0,0.1,0.1\nsingle_face,0,0,0\n"
                                         "single_face,3,0,0\n")
    code = main(_evaluate(tmp_path, tmp_path / "cache", "--queue", redis_url))
    err = capsys.readouterr().err
    assert code == 2
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 2, err
    assert errors[0].startswith(f"mtclar evaluate: error: {tmp_path / 'broken.mp4'}: MediaError: ")
    assert errors[1] == "mtclar evaluate: error: 1 of 2 videos failed on the workers: broken"


def test_the_command_stops_and_cancels_its_jobs_when_every_worker_is_gone(redis_url, dataset, monkeypatch):
    import threading

    from redis import Redis
    from rq import Queue, Worker
    from rq.job import Job, JobStatus

    from mtclar import dataset_jobs
    from mtclar.model.errors import ConfigError

    url = redis_url.rsplit("/", 1)[0] + "/3"  # a database of its own: the real workers never see these jobs
    connection = Redis.from_url(url)
    ghost = Worker([Queue(dataset_jobs.QUEUE, connection=connection)], connection=connection, name="ghost")
    ghost.register_birth()  # a worker that registers, then dies without taking a job
    monkeypatch.setattr(dataset_jobs, "LIVENESS_S", 0.3)
    options = dataset_jobs.ModelOptions(None, None, "cpu", 16, 1, str(dataset / "cache"))
    finished = dataset_jobs.fan_out(url, options, [dataset_jobs.VideoJob("single_face", dataset / "single_face.mp4")])
    threading.Timer(0.2, ghost.register_death).start()
    with pytest.raises(ConfigError, match="no `mtclar worker` takes jobs from queue 'mtclar-datasets' any more; "
                                          "1 videos were not embedded"):
        next(finished)
    jobs = Queue(dataset_jobs.QUEUE, connection=connection).canceled_job_registry.get_job_ids()
    assert len(jobs) == 1 and Job.fetch(jobs[0], connection=connection).get_status() == JobStatus.CANCELED


def test_worker_refuses_an_unknown_queue(capsys):
    assert main(["worker", "--redis-url", "redis://127.0.0.1:1/0", "--queues", "mtclar-datasets", "nope"]) == 2
    assert "--queues: unknown queue 'nope'; known: mtclar, mtclar-embed, mtclar-datasets" in capsys.readouterr().err
