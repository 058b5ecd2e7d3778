"""The MT-CLAR backend connected to a real Label Studio 1.23.2: both labelling modes, the anchor -> prediction
loop, background training, a restart, and the editor in Chromium.

The backend runs as `mtclar serve` (gunicorn) in its own process, exactly as a lab would start it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from label_studio import LabelStudioClient, LabelStudioServer, free_port, tail
from label_studio_sdk.label_interface import LabelInterface

from mtclar_backend.importer import Importer, plan_items
from mtclar_backend.label_configs import FRAME, VIDEO
from mtclar_backend.ls_api import LabelStudioAPI
from mtclar_backend.ls_format import check_prediction, parse_label_config

REPO = Path(__file__).resolve().parents[2]
SHARED_VIDEOS = REPO.parent / "shared" / "data" / "videos"
N_FRAMES = 472


class Backend:
    """`mtclar serve` on a free port; restartable on the same model dir."""

    def __init__(self, server: LabelStudioServer, work: Path, env: dict[str, str] | None = None):
        self.server, self.work, self.extra_env = server, work, env or {}
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Backend:
        env = {**os.environ, "MODEL_DIR": str(self.work / "model"), "MTCLAR_CACHE_DIR": str(self.work / "cache"),
               "MTCLAR_MEDIA_ROOTS": str(self.server.document_root), "LABEL_STUDIO_URL": self.server.url,
               "LABEL_STUDIO_API_KEY": self.server.token,
               # accept any fine-tune, so that the test sees training change the served version every time
               "MTCLAR_FINETUNE_MIN_IMPROVEMENT": "-10", **self.extra_env}
        self.log = open(self.work / "backend.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([sys.executable, "-m", "mtclar.cli", "serve", "--host", "127.0.0.1",
                                         "--port", str(self.port)], env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"backend exited:\n{tail(self.work / 'backend.log')}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.3)
        raise RuntimeError(f"backend did not answer in 120 s:\n{tail(self.work / 'backend.log')}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.log.close()

    def metrics(self, project: int) -> dict:
        return httpx.get(f"{self.url}/metrics", params={"project": project}, timeout=10).json()

    def health(self, project: int) -> dict:
        return httpx.get(f"{self.url}/health", params={"project": project}, timeout=2).json()


@pytest.fixture(scope="module")
def backend(label_studio, tmp_path_factory):
    server, _ = label_studio
    backend = Backend(server, tmp_path_factory.mktemp("backend")).start()
    yield backend
    backend.stop()


@pytest.fixture(scope="module")
def api(label_studio) -> LabelStudioAPI:
    server, _ = label_studio
    return LabelStudioAPI(server.url, server.token)


def segment(rid: str, start: int, end: int, v: float, a: float) -> list[dict[str, Any]]:
    span = {"ranges": [{"start": start, "end": end}]}
    return [{"id": rid, "from_name": "segment", "to_name": "video", "type": "timelinelabels",
             "value": {**span, "timelinelabels": ["VA"]}},
            {"id": rid, "from_name": "valence", "to_name": "video", "type": "number", "value": {**span, "number": v}},
            {"id": rid, "from_name": "arousal", "to_name": "video", "type": "number", "value": {**span, "number": a}}]


def predictions_of(client: LabelStudioClient, project: int) -> dict[int, list[dict]]:
    return {task["id"]: task.get("predictions") or [] for task in client.list_tasks(project)}


def wait_for(condition, timeout: float, what: str, step: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def valence_curve(prediction: dict) -> np.ndarray:
    curve = np.full(N_FRAMES + 1, np.nan)
    for item in prediction["result"]:
        if item["from_name"] == "valence":
            for span in item["value"]["ranges"]:
                curve[span["start"]:span["end"] + 1] = item["value"]["number"]
    return curve[1:]


@pytest.fixture(scope="module")
def video_project(label_studio, backend, api) -> dict[str, Any]:
    """WolfgangLanger_Pexels.mp4 in video mode, served from Label Studio's local-files root, backend connected."""
    server, client = label_studio
    folder = server.document_root / "mtclar-videos"
    folder.mkdir(exist_ok=True)
    video = Path(shutil.copy2(SHARED_VIDEOS / "WolfgangLanger_Pexels.mp4", folder))
    project = client.create_project("mtclar video mode", VIDEO)["id"]
    importer = Importer(api, project, "video")
    items = plan_items([video], "video")
    (task,) = importer.create_tasks(items, importer.urls_local(items, server.document_root))
    ml = client.connect_ml_backend(project, backend.url)
    return {"project": project, "task": task, "ml": ml}


