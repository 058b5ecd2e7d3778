"""GET /report and the agreement on /metrics, through Flask's test client with the real runtime."""

from __future__ import annotations

import base64
import re
import time
from functools import partial

import cv2
import numpy as np
import pytest

from mtclar.model.agreement import agreement as rater_agreement
from mtclar.settings import Settings
from mtclar_backend.agreement import annotator_name, task_ratings
from mtclar_backend.app import create_app
from mtclar_backend.finetune_job import outcome_message
from mtclar_backend.jobs import TrainingJobs
from mtclar_backend.label_configs import FRAME, VIDEO
from mtclar_backend.ls_format import parse_label_config, timeline_region
from mtclar_backend.project_cache import ProjectCache
from mtclar_backend.runtime import Runtime
from mtclar_backend.store import SQLiteStore

region = partial(timeline_region, parse_label_config(VIDEO))  # (id, start, end, valence, arousal)
MISSING = {"id": 7, "data": {"video": "/data/local-files/?d=videos/not-there.mp4", "fps": 25}}
SINGLE_FACE = {"id": 8, "data": {"video": "/data/local-files/?d=videos/single_face.mp4", "fps": 30}}
FIRST = region("a", 1, 10, 0.1, 0.2) + region("b", 11, 20, 0.4, 0.3) + region("c", 21, 30, -0.2, 0.0)
SECOND = region("a", 1, 12, 0.2, 0.2) + region("b", 13, 20, 0.5, 0.4) + region("c", 21, 25, -0.1, 0.1)


def make_runtime(tmp_path, shared_dir, **overrides) -> Runtime:
    return Runtime(Settings(model_dir=tmp_path / "model", cache_dir=tmp_path / "cache",
                            media_roots=(shared_dir / "data",), **overrides))


@pytest.fixture
def runtime(tmp_path, shared_dir):
    return make_runtime(tmp_path, shared_dir)


@pytest.fixture
def client(runtime):
    return create_app(runtime).test_client()


def annotate(client, project: int, task: dict, annotation_id: int, result: list, completed_by=None) -> None:
    annotation = {"id": annotation_id, "result": result, **({"completed_by": completed_by} if completed_by else {})}
    response = client.post("/webhook", json={"action": "ANNOTATION_CREATED",
                                             "project": {"id": project, "label_config": VIDEO},
                                             "task": task, "annotation": annotation})
    assert response.status_code == 201, response.get_json()


def test_report_validates_the_project_and_changes_nothing(client, runtime):
    missing = client.get("/report")
    assert missing.status_code == 400 and missing.get_json()["message"].startswith("project:")
    bad = client.get("/report?project=abc")
    assert bad.status_code == 400 and bad.get_json()["message"].startswith("project:")
    unknown = client.get("/report?project=99")
    assert unknown.status_code == 400 and "project 99" in unknown.get_json()["message"]
    assert runtime.store.counts()["annotations"] == 0 and runtime.store.get_state(99, "setup") is None


def test_report_needs_the_credentials(tmp_path, shared_dir):
    runtime = make_runtime(tmp_path, shared_dir, basic_auth_user="ann", basic_auth_pass="secret")
    client = create_app(runtime).test_client()
    assert client.get("/report?project=1").status_code == 401
    auth = {"Authorization": "Basic " + base64.b64encode(b"ann:secret").decode()}
    assert client.get("/report?project=1", headers=auth).status_code == 400  # in, but no such project yet


def test_two_annotators_agreement_on_metrics_and_report(client, runtime):
    annotate(client, 5, MISSING, 11, FIRST, completed_by=1)
    annotate(client, 5, MISSING, 12, SECOND, completed_by={"id": 2, "email": "<b>bob</b>@example.org"})
    metrics = client.get("/metrics?project=5").get_json()
    assert metrics["report"] == "/report?project=5"
    found = metrics["agreement"]["videos"]["task:7"]
    first = {f: (0.1, 0.2) for f in range(10)} | {f: (0.4, 0.3) for f in range(10, 20)} | \
        {f: (-0.2, 0.0) for f in range(20, 30)}
    second = {f: (0.2, 0.2) for f in range(12)} | {f: (0.5, 0.4) for f in range(12, 20)} | \
        {f: (-0.1, 0.1) for f in range(20, 25)}
    expected = rater_agreement({"user 1": first, "<b>bob</b>@example.org": second})
    assert found["raters"] == ["<b>bob</b>@example.org", "user 1"] and found["frames"] == 25
    for dim in ("valence", "arousal"):
        for score in ("ccc", "icc", "alpha"):
            assert found[dim][score] == pytest.approx(expected.scores[dim][score])
    assert metrics["agreement"]["pooled"]["frames"] == 25

    page = client.get("/report?project=5")
    assert page.status_code == 200 and page.content_type.startswith("text/html")
    html = page.get_data(as_text=True)
    assert 'id="agreement"' in html and "&lt;b&gt;bob&lt;/b&gt;@example.org" in html and "<b>bob" not in html
    table = html.split('id="agreement"')[1].split("</table>")[0]
    assert f"{expected.scores['valence']['ccc']:.3f}" in table
    assert 'class="not-ready"' in html  # the video's media is missing: said on the page, nothing embedded


