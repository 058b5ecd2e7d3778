"""The project report in a real browser: a real Label Studio 1.23.2 project with 2 videos and 2 annotators, the
backend connected (annotation webhooks, Train), then /report?project=N opened in Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import label_studio as ls
import pytest
from test_backend_e2e import SHARED_VIDEOS, Backend, segment, wait_for

from mtclar.cli import main
from mtclar_backend.importer import Importer, plan_items
from mtclar_backend.label_configs import VIDEO
from mtclar_backend.ls_api import LabelStudioAPI

OPEN_REPORT = Path(__file__).resolve().parent / "browser" / "open_report.mjs"
CLIPS = ("single_face.mp4", "face_noface.mov")
# (annotator 1, annotator 2) per clip: segments (1-based frames) with valence, arousal
LABELS = {
    "single_face.mp4": (
        segment("a", 1, 8, 0.0, 0.0) + segment("b", 30, 36, 0.3, 0.2) + segment("c", 64, 72, 0.6, 0.4),
        segment("a", 1, 10, 0.1, 0.0) + segment("b", 28, 36, 0.4, 0.3) + segment("c", 60, 72, 0.5, 0.4)),
    "face_noface.mov": (segment("a", 1, 10, -0.2, 0.1) + segment("b", 50, 60, 0.2, 0.3),
                        segment("a", 1, 12, -0.1, 0.1) + segment("b", 48, 60, 0.3, 0.2)),
}


@pytest.fixture(scope="module")
def report_backend(label_studio, tmp_path_factory):
    server, _ = label_studio
    backend = Backend(server, tmp_path_factory.mktemp("report-backend")).start()
    yield backend
    backend.stop()


def open_report(url: str, screenshot: Path) -> dict:
    available, reason = ls.browser_available()
    if not available:
        pytest.fail(reason) if ls.e2e_required() else pytest.skip(reason)
    done = subprocess.run(["node", str(OPEN_REPORT), url, str(screenshot)], cwd=OPEN_REPORT.parent,
                          env={**os.environ, "MTCLAR_CHROMIUM": str(ls.chromium_path())}, capture_output=True,
                          text=True, timeout=180, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, f"open_report.mjs printed no report (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(lines[-1])


def test_report_of_two_videos_and_two_annotators(label_studio, report_backend, tmp_path, capsys):
    server, client = label_studio
    folder = server.document_root / "mtclar-report"
    folder.mkdir(exist_ok=True)
    paths = [Path(shutil.copy2(SHARED_VIDEOS / clip, folder)) for clip in CLIPS]
    project = client.create_project("mtclar report", VIDEO)["id"]
    api = LabelStudioAPI(server.url, server.token)
    importer = Importer(api, project, "video")
    items = plan_items(paths, "video")
    tasks = importer.create_tasks(items, importer.urls_local(items, server.document_root))
    ml = client.connect_ml_backend(project, report_backend.url)
    # a second person in the organisation; Label Studio 1.23.2 keeps a posted completed_by
    second = client._json("POST", "/api/users/", json={"email": "second@example.org", "username": "second",
                                                        "first_name": "Second"})["id"]
    for task, clip in zip(tasks, CLIPS, strict=True):
        first_labels, second_labels = LABELS[clip]
        client.create_annotation(task, first_labels)
        client.create_annotation(task, second_labels, completed_by=second)

    def agreement_of_both() -> dict | None:
        found = report_backend.metrics(project).get("agreement") or {}
        return found if len(found.get("videos", {})) == 2 else None

    agreement = wait_for(agreement_of_both, 60, "both videos' agreement on /metrics")
    for video in agreement["videos"].values():
        assert len(video["raters"]) == 2 and "user " + str(second) in video["raters"]
    assert agreement["pooled"]["frames"] > 0 and agreement["pooled"]["icc_form"] == "ICC(A,1)"

    # the command line reads the same annotations over the API (annotators named by their email there)
    assert main(["agreement", "--ls-url", server.url, "--api-key", server.token, "--project", str(project),
                 "--json"]) == 0
    from_cli = json.loads(capsys.readouterr().out)
    assert from_cli["pooled"]["raters"] == sorted([server.username, "second@example.org"])
    for dim in ("valence", "arousal"):
        for score in ("ccc", "icc", "alpha"):
            assert from_cli["pooled"][dim][score] == pytest.approx(agreement["pooled"][dim][score])

    report_url = f"{report_backend.url}/report?project={project}"
    wait_for(lambda: 'class="not-ready"' not in httpx.get(report_url, timeout=60).text, 300,
             "both videos embedded (the report says not ready until then)", step=3)
    client.train(ml)
    wait_for(lambda: report_backend.metrics(project)["training"].get("status") in ("done", "failed"), 300,
             "the Train fine-tune to finish", step=3)
    training = report_backend.metrics(project)["training"]
    assert training["status"] == "done" and f"/report?project={project}" in training["message"]

    started = time.perf_counter()
    assert httpx.get(report_url, timeout=60).status_code == 200
    print(f"\n[e2e] GET /report (2 videos, embeddings cached): {time.perf_counter() - started:.2f} s")
    screenshot = tmp_path / "report.png"
    seen = open_report(report_url, screenshot)
    assert seen["ok"] and seen["status"] == 200, seen
    assert len(seen["images"]) == 2 and all(i["complete"] and i["naturalWidth"] > 0 for i in seen["images"]), seen
    assert seen["tables"].get("agreement") == 3, seen  # 2 videos + pooled
    assert seen["tables"].get("history") == 1 and seen["tables"].get("efficiency") == 2, seen
    assert seen["not_ready"] == 0 and not seen["page_errors"], seen
    if os.environ.get("MTCLAR_REPORT_SCREENSHOT"):
        shutil.copy(screenshot, os.environ["MTCLAR_REPORT_SCREENSHOT"])