def test_video_mode_loop(label_studio, backend, video_project):
    server, client = label_studio
    project, task, ml = video_project["project"], video_project["task"], video_project["ml"]
    assert client.get_ml(ml)["state"] == "CO"

    # a few anchors, annotated through the API (Label Studio sends ANNOTATION_CREATED to the backend)
    anchors = segment("a", 1, 4, -0.4, -0.2) + segment("b", 200, 203, 0.2, 0.3) + segment("c", 400, 403, 0.7, 0.5)
    annotation = client.create_annotation(task, anchors)
    version = wait_for(lambda: backend.metrics(project)["anchor_revision"] >= 1 and
                       backend.metrics(project)["model_version"], 30, "the annotation webhook")
    assert client.get_ml(ml)["model_version"] == version  # Label Studio re-reads it through /setup

    started = time.monotonic()
    client.retrieve_predictions(project)
    cold = time.monotonic() - started
    predictions = predictions_of(client, project)[task]
    assert len(predictions) == 1, predictions
    prediction = predictions[0]
    assert prediction["model_version"] == version
    setup = parse_label_config(VIDEO)
    core = {"result": [{k: v for k, v in r.items() if k in ("id", "from_name", "to_name", "type", "value")}
                       for r in prediction["result"]], "score": prediction["score"]}
    assert check_prediction(setup, core, n_frames=N_FRAMES) == []
    assert LabelInterface(VIDEO).validate_prediction(core)
    assert 0 < prediction["score"] <= 1
    curve = valence_curve(prediction)
    assert np.isfinite(curve).all(), "every frame of this clip has a face, so every frame is covered"
    assert (curve[0:4] == -0.4).all() and (curve[199:203] == 0.2).all() and (curve[399:403] == 0.7).all()
    assert abs(curve[4] - -0.4) < 0.3 and abs(curve[403] - 0.7) < 0.3  # next to an anchor: close to it
    print(f"\n[e2e] retrieve predictions for the 472-frame video (cold): {cold:.1f} s")

    # a changed annotation: new anchors -> new model version -> Label Studio asks again
    client.update_annotation(annotation["id"], anchors + segment("d", 300, 302, -0.5, 0.6))
    new_version = wait_for(lambda: (v := backend.metrics(project)["model_version"]) != version and v, 30,
                           "the update webhook")
    started = time.monotonic()
    client.retrieve_predictions(project)
    refresh = time.monotonic() - started
    latest = [p for p in predictions_of(client, project)[task] if p["model_version"] == new_version]
    assert len(latest) == 1 and (valence_curve(latest[0])[299:302] == -0.5).all()
    print(f"[e2e] new anchor -> refreshed predictions through Label Studio: {refresh:.2f} s")

    # training from the UI's button: runs in the background, then serves a new model version
    before = client.get_ml(ml)["model_version"]
    client.train(ml)
    state = wait_for(lambda: (s := backend.metrics(project)["training"])["status"] in ("done", "failed") and s, 600,
                     "the background fine-tune", step=2)
    assert state["status"] == "done", state
    assert state["kept_new"] and state["before"]["n"] == state["after"]["n"] > 0
    trained = client.get_ml(ml)["model_version"]
    assert trained != before and "-ft1" in trained
    client.retrieve_predictions(project)
    assert any(p["model_version"] == trained for p in predictions_of(client, project)[task])

    # Label Studio lists the model versions through the backend's /versions, and the Train webhook answered
    # with the job it now follows through /job_status
    listed = client._json("GET", f"/api/ml/{ml}/versions")["versions"]
    assert listed[0] == before.split(".r")[0] and trained.split(".r")[0] in listed, listed
    status = httpx.post(f"{backend.url}/job_status", json={"job": state["job"]}, timeout=10).json()
    assert status["job_status"] == "finished" and status["kept_new"], status

    # restart: the anchors (and the trained model) come back from the backend's own store
    revision = backend.metrics(project)["anchor_revision"]
    backend.stop()
    backend.start()
    after = backend.metrics(project)
    assert after["anchor_revision"] == revision and after["model_version"] == trained
    client.dm_action(project, "delete_tasks_predictions")
    client.retrieve_predictions(project)
    (again,) = predictions_of(client, project)[task]
    assert again["model_version"] == trained and (valence_curve(again)[299:302] == -0.5).all()