def test_million_frame_annotations_keep_metrics_fast_and_small(client):
    import tracemalloc

    annotate(client, 12, MISSING, 61, region("a", 1, 1_000_000, 0.2, 0.1), completed_by=1)
    annotate(client, 12, MISSING, 62, region("a", 1, 1_000_000, 0.3, 0.1) + region("b", 500_001, 1_000_000, 0.5,
                                                                                      0.2), completed_by=2)
    tracemalloc.start()
    started = time.perf_counter()
    found = client.get("/metrics?project=12").get_json()["agreement"]["videos"]["task:7"]
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert found["frames"] == 1_000_000 and found["raters"] == ["user 1", "user 2"]
    assert seconds < 2.0 and peak < 20_000_000, (seconds, peak)


def test_a_failed_train_is_in_the_history_and_on_the_report(client, runtime):
    annotate(client, 6, MISSING, 21, FIRST, completed_by=1)
    state = runtime.jobs.execute(6)  # the real fine-tune job: this project's media is missing
    assert state["status"] == "failed"
    history = runtime.jobs.history(6)
    assert len(history) == 1 and history[0]["status"] == "failed" and "no anchors" in history[0]["message"]
    html = client.get("/report?project=6").get_data(as_text=True)
    assert 'id="history"' in html and "no anchors" in html


def test_training_history_keeps_every_outcome_in_order(tmp_path):
    outcomes = iter([{"kept_new": False, "before": {"mean_rmse": 0.05}, "after": {"mean_rmse": 0.06}},
                     {"kept_new": True, "before": {"mean_rmse": 0.05}, "after": {"mean_rmse": 0.03}}])
    jobs = TrainingJobs(SQLiteStore(tmp_path / "s.db"), lambda project, progress: next(outcomes))
    for _ in range(2):
        jobs.start(3, "requested")
        jobs.wait(3, 10)
    runs = jobs.history(3)
    assert [r["kept_new"] for r in runs] == [False, True] and all(r["status"] == "done" for r in runs)
    assert all("heartbeat" not in r and r["reason"] == "requested" for r in runs)


def test_outcome_message_names_the_verdict_and_the_report():
    kept = outcome_message(False, "base", "base-ft1", {"mean_rmse": 0.056}, {"mean_rmse": 0.062,
                                                                          "min_improvement": 0.005}, 4)
    assert kept.startswith("kept base:") and "0.0620" in kept and "0.0560" in kept and kept.endswith(
        "/report?project=4")
    assert outcome_message(True, "base", "base-ft1", {"mean_rmse": 0.07}, {"mean_rmse": 0.035}, 4).startswith(
        "serving the fine-tune base-ft1")


def test_annotators_from_label_studio_tasks():
    assert annotator_name(3) == "user 3" and annotator_name(3, {3: "ann@x.org"}) == "ann@x.org"
    assert annotator_name({"id": 4, "email": ""}) == "user 4" and annotator_name(True) is None
    assert annotator_name(None) is None and annotator_name("x") is None
    tasks = [{**MISSING, "annotations": [{"id": 1, "completed_by": 1, "result": FIRST},
                                         {"id": 2, "completed_by": 2, "result": SECOND},
                                         {"id": 3, "completed_by": 2, "result": [], "was_cancelled": True}]},
             {"id": 9, "data": {}, "annotations": []}]  # no media URL: skipped
    ratings = task_ratings(parse_label_config(VIDEO), tasks, 10_000, {1: "ann@x.org"})
    assert set(ratings) == {"task:7"} and set(ratings["task:7"]) == {"ann@x.org", "user 2"}
    second, first = ratings["task:7"]["user 2"], ratings["task:7"]["ann@x.org"]
    assert (second.start[0], second.stop[0], tuple(second.values[0])) == (0, 12, (0.2, 0.2))
    assert first.frames == 30 and len(first.start) == 3  # three segments: three runs
    assert annotator_name({"id": 5, "email": " " + "x" * 300}) == "x" * 200  # one rule, the 200-character cap
    assert annotator_name(6, {6: "y" * 300}) == "y" * 200


