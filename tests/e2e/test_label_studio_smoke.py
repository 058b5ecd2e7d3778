"""Smoke test of the e2e harness: a real Label Studio 1.23.2, its REST API and its editor in Chromium.

Nothing of the MT-CLAR backend is used here. The ML-backend test talks to a small recording stub so
that the calls Label Studio makes to a backend (and their payloads) are pinned down for the real one.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from label_studio import (
    FRAME_LABEL_CONFIG,
    VIDEO_LABEL_CONFIG,
    LabelStudioClient,
    LabelStudioServer,
    e2e_required,
)

SHARED_DATA = Path(os.environ.get("MTCLAR_SHARED_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")
VIDEO = SHARED_DATA / "videos" / "WolfgangLanger_Pexels.mp4"
VIDEO_FRAMES = 472  # at 23.976 fps, as the editor counts them
FRAME = SHARED_DATA / "afewva-sample" / "001" / "00000.png"


def segment(region_id: str, start: int, end: int, valence: float, arousal: float) -> list[dict[str, Any]]:
    """One video-mode segment: a timelinelabels region and its two numbers, sharing ``region_id``."""
    ranges = [{"start": start, "end": end}]
    return [
        {"id": region_id, "from_name": "segment", "to_name": "video", "type": "timelinelabels",
         "value": {"ranges": ranges, "timelinelabels": ["VA"]}},
        {"id": region_id, "from_name": "valence", "to_name": "video", "type": "number",
         "value": {"ranges": ranges, "number": valence}},
        {"id": region_id, "from_name": "arousal", "to_name": "video", "type": "number",
         "value": {"ranges": ranges, "number": arousal}},
    ]  # fmt: skip


def core(result: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fields we send, without the ones Label Studio adds (``origin``...)."""
    keys = ("id", "from_name", "to_name", "type", "value")
    return [{k: item[k] for k in keys if k in item} for item in result]


def local_file_url(server: LabelStudioServer, path: Path) -> str:
    return f"/data/local-files/?d={path.relative_to(server.document_root).as_posix()}"


@pytest.fixture(scope="module")
def media(label_studio: tuple[LabelStudioServer, LabelStudioClient]) -> dict[str, Path]:
    """Copies of the shared clip and frame inside the document root (never committed to the repo)."""
    server, _ = label_studio
    if not VIDEO.exists() or not FRAME.exists():
        reason = f"shared test media missing: {VIDEO} / {FRAME} (set MTCLAR_SHARED_DATA)"
        if e2e_required():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    videos = server.document_root / "videos"
    frames = server.document_root / "frames" / "001"
    videos.mkdir(parents=True, exist_ok=True)
    frames.mkdir(parents=True, exist_ok=True)
    return {
        "videos": videos,
        "video": Path(shutil.copy2(VIDEO, videos / VIDEO.name)),
        "frames": frames,
        "frame": Path(shutil.copy2(FRAME, frames / FRAME.name)),
    }


@pytest.fixture(scope="module")
def video_project(label_studio, media) -> dict[str, Any]:
    """A video-mode project with two tasks on the clip: one annotated through the API, one predicted."""
    server, client = label_studio
    project = client.create_project("smoke video mode", VIDEO_LABEL_CONFIG)
    storage = client.add_local_storage(project["id"], media["videos"])
    data = {"video": local_file_url(server, media["video"]), "fps": 23.976}
    annotated, predicted = client.import_tasks(project["id"], [data, {"data": dict(data)}])
    annotation = client.create_annotation(annotated, segment("s0", 1, 10, 0.12, -0.3))
    prediction = client.create_prediction(predicted, segment("p0", 20, 40, 0.34, -0.21), 0.5, "smoke-v1")
    return {
        "project": project, "storage": storage, "data": data, "annotated": annotated,
        "predicted": predicted, "annotation": annotation, "prediction": prediction,
    }  # fmt: skip


