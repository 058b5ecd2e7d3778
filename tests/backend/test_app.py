"""The HTTP protocol through Flask's test client, with the real model on real clips."""

from __future__ import annotations

import base64
from functools import partial

import cv2
import numpy as np
import pytest
from label_studio_sdk.label_interface import LabelInterface

from mtclar.settings import Settings
from mtclar_backend.app import create_app
from mtclar_backend.label_configs import FRAME, VIDEO
from mtclar_backend.ls_format import (
    check_prediction,
    parse_label_config,
    timeline_region,  # noqa: E402
)
from mtclar_backend.runtime import Runtime

VIDEO_CONFIG, FRAME_CONFIG = VIDEO, FRAME
WOLFGANG = {"id": 7, "data": {"video": "/data/local-files/?d=videos/WolfgangLanger_Pexels.mp4", "fps": 23.976}}


region = partial(timeline_region, parse_label_config(VIDEO))  # (id, start, end, valence, arousal)


ANNOTATION = {"id": 100, "result": region("a", 1, 5, -0.4, -0.2) + region("b", 400, 402, 0.7, 0.5)}


@pytest.fixture(scope="module")
def embedding_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("emb")


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory, videos):
    """Frames 0..71 of single_face.mp4 as PNGs, plus one grey image with no face (frame 72)."""
    root = tmp_path_factory.mktemp("media")
    folder = root / "frames" / "single_face"
    folder.mkdir(parents=True)
    capture = cv2.VideoCapture(str(videos / "single_face.mp4"))
    index = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        cv2.imwrite(str(folder / f"{index:05d}.png"), image)
        index += 1
    cv2.imwrite(str(folder / f"{index:05d}.png"), np.full((360, 640, 3), 128, np.uint8))
    return root


def make_client(tmp_path, embedding_cache, shared_dir, frames_dir=None, **overrides):
    roots = (shared_dir / "data",) + ((frames_dir,) if frames_dir is not None else ())
    config = Settings(model_dir=tmp_path / "model", cache_dir=embedding_cache.parent / "shared-cache",
                           media_roots=roots, **overrides)
    runtime = Runtime(config)
    return create_app(runtime).test_client(), runtime


@pytest.fixture
def client(tmp_path, embedding_cache, shared_dir):
    return make_client(tmp_path, embedding_cache, shared_dir)[0]


def predict(client, tasks, config=VIDEO_CONFIG, project="1.1700000000", **extra):
    response = client.post("/predict", json={"tasks": tasks, "project": project, "label_config": config, **extra})
    return response


def test_health_and_root(client):
    for path in ("/", "/health"):
        body = client.get(path).get_json()
        assert body["status"] == "UP" and body["model_class"] == "MTCLARModel"
        # what runs where, as the loaded model says (the test machine has no GPU)
        assert body["device"] == {"encoder": "cpu", "precision": "fp32", "detector": ["CPUExecutionProvider"]}
    assert client.get("/metrics").get_json()["device"] == body["device"]


def test_setup_returns_a_version_and_rejects_bad_configs(client):
    response = client.post("/setup", json={"project": "3.1700000000", "schema": VIDEO_CONFIG})
    assert response.status_code == 200
    assert response.get_json()["model_version"].startswith("mtclar-faceapi-floor-4.r")
    bad = client.post("/setup", json={"project": "3.1", "schema": VIDEO_CONFIG.replace("arousal", "energy")})
    assert bad.status_code == 400 and "arousal" in bad.get_json()["message"]
    missing = client.post("/setup", json={"project": "4.1"})
    assert missing.status_code == 400 and "config" in missing.get_json()["message"]
    not_json = client.post("/setup", data="hello", content_type="text/plain")
    assert not_json.status_code == 400 and "JSON" in not_json.get_json()["message"]