def test_editor_shows_predicted_segments_and_submits(label_studio, backend, video_project, chromium, tmp_path):
    server, client = label_studio
    project, task = video_project["project"], video_project["task"]
    if not predictions_of(client, project)[task]:
        client.create_annotation(task, segment("a", 1, 4, -0.4, -0.2) + segment("c", 400, 403, 0.7, 0.5))
        client.retrieve_predictions(project)
    # the editor shows the newest prediction; delete the human annotation so it opens on the prediction
    for annotation in client.list_annotations(task):
        client.delete_annotation(annotation["id"])
    prediction = predictions_of(client, project)[task][-1]
    regions = len({r["id"] for r in prediction["result"]})
    first = next(r for r in prediction["result"] if r["from_name"] == "valence")
    screenshot = tmp_path / "editor.png"
    report = chromium(server, project, task, screenshot, submit=True, select_region=True)
    assert report["ok"], report.get("error")
    assert report["editor_loaded"] and report["media"]["videos"]
    assert report["regions"] >= min(regions, 10)  # the region list renders only the rows in view
    assert set(report["controls"]) == {"valence", "arousal"}
    assert float(report["controls"]["valence"]) == pytest.approx(first["value"]["number"], abs=0.011)
    assert report["submitted"]["status"] in (200, 201) and report["submitted"]["result_count"] >= 3 * regions
    assert not report["fatal_errors"]
    if os.environ.get("MTCLAR_SCREENSHOT"):
        shutil.copy(screenshot, os.environ["MTCLAR_SCREENSHOT"])


def test_frame_mode_with_uploaded_frames(label_studio, backend, api, tmp_path):
    """Frames of single_face.mp4 uploaded to Label Studio: the backend fetches them with the API key."""
    server, client = label_studio
    frames = tmp_path / "single_face"
    frames.mkdir()
    capture = cv2.VideoCapture(str(SHARED_VIDEOS / "single_face.mp4"))
    index = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        cv2.imwrite(str(frames / f"{index:05d}.jpg"), image)
        index += 1
    project = client.create_project("mtclar frame mode", FRAME)["id"]
    importer = Importer(api, project, "image")
    items = plan_items([frames], "frame")
    task_ids = importer.create_tasks(items, importer.urls_upload(items))
    assert len(task_ids) == index == 72
    by_frame = {item.data["frame"]: task_id for item, task_id in zip(items, task_ids, strict=True)}
    client.connect_ml_backend(project, backend.url)
    for frame, (v, a) in {0: (0.0, 0.0), 30: (0.65, 0.4), 60: (0.55, 0.3)}.items():
        result = [{"id": f"{k}{frame}", "from_name": k, "to_name": "frame", "type": "number", "value": {"number": x}}
                  for k, x in (("valence", v), ("arousal", a))]
        client.create_annotation(by_frame[frame], result)
    wait_for(lambda: backend.metrics(project)["anchor_revision"] >= 3, 30, "three annotation webhooks")
    client.retrieve_predictions(project)
    predictions = predictions_of(client, project)
    assert len(predictions) == 72 and all(len(p) == 1 for p in predictions.values())
    setup = parse_label_config(FRAME)
    values = {}
    for frame, task_id in by_frame.items():
        prediction = predictions[task_id][0]
        assert check_prediction(setup, {"result": prediction["result"], "score": prediction["score"]}) == []
        values[frame] = {r["from_name"]: r["value"]["number"] for r in prediction["result"]}
    assert values[30] == {"valence": 0.65, "arousal": 0.4}  # an anchor predicts itself
    assert values[3]["valence"] < values[27]["valence"]  # neutral start, smiling later


