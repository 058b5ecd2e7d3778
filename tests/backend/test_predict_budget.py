"""/predict answers within its time budget: a video that is not embedded yet is embedded in the background,
and a new model version tells Label Studio to ask again."""

from __future__ import annotations

import time
from functools import partial

import pytest

from mtclar.settings import Settings
from mtclar_backend.app import create_app
from mtclar_backend.label_configs import VIDEO
from mtclar_backend.ls_format import parse_label_config, timeline_region
from mtclar_backend.runtime import Runtime

pytestmark = pytest.mark.slow  # embeds a real clip

region = partial(timeline_region, parse_label_config(VIDEO))  # (id, start, end, valence, arousal)
TASK = {"id": 31, "data": {"video": "/data/local-files/?d=videos/single_face.mp4"},
        "annotations": [{"id": 310, "result": region("a", 1, 3, -0.2, 0.1) + region("b", 60, 62, 0.5, 0.3)}]}


def wait_for_embedding(client, project: int, timeout: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress = client.get(f"/health?project={project}").get_json()["embedding"]
        if progress.get("done") or progress.get("failed"):
            return progress
        time.sleep(0.2)
    raise AssertionError(f"the video was not embedded within {timeout} s")


def test_a_video_not_yet_embedded_is_answered_later_with_a_new_model_version(tmp_path, shared_dir):
    settings = Settings(model_dir=tmp_path / "model", cache_dir=tmp_path / "fresh-cache",
                        media_roots=(shared_dir / "data",), predict_budget_s=0.01)
    client = create_app(Runtime(settings)).test_client()
    body = {"tasks": [TASK], "project": "4.1700000000", "label_config": VIDEO}

    first = client.post("/predict", json=body).get_json()
    assert first["results"][0]["result"] == []  # nothing yet, and nothing wrong: it is being embedded

    assert wait_for_embedding(client, 4) == {"queued": 1, "done": 1}
    version = client.get("/health?project=4").get_json()["model_version"]
    assert version != first["model_version"]  # Label Studio asks again for every task of the project

    second = client.post("/predict", json=body).get_json()
    assert second["model_version"] == version
    assert len(second["results"][0]["result"]) > 0
    assert client.get("/metrics").get_json()["embedding"]["done"] == 1


def test_the_version_changes_once_the_last_queued_video_is_ready(tmp_path, shared_dir):
    settings = Settings(model_dir=tmp_path / "model", cache_dir=tmp_path / "fresh-cache",
                        media_roots=(shared_dir / "data",), predict_budget_s=0.01)
    runtime = Runtime(settings)
    client = create_app(runtime).test_client()
    other = {**TASK, "id": 32, "data": {"video": "/data/local-files/?d=videos/no_face.mp4"}, "annotations": []}
    body = {"tasks": [TASK, other], "project": "8.1700000000", "label_config": VIDEO}
    first = client.post("/predict", json=body).get_json()
    assert [r["result"] for r in first["results"]] == [[], []]
    before = runtime.store.revision(8)  # the request stored the task's anchors
    deadline = time.monotonic() + 180
    while client.get("/health?project=8").get_json()["embedding"].get("done", 0) < 2:
        assert time.monotonic() < deadline, "the videos were not embedded"
        time.sleep(0.2)
    time.sleep(0.2)
    assert runtime.store.revision(8) == before + 1  # one new version for the whole queue, not one per video


def test_embeddings_at_hand_are_answered_without_queueing(tmp_path, shared_dir):
    settings = Settings(model_dir=tmp_path / "model", cache_dir=tmp_path / "cache",
                        media_roots=(shared_dir / "data",), predict_budget_s=2.0)
    runtime = Runtime(settings)
    client = create_app(runtime).test_client()
    runtime.video_embeddings(runtime_media(runtime))  # embedded beforehand: the cache has it
    result = client.post("/predict", json={"tasks": [TASK], "project": "6.1", "label_config": VIDEO}).get_json()
    assert len(result["results"][0]["result"]) > 0
    assert client.get("/health?project=6").get_json()["embedding"] == {}  # nothing had to be queued


def runtime_media(runtime: Runtime):
    from mtclar_backend.ls_format import read_task
    from mtclar_backend.payload import Task

    return read_task(parse_label_config(VIDEO), Task.model_validate(TASK), runtime.config.max_frame)


def test_frame_tasks_past_the_budget_are_embedded_in_the_background(tmp_path, shared_dir, monkeypatch):
    import cv2

    folder = tmp_path / "media" / "frames"
    folder.mkdir(parents=True)
    capture = cv2.VideoCapture(str(shared_dir / "data" / "videos" / "single_face.mp4"))
    for index in range(40):
        ok, image = capture.read()
        assert ok
        cv2.imwrite(str(folder / f"{index:05d}.png"), image)
    from mtclar_backend.label_configs import FRAME

    settings = Settings(model_dir=tmp_path / "model", cache_dir=tmp_path / "fresh-cache",
                        media_roots=(tmp_path / "media",), predict_budget_s=0.01)
    client = create_app(Runtime(settings)).test_client()

    def task(frame, annotated=False):
        numbers = [{"id": f"n{k}", "from_name": k, "to_name": "frame", "type": "number", "value": {"number": x}}
                   for k, x in (("valence", 0.1 * (frame > 0)), ("arousal", 0.0))]
        return {"id": 2000 + frame, "data": {"image": f"/data/local-files/?d=frames/{frame:05d}.png",
                                             "video_id": "clip", "frame": frame},
                "annotations": [{"id": 900 + frame, "result": numbers}] if annotated else []}

    tasks = [task(0, True), task(39, True), *(task(f) for f in range(5, 35, 5))]
    body = {"tasks": tasks, "project": "9.1700000000", "label_config": FRAME}
    first = client.post("/predict", json=body).get_json()["results"]
    assert any(r["result"] == [] for r in first)  # the budget ran out: some images are still coming
    assert client.get("/health?project=9").get_json()["embedding"].get("queued", 0) > 0
    deadline = time.monotonic() + 120
    while not all(r["result"] for r in client.post("/predict", json=body).get_json()["results"]):
        assert time.monotonic() < deadline, "not every frame task got its prediction"  # every frame has a face
        time.sleep(0.5)

    # a restarted backend: every image is in the disk cache, none in memory. Past its budget the request reads
    # no cache entry itself (the background does); once they are held in memory, no request reads a file
    import threading

    from mtclar.model.embeddings import VideoEmbeddings

    loads: list[str] = []
    load = VideoEmbeddings.load.__func__
    monkeypatch.setattr(VideoEmbeddings, "load",
                        classmethod(lambda cls, path: loads.append(threading.current_thread().name) or load(cls, path)))
    client = create_app(Runtime(settings)).test_client()
    client.post("/predict", json=body)
    assert threading.main_thread().name not in loads
    deadline = time.monotonic() + 60
    while not all(r["result"] for r in client.post("/predict", json=body).get_json()["results"]):
        assert time.monotonic() < deadline, "the restarted backend did not answer from its cache"
        time.sleep(0.2)
    assert client.get("/metrics").get_json()["image_index"]["images"] == len(tasks)
    loads.clear()
    assert all(r["result"] for r in client.post("/predict", json=body).get_json()["results"])
    assert loads == []