@pytest.mark.slow
def test_video_predictions_follow_the_anchors_of_the_task(client):
    task = {**WOLFGANG, "annotations": [ANNOTATION]}
    response = predict(client, [task])
    assert response.status_code == 200, response.get_json()
    results = response.get_json()["results"]
    assert len(results) == 1
    prediction = results[0]
    setup = parse_label_config(VIDEO_CONFIG)
    assert check_prediction(setup, prediction, n_frames=472) == []
    assert LabelInterface(VIDEO_CONFIG).validate_prediction(prediction)
    assert 0 < prediction["score"] <= 1 and prediction["model_version"].endswith(".r1")
    numbers = {(r["id"], r["from_name"]): r["value"] for r in prediction["result"] if r["type"] == "number"}
    # the human segments are kept exactly
    assert numbers[("human-0", "valence")] == {"ranges": [{"start": 1, "end": 5}], "number": -0.4}
    assert numbers[("human-1", "arousal")] == {"ranges": [{"start": 400, "end": 402}], "number": 0.5}
    # predicted segments cover every other frame (a face on every frame of this clip), and no more
    covered = np.zeros(473, dtype=int)
    for (_, name), value in numbers.items():
        if name == "valence":
            for span in value["ranges"]:
                covered[span["start"]:span["end"] + 1] += 1
    assert (covered[1:] == 1).all()
    # next to an anchor the prediction is close to it
    first = next(v for (rid, name), v in numbers.items() if name == "valence" and v["ranges"][0]["start"] == 6)
    assert abs(first["number"] - -0.4) < 0.3
    far = [v for (rid, name), v in numbers.items() if name == "valence" and v["ranges"][0]["start"] > 403]
    assert all(abs(v["number"] - 0.7) < 0.35 for v in far)


@pytest.mark.slow
def test_webhook_anchors_drive_predictions_and_the_version(client):
    assert predict(client, [WOLFGANG]).get_json()["results"][0]["result"] == []  # no anchors: nothing to say
    hook = {"action": "ANNOTATION_CREATED", "project": {"id": 1, "label_config": VIDEO_CONFIG}, "task": WOLFGANG,
            "annotation": ANNOTATION}
    created = client.post("/webhook", json=hook)
    assert created.status_code == 201 and created.get_json()["anchors_changed"]
    v1 = created.get_json()["model_version"]
    prediction = predict(client, [WOLFGANG]).get_json()["results"][0]
    assert prediction["model_version"] == v1 and len(prediction["result"]) > 6

    updated = {**hook, "action": "ANNOTATION_UPDATED",
               "annotation": {"id": 100, "result": region("a", 1, 5, 0.9, 0.9)}}
    v2 = client.post("/webhook", json=updated).get_json()["model_version"]
    assert v2 != v1
    values = [r["value"]["number"] for r in predict(client, [WOLFGANG]).get_json()["results"][0]["result"]
              if r["from_name"] == "valence"]
    assert values[0] == 0.9

    deleted = client.post("/webhook", json={"action": "ANNOTATION_DELETED", "project": {"id": 1},
                                            "annotation": {"id": 100}})
    assert deleted.get_json()["removed_annotations"] == [100]
    assert deleted.get_json()["model_version"] not in (v1, v2)
    assert predict(client, [WOLFGANG]).get_json()["results"][0]["result"] == []


def test_unknown_webhook_events_are_ignored(client):
    response = client.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 1}})
    assert response.status_code == 200 and response.get_json()["status"] == "ignored"
    assert client.post("/webhook", json={"project": {"id": 1}}).status_code == 400


@pytest.mark.slow
def test_interactive_context_adds_anchors(client):
    context = {"result": region("x", 200, 200, 0.5, 0.5)}
    prediction = predict(client, [WOLFGANG], params={"context": context}).get_json()["results"][0]
    assert any(r["id"] == "human-0" and r["value"]["ranges"] == [{"start": 200, "end": 200}]
               for r in prediction["result"])


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/data/local-files/?d=../../../etc/passwd", "escapes the media roots"),
        ("http://example.com/clip.mp4", "not on Label Studio's origin"),
        ("/data/upload/3/clip.mp4", "LABEL_STUDIO_URL"),
        ("/data/local-files/?d=videos/missing.mp4", "LABEL_STUDIO_URL"),
        ("s3://bucket/clip.mp4", "not supported"),
    ],
)
def test_media_errors_name_the_task(client, url, message):
    task = {"id": 9, "data": {"video": url}, "annotations": [ANNOTATION]}
    response = predict(client, [task])
    assert response.status_code == 422
    assert "task 9" in response.get_json()["message"] and message in response.get_json()["message"]