def test_import_command(label_studio, backend, capsys):
    """`mtclar import` in one line: a project, video tasks served in place, the backend connected."""
    from mtclar.cli import main

    server, client = label_studio
    folder = server.document_root / "import-cli"
    folder.mkdir(exist_ok=True)
    for name in ("single_face.mp4", "no_face.mp4"):
        shutil.copy2(SHARED_VIDEOS / name, folder)
    code = main(["import", "--ls-url", server.url, "--api-key", server.token, "--create", "cli import",
                 "--mode", "video", str(folder), "--document-root", str(server.document_root),
                 "--ml-url", backend.url])
    assert code == 0
    out = capsys.readouterr().out
    project = int(out.split("created project ")[1].split()[0])
    tasks = client.list_tasks(project)
    assert sorted(t["data"]["video"] for t in tasks) == ["/data/local-files/?d=import-cli/no_face.mp4",
                                                         "/data/local-files/?d=import-cli/single_face.mp4"]
    assert {t["data"]["frames"] for t in tasks} == {72, 95}
    assert client.list_ml(project)[0]["url"] == backend.url
    outside = main(["import", "--ls-url", server.url, "--api-key", server.token, "--project", str(project),
                    str(SHARED_VIDEOS / "single_face.mp4"), "--document-root", str(server.document_root)])
    assert outside == 2 and "not under the document root" in capsys.readouterr().err


def test_predictions_within_the_budget_reach_every_task(label_studio, api, tmp_path_factory):
    """A backend with a tiny /predict budget: Label Studio never waits for an embedding, and once the videos are
    embedded (queued by the /setup backfill) a new model version makes every task get its prediction."""
    server, client = label_studio
    backend = Backend(server, tmp_path_factory.mktemp("budget-backend"), {"MTCLAR_PREDICT_BUDGET_S": "0.05"}).start()
    try:
        folder = server.document_root / "budget-videos"
        folder.mkdir(exist_ok=True)
        videos = [Path(shutil.copy2(SHARED_VIDEOS / name, folder)) for name in ("WolfgangLanger_Pexels.mp4",
                                                                                "single_face.mp4")]
        project = client.create_project("mtclar predict budget", VIDEO)["id"]
        importer = Importer(api, project, "video")
        items = plan_items(videos, "video")
        tasks = importer.create_tasks(items, importer.urls_local(items, server.document_root))
        for task in tasks:  # labelled before the backend is connected: it learns of them from the backfill
            client.create_annotation(task, segment("a", 1, 3, -0.3, 0.1) + segment("b", 60, 62, 0.4, 0.3))
        client.connect_ml_backend(project, backend.url)

        started = time.monotonic()
        client.retrieve_predictions(project)
        first = time.monotonic() - started
        empty = sum(not p["result"] for ps in predictions_of(client, project).values() for p in ps)
        print(f"\n[e2e] budget 0.05 s: first Retrieve predictions {first:.1f} s, {empty} of {len(tasks)} tasks "
              "still embedding")
        assert first < 30
        wait_for(lambda: backend.health(project)["embedding"].get("done", 0) >= len(tasks), 300,
                 "the background embeddings", step=0.5)
        version = backend.metrics(project)["model_version"]
        client.retrieve_predictions(project)
        predictions = predictions_of(client, project)
        for task in tasks:
            assert any(p["model_version"] == version and p["result"] for p in predictions[task]), predictions[task]
    finally:
        backend.stop()