def test_server_answers_with_the_fixed_token(label_studio) -> None:
    server, client = label_studio
    me = client.request("GET", "/api/current-user/whoami").json()
    assert me["email"] == server.username
    version = client.request("GET", "/api/version").json()
    assert version["release"] == "1.23.2"
    assert server.document_root.is_dir() and server.log_path.exists()


def test_video_mode_project_storage_tasks_and_annotation(label_studio, media, video_project) -> None:
    server, client = label_studio
    project = video_project["project"]
    assert set(project["parsed_label_config"]) == {"segment", "valence", "arousal"}
    assert video_project["storage"]["path"] == str(media["videos"])

    # Local-files serving works through the storage, with the token, and honours Range requests.
    clip = client.request("GET", video_project["data"]["video"], headers={"Range": "bytes=0-1023"})
    assert clip.status_code == 206 and clip.headers["Content-Type"] == "video/mp4"
    assert clip.headers["Content-Range"] == f"bytes 0-1023/{media['video'].stat().st_size}"

    tasks = {task["id"]: task for task in client.list_tasks(project["id"])}
    assert set(tasks) == {video_project["annotated"], video_project["predicted"]}
    assert all(task["data"] == video_project["data"] for task in tasks.values())

    stored = tasks[video_project["annotated"]]["annotations"]
    assert len(stored) == 1 and core(stored[0]["result"]) == segment("s0", 1, 10, 0.12, -0.3)
    predictions = tasks[video_project["predicted"]]["predictions"]
    assert [p["model_version"] for p in predictions] == ["smoke-v1"]
    assert client.list_predictions(task=video_project["predicted"])[0]["score"] == 0.5

    # Update and read back, then restore what the browser test expects.
    annotation_id = video_project["annotation"]["id"]
    client.update_annotation(annotation_id, segment("s0", 1, 10, 0.5, 0.5))
    assert core(client.get_annotation(annotation_id)["result"]) == segment("s0", 1, 10, 0.5, 0.5)
    client.update_annotation(annotation_id, segment("s0", 1, 10, 0.12, -0.3))


def test_frame_mode_project(label_studio, media) -> None:
    server, client = label_studio
    project = client.create_project("smoke frame mode", FRAME_LABEL_CONFIG)
    assert set(project["parsed_label_config"]) == {"valence", "arousal"}
    client.add_local_storage(project["id"], media["frames"].parent)
    data = {"image": local_file_url(server, media["frame"]), "video_id": "001", "frame": 0}
    (task_id,) = client.import_tasks(project["id"], [data])
    result = [
        {"from_name": "valence", "to_name": "frame", "type": "number", "value": {"number": 0.2}},
        {"from_name": "arousal", "to_name": "frame", "type": "number", "value": {"number": -0.4}},
    ]
    annotation = client.create_annotation(task_id, result)
    (task,) = client.list_tasks(project["id"])
    assert task["data"] == data
    assert core(task["annotations"][0]["result"]) == result
    client.delete_annotation(annotation["id"])
    assert client.list_annotations(task_id) == []


def _assert_editor_loaded(report: dict[str, Any], media_kind: str) -> None:
    summary = json.dumps({k: v for k, v in report.items() if k not in ("console_errors", "stderr")})
    if report.get("warnings"):
        print(f"\n[e2e] browser warnings: {report['warnings']}")
    assert report["ok"], f"browser step {report.get('failed_step')} failed: {report.get('error')}\n{summary}"
    assert report["editor_loaded"], summary
    assert report["media"]["kind"] == media_kind, summary
    assert report["fatal_errors"] == [], summary
    assert report["http_errors"] == [], summary