def test_a_corrupt_video_is_a_media_error(client, tmp_path, embedding_cache, shared_dir):
    media = tmp_path / "media"
    media.mkdir()
    (media / "broken.mp4").write_bytes(b"\x00" * 1000)
    client, _ = make_client(tmp_path, embedding_cache, shared_dir, frames_dir=media)
    task = {"id": 4, "data": {"video": "/data/local-files/?d=broken.mp4"}, "annotations": [ANNOTATION]}
    response = predict(client, [task])
    assert response.status_code == 422 and "broken.mp4" in response.get_json()["message"]


@pytest.mark.slow
def test_frame_mode_groups_tasks_by_video(tmp_path, embedding_cache, shared_dir, frames_dir):
    client, _ = make_client(tmp_path, embedding_cache, shared_dir, frames_dir=frames_dir)

    def task(frame):
        return {"id": 1000 + frame, "data": {"image": f"/data/local-files/?d=frames/single_face/{frame:05d}.png",
                                             "video_id": "single_face", "frame": frame}}

    def annotate(frame, v, a):
        result = [{"id": f"n{k}", "from_name": k, "to_name": "frame", "type": "number", "value": {"number": x}}
                  for k, x in (("valence", v), ("arousal", a))]
        hook = {"action": "ANNOTATION_CREATED", "project": {"id": 5, "label_config": FRAME_CONFIG},
                "task": task(frame), "annotation": {"id": 500 + frame, "result": result}}
        assert client.post("/webhook", json=hook).status_code == 201

    annotate(0, 0.0, 0.0)
    annotate(30, 0.65, 0.4)
    queries = [task(f) for f in (0, 3, 27, 60, 72)]
    results = predict(client, queries, config=FRAME_CONFIG, project="5.1").get_json()["results"]
    assert len(results) == 5
    setup = parse_label_config(FRAME_CONFIG)
    for r in results[:4]:
        assert check_prediction(setup, r) == [] and LabelInterface(FRAME_CONFIG).validate_prediction(r)
    values = [{x["from_name"]: x["value"]["number"] for x in r["result"]} for r in results[:4]]
    assert values[0] == {"valence": 0.0, "arousal": 0.0}  # the anchor itself
    assert values[1]["valence"] < values[2]["valence"]  # frame 3 neutral, frame 27 smiling
    assert results[4]["result"] == []  # the grey frame has no face: no guess


def test_basic_auth(tmp_path, embedding_cache, shared_dir):
    client, _ = make_client(tmp_path, embedding_cache, shared_dir, basic_auth_user="lab", basic_auth_pass="s3cret")
    assert client.get("/health").status_code == 200  # liveness is public (Docker's HEALTHCHECK)
    assert client.get("/metrics").status_code == 401
    assert client.get("/health?project=1").status_code == 401  # anything about a project is not
    assert client.post("/predict", json={"tasks": []}).status_code == 401
    token = base64.b64encode(b"lab:s3cret").decode()
    assert client.get("/metrics", headers={"Authorization": f"Basic {token}"}).status_code == 200
    wrong = base64.b64encode(b"lab:nope").decode()
    assert client.get("/metrics", headers={"Authorization": f"Basic {wrong}"}).status_code == 401


@pytest.mark.slow
def test_anchors_and_version_survive_a_restart(tmp_path, embedding_cache, shared_dir):
    client, _ = make_client(tmp_path, embedding_cache, shared_dir)
    hook = {"action": "ANNOTATION_CREATED", "project": {"id": 2, "label_config": VIDEO_CONFIG}, "task": WOLFGANG,
            "annotation": ANNOTATION}
    version = client.post("/webhook", json=hook).get_json()["model_version"]
    restarted, _ = make_client(tmp_path, embedding_cache, shared_dir)
    setup = restarted.post("/setup", json={"project": "2.1", "schema": VIDEO_CONFIG}).get_json()
    assert setup["model_version"] == version
    prediction = predict(restarted, [WOLFGANG], project="2.1").get_json()["results"][0]
    assert prediction["model_version"] == version and prediction["result"]


def test_metrics(client):
    body = client.get("/metrics?project=1").get_json()
    assert body["training"] == {"status": "idle"} and body["store"]["backend"] == "sqlite"
    assert "predict_latency" in body and body["model_version"].startswith("mtclar-")
