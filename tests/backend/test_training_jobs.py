"""fit: background fine-tunes from the webhook, in a thread and on RQ + a real Redis."""

from __future__ import annotations

import time
from functools import partial

import pytest

from mtclar.settings import Settings
from mtclar_backend.app import create_app
from mtclar_backend.label_configs import VIDEO as VIDEO_CONFIG
from mtclar_backend.ls_format import parse_label_config, timeline_region
from mtclar_backend.runtime import Runtime

WOLFGANG = {"id": 7, "data": {"video": "/data/local-files/?d=videos/WolfgangLanger_Pexels.mp4", "fps": 23.976}}
region = partial(timeline_region, parse_label_config(VIDEO_CONFIG))  # (id, start, end, valence, arousal)


ANCHORS = (region("a", 1, 4, -0.4, -0.2) + region("b", 120, 123, -0.2, 0.0) + region("c", 200, 203, 0.2, 0.3)
           + region("d", 300, 303, 0.5, 0.6) + region("e", 400, 403, 0.7, 0.5))


def runtime_for(tmp_path, shared_dir, **overrides) -> Runtime:
    return Runtime(Settings(model_dir=tmp_path / "model", cache_dir=tmp_path.parent / "training-cache",
                                 media_roots=(shared_dir / "data",), **overrides))


def annotate(client, project: int, annotation_id: int = 1, result=ANCHORS) -> dict:
    hook = {"action": "ANNOTATION_CREATED", "project": {"id": project, "label_config": VIDEO_CONFIG},
            "task": WOLFGANG, "annotation": {"id": annotation_id, "result": result}}
    response = client.post("/webhook", json=hook)
    assert response.status_code == 201
    return response.get_json()


def start_training(client, project: int) -> dict:
    started = time.perf_counter()
    response = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": project}})
    assert response.status_code == 201
    assert time.perf_counter() - started < 1.0, "Label Studio gives a webhook about 1 s"
    return response.get_json()["training"]


@pytest.mark.slow
def test_training_runs_in_the_background_and_a_better_model_serves(tmp_path, shared_dir):
    runtime = runtime_for(tmp_path, shared_dir, finetune_min_improvement=-10.0)  # accept any fine-tune
    client = create_app(runtime).test_client()
    before = annotate(client, 1)["model_version"]
    assert start_training(client, 1)["status"] in ("queued", "running")
    state = runtime.jobs.wait(1, timeout=300)
    assert state["status"] == "done", state
    assert state["kept_new"] and state["videos"] == 1 and state["anchors"] == 20
    assert {"valence", "arousal", "mean_rmse", "n"} <= set(state["before"]) and state["after"]["n"] == 20
    after = client.get("/metrics?project=1").get_json()
    assert after["training"]["status"] == "done" and after["model_version"] != before
    assert "-ft1" in after["model_version"]
    prediction = client.post("/predict", json={"tasks": [WOLFGANG], "project": "1.1", "label_config": VIDEO_CONFIG}
                             ).get_json()["results"][0]
    assert prediction["model_version"] == after["model_version"] and prediction["result"]
    # a second project still serves the base model
    assert not client.get("/metrics?project=2").get_json()["model_version"].count("-ft")


@pytest.mark.slow
def test_the_serving_model_stays_when_the_fine_tune_is_not_better(tmp_path, shared_dir):
    runtime = runtime_for(tmp_path, shared_dir, finetune_min_improvement=10.0)  # nothing can win by 10
    client = create_app(runtime).test_client()
    before = annotate(client, 1)["model_version"]
    start_training(client, 1)
    state = runtime.jobs.wait(1, timeout=300)
    assert state["status"] == "done" and state["kept_new"] is False
    assert client.get("/metrics?project=1").get_json()["model_version"] == before


def test_training_without_anchors_fails_with_a_reason(tmp_path, shared_dir):
    runtime = runtime_for(tmp_path, shared_dir)
    client = create_app(runtime).test_client()
    client.post("/setup", json={"project": "4.1", "schema": VIDEO_CONFIG})
    start_training(client, 4)
    state = runtime.jobs.wait(4, timeout=60)
    assert state["status"] == "failed" and "no anchors" in state["message"]


@pytest.mark.slow
def test_every_n_annotations_starts_a_fine_tune(tmp_path, shared_dir):
    runtime = runtime_for(tmp_path, shared_dir, train_every=2)
    client = create_app(runtime).test_client()
    assert "training" not in annotate(client, 1, 1, ANCHORS[:6])
    out = annotate(client, 1, 2, ANCHORS[6:])
    assert out["training"]["status"] in ("queued", "running")
    assert runtime.jobs.wait(1, timeout=300)["status"] == "done"


@pytest.mark.slow
def test_redis_store_and_rq_worker(tmp_path, shared_dir, redis_url):
    from redis import Redis
    from rq import Queue, SimpleWorker

    from mtclar_backend import worker

    secret = "SECRET-API-KEY-4e1c"
    runtime = runtime_for(tmp_path, shared_dir, redis_url=redis_url, finetune_min_improvement=-10.0,
                          label_studio_url="http://127.0.0.1:9", label_studio_api_key=secret)
    client = create_app(runtime).test_client()
    annotate(client, 7)
    assert client.get("/metrics?project=7").get_json()["store"]["backend"] == "redis"
    assert start_training(client, 7)["status"] == "queued"
    connection = Redis.from_url(redis_url)
    queue = Queue("mtclar", connection=connection)
    assert queue.count == 1
    job = queue.jobs[0]
    assert job.args == (7,) and not job.kwargs  # the project id, nothing else
    assert secret not in repr(job.to_dict())
    for key in connection.keys("*"):  # no secret in any plain value either
        kind = connection.type(key).decode()
        values = {"string": lambda k: [connection.get(k)], "hash": lambda k: connection.hvals(k),
                  "set": lambda k: connection.smembers(k), "list": lambda k: connection.lrange(k, 0, -1),
                  "zset": lambda k: connection.zrange(k, 0, -1)}.get(kind, lambda k: [])(key)
        assert not any(secret.encode() in (v or b"") for v in values), key
    # the worker builds its own settings from its own environment, as `mtclar worker` does
    worker.configure(Settings.from_env({"MODEL_DIR": str(tmp_path / "model"), "REDIS_URL": redis_url,
                                             "MTCLAR_CACHE_DIR": str(tmp_path.parent / "training-cache"),
                                             "MTCLAR_MEDIA_ROOTS": str(shared_dir / "data"),
                                             "MTCLAR_FINETUNE_MIN_IMPROVEMENT": "-10"}))
    SimpleWorker([queue], connection=connection).work(burst=True)  # what `mtclar worker` runs
    state = client.get("/metrics?project=7").get_json()["training"]
    assert state["status"] == "done" and state["kept_new"], state
    assert "-ft1" in client.get("/metrics?project=7").get_json()["model_version"]