@pytest.mark.slow
def test_report_draws_a_cached_video(client, runtime, monkeypatch):
    result = (region("a", 1, 3, 0.0, 0.0) + region("b", 25, 27, 0.3, 0.2) + region("c", 50, 52, 0.6, 0.4)
              + region("d", 70, 72, 0.5, 0.3))
    annotate(client, 8, SINGLE_FACE, 31, result, completed_by=1)
    annotate(client, 8, SINGLE_FACE, 32, region("a", 1, 30, 0.1, 0.1), completed_by=2)
    deadline = time.monotonic() + 120
    while runtime.ready_embeddings(_media(runtime, 8)) is None:  # the webhook queued it
        assert time.monotonic() < deadline, "the embedding never finished"
        time.sleep(0.5)
    html = client.get("/report?project=8").get_data(as_text=True)
    images = re.findall(r"src='data:image/png;base64,([^']+)'", html)
    assert len(images) == 1
    picture = cv2.imdecode(np.frombuffer(base64.b64decode(images[0]), np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape[0] > 100 and picture.shape[1] > 300
    assert 'id="efficiency"' in html and "suggested next frames (0-based): " in html
    assert re.search(r"held-out anchors of 1 video", html)

    kind, calls = type(runtime.labeler(8)), []
    label = kind.label
    monkeypatch.setattr(kind, "label", lambda self, *a, **k: calls.append(1) or label(self, *a, **k))  # counts
    assert client.get("/report?project=8").get_data(as_text=True) == html  # nothing changed: no model work
    assert calls == []
    annotate(client, 8, SINGLE_FACE, 33, region("a", 40, 45, 0.2, 0.2), completed_by=3)  # a new revision
    rebuilt = client.get("/report?project=8").get_data(as_text=True)
    assert calls and rebuilt != html and "user 3" in rebuilt


def _media(runtime: Runtime, project: int):
    from mtclar_backend.project_data import stored_media

    return stored_media(runtime, project, "task:8")[0]


def test_frame_mode_agreement_groups_frame_tasks_by_video(client):
    def number(name: str, value: float) -> dict:
        return {"id": "n", "from_name": name, "to_name": "frame", "type": "number", "value": {"number": value}}

    values = {0: (0.1, 0.2, 0.2, 0.2), 1: (0.4, 0.3, 0.5, 0.4), 2: (-0.2, 0.0, -0.1, 0.1), 3: (0.0, 0.5, 0.1, 0.6)}
    for frame, (v1, a1, v2, a2) in values.items():
        task = {"id": 40 + frame, "data": {"image": f"/data/local-files/?d=frames/none/{frame}.png",
                                           "video_id": "clip", "frame": frame}}
        for annotation_id, person, v, a in ((100 + frame, 1, v1, a1), (200 + frame, 2, v2, a2)):
            response = client.post("/webhook", json={
                "action": "ANNOTATION_CREATED", "project": {"id": 9, "label_config": FRAME},
                "task": task, "annotation": {"id": annotation_id, "completed_by": person,
                                             "result": [number("valence", v), number("arousal", a)]}})
            assert response.status_code == 201, response.get_json()
    found = client.get("/metrics?project=9").get_json()["agreement"]["videos"]["video:clip"]
    expected = rater_agreement({"user 1": {f: (v[0], v[1]) for f, v in values.items()},
                                "user 2": {f: (v[2], v[3]) for f, v in values.items()}})
    assert found["frames"] == 4 and found["valence"]["ccc"] == pytest.approx(expected.scores["valence"]["ccc"])
    html = client.get("/report?project=9").get_data(as_text=True)
    assert "frame mode: curves are drawn for video-mode projects only" in html and "video:clip" in html


def test_project_cache_keeps_one_entry_per_project_and_drops_the_least_recent():
    cache: ProjectCache[str] = ProjectCache(max_projects=2)
    assert cache.get_or_build(1, "r1", lambda: "one") == "one"
    assert cache.get_or_build(1, "r1", lambda: "rebuilt") == "one"
    assert cache.get(1, "r2") is None  # another key: stale
    cache.put(2, "r1", "two")
    cache.get(1, "r1")
    cache.put(3, "r1", "three")  # project 2 is the least recently used
    assert len(cache) == 2 and cache.get(2, "r1") is None and cache.get(1, "r1") == "one"


def test_annotators_learnt_later_refresh_the_agreement(client):
    annotate(client, 10, MISSING, 51, FIRST)
    annotate(client, 10, MISSING, 52, SECOND)
    before = client.get("/metrics?project=10").get_json()["agreement"]["videos"]["task:7"]
    assert before["raters"] == ["annotation 51", "annotation 52"]
    annotate(client, 10, MISSING, 51, FIRST, completed_by=1)  # the same labels: no new revision
    annotate(client, 10, MISSING, 52, SECOND, completed_by=2)
    after = client.get("/metrics?project=10").get_json()["agreement"]["videos"]["task:7"]
    assert after["raters"] == ["user 1", "user 2"] and after["valence"] == before["valence"]


def test_a_renamed_annotator_refreshes_the_agreement(client):
    annotate(client, 11, MISSING, 71, FIRST, completed_by=1)
    annotate(client, 11, MISSING, 72, SECOND, completed_by=2)
    before = client.get("/metrics?project=11").get_json()["agreement"]["videos"]["task:7"]
    assert before["raters"] == ["user 1", "user 2"]
    annotate(client, 11, MISSING, 72, SECOND, completed_by={"id": 2, "email": "bob@example.org"})  # same count
    after = client.get("/metrics?project=11").get_json()["agreement"]["videos"]["task:7"]
    assert after["raters"] == ["bob@example.org", "user 1"]