def test_editor_shows_the_annotated_video_task(label_studio, video_project, chromium, tmp_path) -> None:
    server, _ = label_studio
    screenshot = tmp_path / "video-task.png"
    report = chromium(
        server, video_project["project"]["id"], video_project["annotated"], screenshot,
        select_region=True, expect_regions=1, expect_controls={"valence": "0.12", "arousal": "-0.3"},
    )  # fmt: skip
    print(f"\n[e2e] editor screenshot: {screenshot}\n[e2e] browser report: {json.dumps(report)[:1500]}")
    _assert_editor_loaded(report, "video")
    (video,) = report["media"]["videos"]
    assert video["ready_state"] >= 2 and video["error"] is None and video["duration"] > 19
    assert video["src"].endswith(video_project["data"]["video"])
    assert report["frame_count"] == VIDEO_FRAMES
    assert report["region_labels"] == ["VA"]
    assert report["controls"] == {"valence": "0.12", "arousal": "-0.3"}
    assert report["submit_button"] == "Update"
    assert screenshot.stat().st_size > 10_000


def test_editor_submits_a_prediction_as_an_annotation(label_studio, video_project, chromium, tmp_path) -> None:
    server, client = label_studio
    task_id = video_project["predicted"]
    report = chromium(
        server, video_project["project"]["id"], task_id, tmp_path / "predicted-task.png",
        select_region=True, expect_regions=1, submit=True, expect_controls={"valence": "0.34", "arousal": "-0.21"},
    )  # fmt: skip
    _assert_editor_loaded(report, "video")
    assert report["controls"] == {"valence": "0.34", "arousal": "-0.21"}
    assert report["submit_button"] == "Submit"
    assert report["submitted"]["status"] == 201 and report["submitted"]["result_count"] == 3, report["submitted"]
    (annotation,) = client.list_annotations(task_id)
    assert annotation["id"] == report["submitted"]["annotation_id"]
    assert core(annotation["result"]) == segment("p0", 20, 40, 0.34, -0.21)
    # The editor marks results that came from a prediction; the backend sees this in webhooks too.
    assert {item.get("origin") for item in annotation["result"]} == {"prediction"}
    assert annotation["parent_prediction"] == video_project["prediction"]["id"]


def test_editor_shows_a_frame_mode_task(label_studio, media, chromium, tmp_path) -> None:
    server, client = label_studio
    project = client.create_project("smoke frame editor", FRAME_LABEL_CONFIG)
    client.add_local_storage(project["id"], media["frames"].parent)
    (task_id,) = client.import_tasks(project["id"], [{"image": local_file_url(server, media["frame"])}])
    client.create_prediction(
        task_id,
        [{"from_name": "valence", "to_name": "frame", "type": "number", "value": {"number": 0.2}},
         {"from_name": "arousal", "to_name": "frame", "type": "number", "value": {"number": -0.4}}],
        model_version="smoke-v1",
    )  # fmt: skip
    report = chromium(
        server,
        project["id"],
        task_id,
        tmp_path / "frame-task.png",
        expect_controls={"valence": "0.2", "arousal": "-0.4"},
    )
    _assert_editor_loaded(report, "image")
    (image,) = report["media"]["images"]
    assert image["complete"] and image["width"] > 0
    assert report["controls"] == {"valence": "0.2", "arousal": "-0.4"}


