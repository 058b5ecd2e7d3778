"""The curve config in a real Label Studio 1.23.2 and Chromium: the predicted valence/arousal curve drawn under the
video and moving with it, "label me" suggestions on the timeline, and suggestions never becoming anchors."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from label_studio_sdk.label_interface import LabelInterface
from test_backend_e2e import SHARED_VIDEOS, Backend, predictions_of, segment, wait_for

from mtclar_backend.curve import placeholder_curve
from mtclar_backend.label_configs import VIDEO_CURVE
from mtclar_backend.ls_format import SUGGEST_LABEL, check_prediction, parse_label_config

N_FRAMES = 72  # single_face.mp4, 30 fps
SETUP = parse_label_config(VIDEO_CURVE)


def core(prediction: dict) -> dict:
    return {"result": [{k: v for k, v in r.items() if k in ("id", "from_name", "to_name", "type", "value")}
                       for r in prediction["result"]], "score": prediction["score"]}


def human_ranges(prediction: dict) -> list[tuple[int, int]]:
    """The labelled spans a prediction sends back (its ``human-*`` regions): the backend's anchors."""
    return sorted((s["start"], s["end"]) for r in prediction["result"]
                  if r["id"].startswith("human-") and r["type"] == "timelinelabels" for s in r["value"]["ranges"])


def latest(client, project: int, task: int, version: str) -> dict:
    return next(p for p in predictions_of(client, project)[task] if p["model_version"] == version)


@pytest.fixture
def curve_backend(label_studio, tmp_path_factory):
    server, _ = label_studio
    backend = Backend(server, tmp_path_factory.mktemp("curve-backend")).start()
    yield backend
    backend.stop()


def test_curve_and_suggestions_in_the_editor(label_studio, curve_backend, chromium, tmp_path, capsys):
    from mtclar.cli import main

    server, client = label_studio
    backend = curve_backend
    folder = server.document_root / "curve-videos"
    folder.mkdir(exist_ok=True)
    shutil.copy2(SHARED_VIDEOS / "single_face.mp4", folder)
    code = main(["import", "--ls-url", server.url, "--api-key", server.token, "--create", "mtclar curve",
                 "--mode", "video-curve", str(folder), "--document-root", str(server.document_root),
                 "--ml-url", backend.url])
    assert code == 0
    project = int(capsys.readouterr().out.split("created project ")[1].split()[0])
    assert parse_label_config(client.get_project(project)["label_config"]).curve == SETUP.curve
    (task,) = [t["id"] for t in client.list_tasks(project)]
    assert client.get_task(task)["data"]["curve"] == placeholder_curve(SETUP.curve.columns, (N_FRAMES - 1) / 30)

    anchors = segment("a", 1, 3, -0.3, 0.1) + segment("b", 60, 62, 0.4, 0.3)
    # (the backend learnt of the task when it was connected: wait for its embedding, whose end bumps the version)
    wait_for(lambda: backend.health(project)["embedding"].get("done", 0) >= 1, 120, "the video's embedding", step=0.5)
    revision = backend.metrics(project)["anchor_revision"]
    first = client.create_annotation(task, anchors)
    version = wait_for(lambda: backend.metrics(project)["anchor_revision"] > revision and
                       backend.metrics(project)["model_version"], 30, "the annotation webhook")
    client.retrieve_predictions(project)
    prediction = latest(client, project, task, version)  # (opening a project may have asked for others before)
    assert check_prediction(SETUP, core(prediction), n_frames=N_FRAMES) == []
    assert LabelInterface(VIDEO_CURVE).validate_prediction(core(prediction))
    assert 0 < prediction["score"] < 1  # the task score to sort by
    marks = [r for r in prediction["result"] if r["value"].get("timelinelabels") == [SUGGEST_LABEL]]
    assert len(marks) == 3  # MTCLAR_SUGGEST_K's default
    assert human_ranges(prediction) == [(1, 3), (60, 62)]

    # the backend wrote the per-frame curve into the task (in the background), keeping the task's other data
    data = wait_for(lambda: (d := client.get_task(task)["data"]) and len(d["curve"]["time"]) == N_FRAMES and d,
                    60, "the curve written into the task")
    assert data["video"].endswith("single_face.mp4") and data["fps"] == 30
    curve = data["curve"]
    assert curve["time"][0] == 0 and curve["time"][-1] == pytest.approx((N_FRAMES - 1) / 30, abs=1e-3)
    assert curve["valence"][0:3] == [-0.3] * 3 and curve["valence"][59:62] == [0.4] * 3  # anchors are themselves
    assert all(low <= v <= high for low, v, high in zip(curve["valence_low"], curve["valence"], curve["valence_high"],
                                                        strict=True))

    # the editor on the prediction: the curve under the video, in sync with it, the suggestions on the timeline
    client.delete_annotation(first["id"])
    screenshot = tmp_path / "curve.png"
    report = chromium(server, project, task, screenshot, curve=True, submit=True)
    assert report["ok"], report.get("error")
    assert not report["fatal_errors"]
    assert report["region_labels"].count(SUGGEST_LABEL) == 3
    drawn = report["curve"]["loaded"]["plots"]
    assert [p["legends"][0] for p in drawn] == ["valence", "arousal"] and all(len(p["legends"]) == 3 for p in drawn)
    for plot, name in zip(drawn, ("valence", "arousal"), strict=True):
        assert len(plot["lines"]) == 3 and all(len(line["points"]) == N_FRAMES for line in plot["lines"])
        ys = np.array([y for _, y in plot["lines"][0]["points"]])  # SVG y grows downwards
        assert np.corrcoef(ys, curve[name])[0, 1] < -0.999, f"the {name} line is not the predicted {name}"
    duration = curve["time"][-1]
    seek = report["curve"]["after_video_seek"]
    assert seek["video_time"] > 0
    for plot in seek["plots"]:  # the video moved: each plot's playhead is at the video's time
        assert plot["playhead_x"] / plot["width"] == pytest.approx(seek["video_time"] / duration, abs=0.02)
    click = report["curve"]["after_curve_click"]  # the plot clicked at 75% of its width: the video went there
    assert click["video_time"] == pytest.approx(0.75 * duration, abs=0.05)
    assert report["submitted"]["status"] in (200, 201)
    if os.environ.get("MTCLAR_CURVE_SCREENSHOT"):
        shutil.copy(screenshot, os.environ["MTCLAR_CURVE_SCREENSHOT"])

    # the prediction accepted in the editor (Submit) and the marks touched by a person: still only two anchors
    wait_for(lambda: len(client.list_annotations(task)) == 1, 30, "the submitted annotation")
    revision = backend.metrics(project)["anchor_revision"]
    touched = [{**r, "origin": "manual"} for r in marks]
    client.create_annotation(task, anchors + touched)
    version = wait_for(lambda: backend.metrics(project)["anchor_revision"] > revision and
                       backend.metrics(project)["model_version"], 30, "the annotation webhook")
    client.retrieve_predictions(project)
    assert human_ranges(latest(client, project, task, version)) == [(1, 3), (60, 62)]