class RecordingBackend:
    """A stand-in ML backend on 127.0.0.1 that records every request Label Studio makes to it."""

    def __init__(self, model_version: str = "stub-v1") -> None:
        self.model_version = model_version
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self, body: Any) -> None:
                with backend._lock:
                    backend.requests.append(
                        {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
                    )

            def do_GET(self) -> None:  # noqa: N802
                self._record(None)
                self._answer({"status": "UP", "model_class": "RecordingBackend"})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                self._record(body)
                if self.path.startswith("/setup"):
                    self._answer({"model_version": backend.model_version})
                elif self.path.startswith("/predict"):
                    results = [
                        {"result": segment("m0", 1, 5, 0.25, -0.1), "score": 0.7,
                         "model_version": backend.model_version}
                        for _ in body["tasks"]
                    ]  # fmt: skip
                    self._answer({"results": results})
                else:
                    self._answer({"status": "ok"})

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def calls(self, path: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["path"].split("?")[0] == path]

    def wait_for_webhook(self, action: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for call in self.calls("/webhook"):
                if call["body"].get("action") == action:
                    return call["body"]
            time.sleep(0.1)
        seen = [c["body"].get("action") for c in self.calls("/webhook")]
        raise AssertionError(f"no {action} webhook within {timeout} s; got {seen}")

    def __enter__(self) -> RecordingBackend:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def recording_backend() -> Iterator[RecordingBackend]:
    with RecordingBackend() as backend:
        yield backend


def test_ml_backend_calls(label_studio, media, recording_backend) -> None:
    """Pin down what Label Studio 1.23.2 sends to an ML backend, and the client's ML calls."""
    server, client = label_studio
    backend = recording_backend
    project = client.create_project("smoke ml backend", VIDEO_LABEL_CONFIG)
    client.add_local_storage(project["id"], media["videos"])
    data = {"video": local_file_url(server, media["video"]), "fps": 23.976}
    task_ids = client.import_tasks(project["id"], [data, data])

    ml_id = client.connect_ml_backend(project["id"], backend.url)
    setup = backend.calls("/setup")[-1]["body"]
    assert backend.calls("/health"), "Label Studio checks /health before connecting"
    # "project" is "<id>.<timestamp>", a string; the label config comes as "schema".
    assert setup["project"].split(".")[0] == str(project["id"])
    assert setup["schema"] == VIDEO_LABEL_CONFIG
    assert setup["access_token"] == server.token
    assert setup["hostname"] == f"http://localhost:{server.port}"
    ml = client.get_ml(ml_id)
    assert ml["readable_state"] == "Connected" and ml["model_version"] == backend.model_version
    assert [m["id"] for m in client.list_ml(project["id"])] == [ml_id]

    answer = client.retrieve_predictions(project["id"])
    assert answer["detail"] == "Retrieved 2 predictions"
    (predict,) = backend.calls("/predict")
    assert sorted(t["id"] for t in predict["body"]["tasks"]) == sorted(task_ids)
    assert predict["body"]["tasks"][0]["data"] == data
    assert predict["body"]["label_config"] == VIDEO_LABEL_CONFIG
    assert predict["body"]["params"]["context"] is None
    assert "Authorization" not in predict["headers"]  # no auth towards the backend unless configured
    predictions = client.list_predictions(project=project["id"])
    assert len(predictions) == 2 and {p["model_version"] for p in predictions} == {backend.model_version}
    assert core(client.list_predictions(task=task_ids[0])[0]["result"]) == segment("m0", 1, 5, 0.25, -0.1)

    # Tasks that already have a prediction of the current model_version are not sent again.
    client.retrieve_predictions(project["id"])
    assert len(backend.calls("/predict")) == 1

    annotation = client.create_annotation(task_ids[0], segment("s0", 1, 10, 0.12, -0.3))
    created = backend.wait_for_webhook("ANNOTATION_CREATED")
    assert created["annotation"]["id"] == annotation["id"] and created["task"]["id"] == task_ids[0]
    assert created["task"]["data"] == data and created["project"]["id"] == project["id"]
    client.update_annotation(annotation["id"], segment("s0", 1, 10, 0.2, -0.3))
    updated = backend.wait_for_webhook("ANNOTATION_UPDATED")
    assert updated["annotation"]["result"][1]["value"]["number"] == 0.2
    client.delete_annotation(annotation["id"])
    # Plural, and only the ids: the backend must remember which task/video an annotation belonged to.
    deleted = backend.wait_for_webhook("ANNOTATIONS_DELETED")
    assert deleted["annotations"] == [{"id": annotation["id"]}]

    assert client.train(ml_id) is None  # 200 with an empty body
    training = backend.wait_for_webhook("START_TRAINING")
    assert training["project"]["id"] == project["id"] and "annotation" not in training

    assert client.delete_predictions(project["id"])["detail"] == "Deleted 2 predictions"
    assert client.list_predictions(project=project["id"]) == []
