"""`mtclar export` against a real Label Studio 1.23.2: tasks imported by local files and by upload (`mtclar
import`), annotations and predictions stored through the API, the videos fetched like the backend fetches them
(or read from --media-root); then the round trip: the exported CSV as `mtclar label --anchors` gives the same
curve, frame for frame, as the anchors the annotations were made from."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from label_studio import FRAME_LABEL_CONFIG, VIDEO_LABEL_CONFIG, LabelStudioClient, LabelStudioServer, e2e_required

from mtclar.cli import main
from mtclar.training.sources import read_afewva
from mtclar_backend.ls_format import frame_prediction, parse_label_config, timeline_region, video_prediction
from mtclar_backend.segments import Segment

SHARED_DATA = Path(os.environ.get("MTCLAR_SHARED_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")
CLIP = SHARED_DATA / "videos" / "single_face.mp4"  # 72 frames at 30 fps
CLIP_FRAMES = 72
AFEWVA_CLIP = SHARED_DATA / "afewva-sample" / "001"  # 6 frame images (copied into Label Studio's document root)
SETUP = parse_label_config(VIDEO_LABEL_CONFIG)
# the anchors a person labels (0-based frames): three segments of p01
ANCHORS = [(0, 4, 0.3, 0.1), (30, 35, -0.25, 0.4), (68, 71, 0.55, -0.15)]


def segment(region_id: str, start: int, end: int, valence: float, arousal: float) -> list[dict[str, Any]]:
    """A timeline region over 0-based frames ``start..end`` as the editor stores it (1-based)."""
    return timeline_region(SETUP, region_id, start + 1, end + 1, valence, arousal)


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def project(label_studio: tuple[LabelStudioServer, LabelStudioClient], tmp_path_factory) -> dict[str, Any]:
    server, client = label_studio
    if not CLIP.exists():
        reason = f"shared test media missing: {CLIP} (set MTCLAR_SHARED_DATA)"
        if e2e_required():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    videos = server.document_root / "export-videos"
    videos.mkdir(parents=True, exist_ok=True)
    p01 = Path(shutil.copy2(CLIP, videos / "p01.mp4"))
    uploads = tmp_path_factory.mktemp("uploads")
    p02 = Path(shutil.copy2(CLIP, uploads / "p02.mp4"))
    created = client.create_project("export", VIDEO_LABEL_CONFIG)
    pid = created["id"]
    client.add_local_storage(pid, videos)
    # Label Studio's count for p01 is wrong on purpose (80, the video decodes 72): the export must follow the video
    (t1,) = client.import_tasks(pid, [{"video": f"/data/local-files/?d={p01.relative_to(server.document_root)}",
                                       "fps": 30, "frames": 80}])
    assert main(["import", "--ls-url", server.url, "--api-key", server.token, "--project", str(pid),
                 str(p02)], environ={}) == 0
    t2 = max(t["id"] for t in client.list_tasks(pid))
    client.create_annotation(t1, [item for k, (s, e, v, a) in enumerate(ANCHORS)
                                  for item in segment(f"s{k}", s, e, v, a)])
    client.create_annotation(t2, segment("x", 10, 12, -0.5, 0.5))
    old = video_prediction(SETUP, [Segment(5, 71, 0.9, 0.9, 0.5)], [], 0.5, "old")
    new = video_prediction(SETUP, [Segment(5, 29, 0.2, -0.1, 0.7), Segment(36, 60, -0.4, 0.3, 0.6)], [], 0.6, "new")
    for task, prediction in ((t1, old), (t1, new)):
        client.create_prediction(task, prediction["result"], prediction["score"], prediction["model_version"])
    anchors_csv = tmp_path_factory.mktemp("anchors") / "anchors.csv"
    with open(anchors_csv, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["video", "frame", "valence", "arousal"])
        for start, end, v, a in ANCHORS:
            writer.writerows(["p01", frame, v, a] for frame in range(start, end + 1))
    return {"server": server, "id": pid, "tasks": (t1, t2), "p01": p01, "videos": videos, "anchors": anchors_csv}


@pytest.fixture(scope="module")
def exported(project, tmp_path_factory) -> dict[str, Any]:
    """`mtclar export` with the videos downloaded through Label Studio (API key to its origin only)."""
    out = tmp_path_factory.mktemp("export")
    cache, model = tmp_path_factory.mktemp("cache"), tmp_path_factory.mktemp("model")
    server = project["server"]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["export", "--ls-url", server.url, "--api-key", server.token, "--project", str(project["id"]),
                     "--out", str(out), "--formats", "csv,json,afewva"],
                    environ={"MTCLAR_CACHE_DIR": str(cache), "MODEL_DIR": str(model)})
    return {"out": out, "code": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue(), "cache": cache,
            "model": model}


def test_export_writes_frame_exact_rows_for_every_video(project, exported) -> None:
    out = exported["out"]
    assert exported["code"] == 0, exported["stderr"]
    assert sorted(p.name for p in out.glob("*.csv")) == ["p01.csv", "p02.csv"]
    # the warning names the video and both counts
    (warning,) = [line for line in exported["stderr"].splitlines() if line.startswith("warning:")]
    assert re.search(r"p01 \(task \d+\): Label Studio says 80 frames, the decoded video has 72", warning), warning
    assert "p02" not in exported["stderr"]
    # downloaded through Label Studio (the uploaded p02 has no local copy) into the backend's media cache
    assert any((exported["model"] / "media").iterdir())

    rows = read_rows(out / "p01.csv")
    assert list(rows[0]) == ["frame", "time_s", "valence", "arousal", "source", "annotator"]
    assert [int(r["frame"]) for r in rows] == list(range(CLIP_FRAMES))  # one annotator: one row per frame
    by_frame = {int(r["frame"]): r for r in rows}
    for start, end, v, a in ANCHORS:
        for frame in range(start, end + 1):
            row = by_frame[frame]
            assert (row["source"], float(row["valence"]), float(row["arousal"])) == ("human", v, a)
            assert row["annotator"] == "e2e@example.com"
    # the newest prediction ("new"), not the older one, fills the unlabelled frames it covers
    assert (by_frame[5]["source"], float(by_frame[5]["valence"]), float(by_frame[5]["arousal"])) == \
        ("predicted", 0.2, -0.1)
    assert (by_frame[40]["source"], float(by_frame[40]["valence"])) == ("predicted", -0.4)
    assert (by_frame[62]["source"], by_frame[62]["valence"], by_frame[62]["annotator"]) == ("none", "", "")
    assert float(by_frame[30]["time_s"]) == pytest.approx(1.0)

    document = json.loads((out / "p01.json").read_text())
    assert document["metadata"]["frames"] == CLIP_FRAMES and document["metadata"]["label_studio_frames"] == 80
    assert document["metadata"]["prediction_model_version"] == "new"
    assert [r["frame"] for r in document["frames"]] == list(range(CLIP_FRAMES))
    index = json.loads((out / "export.json").read_text())
    assert sorted(v["video"] for v in index["videos"]) == ["p01", "p02"] and index["failed_tasks"] == []

    p02 = {int(r["frame"]): r for r in read_rows(out / "p02.csv")}
    assert len(p02) == CLIP_FRAMES and {p02[f]["source"] for f in (10, 11, 12)} == {"human"}
    assert {r["source"] for f, r in p02.items() if f not in (10, 11, 12)} == {"none"}

    clips = {clip.name: clip for clip in read_afewva(out / "afew-va")}
    assert len(clips["p01"].frame_files) == CLIP_FRAMES
    assert clips["p01"].labels == {f: (pytest.approx(v), pytest.approx(a))
                                   for s, e, v, a in ANCHORS for f in range(s, e + 1)}


def test_media_root_gives_the_same_export(project, exported, tmp_path) -> None:
    server = project["server"]
    media = tmp_path / "media"
    media.mkdir()
    for name in ("p01.mp4", "p02.mp4"):  # a lab's own copies, by their names before the upload
        shutil.copy2(CLIP, media / name)
    code = main(["export", "--ls-url", server.url, "--api-key", server.token, "--project", str(project["id"]),
                 "--out", str(tmp_path), "--formats", "csv", "--media-root", str(media)],
                environ={"MTCLAR_CACHE_DIR": str(tmp_path / "cache"), "MODEL_DIR": str(tmp_path / "model")})
    assert code == 0
    for name in ("p01.csv", "p02.csv"):
        assert (tmp_path / name).read_text() == (exported["out"] / name).read_text()
    assert not (tmp_path / "p01.json").exists() and not (tmp_path / "afew-va").exists()
    assert not (tmp_path / "model" / "media").exists()  # both videos read from the folder, nothing downloaded


def test_exported_csv_as_anchors_gives_the_same_curve(project, exported, tmp_path) -> None:
    cache = exported["cache"]
    common = ["--no-plot", "--cache-dir", str(cache), "--device", "cpu"]
    assert main(["label", str(project["p01"]), "--anchors", str(project["anchors"]), "--out",
                 str(tmp_path / "original"), *common], environ={}) == 0
    assert main(["label", str(project["p01"]), "--anchors", str(exported["out"] / "p01.csv"), "--out",
                 str(tmp_path / "reimported"), *common], environ={}) == 0
    original = read_rows(tmp_path / "original" / "p01.csv")
    reimported = read_rows(tmp_path / "reimported" / "p01.csv")
    assert len(original) == CLIP_FRAMES
    assert sum(r["source"] == "anchor" for r in original) == sum(e - s + 1 for s, e, _, _ in ANCHORS)
    assert reimported == original


class _Recorder(BaseHTTPRequestHandler):
    requests: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        type(self).requests.append(dict(self.headers))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"not a video")

    def log_message(self, *args: object) -> None:
        pass


def test_media_on_another_origin_is_refused_and_gets_no_key(label_studio, project, tmp_path) -> None:
    """A task whose video is on another port of Label Studio's host: reported and skipped, nothing sent there;
    the other tasks are exported and the exit status says one failed."""
    server, client = label_studio
    recorder = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    try:
        pid = client.create_project("export: foreign media", VIDEO_LABEL_CONFIG)["id"]
        client.add_local_storage(pid, project["videos"])
        _, foreign = client.import_tasks(pid, [
            {"video": f"/data/local-files/?d={project['p01'].relative_to(server.document_root)}", "fps": 30},
            {"video": f"http://127.0.0.1:{recorder.server_port}/p01.mp4", "fps": 30}])
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            code = main(["export", "--ls-url", server.url, "--api-key", server.token, "--project", str(pid),
                         "--out", str(tmp_path), "--formats", "csv"],
                         environ={"MTCLAR_CACHE_DIR": str(tmp_path), "MODEL_DIR": str(tmp_path / "model")})
    finally:
        recorder.shutdown()
        recorder.server_close()
    assert code == 1
    assert f"task {foreign}: not exported" in stderr.getvalue() and "origin" in stderr.getvalue()
    assert _Recorder.requests == []
    assert json.loads((tmp_path / "export.json").read_text())["failed_tasks"] == [foreign]
    assert [int(r["frame"]) for r in read_rows(tmp_path / "p01.csv")] == list(range(CLIP_FRAMES))


def test_unknown_project_is_an_error_naming_the_server(label_studio, tmp_path, capsys) -> None:
    server, _ = label_studio
    assert main(["export", "--ls-url", server.url, "--api-key", server.token, "--project", "999999",
                 "--out", str(tmp_path)], environ={}) == 2
    assert f"Label Studio at {server.url} answered 404" in capsys.readouterr().err


def test_frame_mode_project_exports_its_frame_tasks(label_studio, tmp_path) -> None:
    """Frame mode (AFEW-VA frame folders imported with `mtclar import --mode frame`): rows for the frames that
    have a task, and the AFEW-VA layout with the images as Label Studio serves them."""
    server, client = label_studio
    if not AFEWVA_CLIP.is_dir():
        pytest.skip(f"shared test data missing: {AFEWVA_CLIP}")
    folder = server.document_root / "export-frames" / "001"
    shutil.copytree(AFEWVA_CLIP, folder, ignore=shutil.ignore_patterns("*.json"))
    pid = client.create_project("export: frame mode", FRAME_LABEL_CONFIG)["id"]
    assert main(["import", "--ls-url", server.url, "--api-key", server.token, "--project", str(pid),
                 "--mode", "frame", "--document-root", str(server.document_root), str(folder)], environ={}) == 0
    tasks = {t["data"]["frame"]: t["id"] for t in client.list_tasks(pid)}
    assert sorted(tasks) == list(range(6))
    frame_setup = parse_label_config(FRAME_LABEL_CONFIG)
    for frame, (v, a) in {0: (0.5, 0.2), 3: (-0.1, 0.3)}.items():
        client.create_annotation(tasks[frame], [
            {"id": "n", "from_name": name, "to_name": "frame", "type": "number", "value": {"number": value}}
            for name, value in (("valence", v), ("arousal", a))])
    prediction = frame_prediction(frame_setup, 0.25, -0.5, 0.8, "m1")
    client.create_prediction(tasks[1], prediction["result"], prediction["score"], prediction["model_version"])

    out = tmp_path / "out"
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["export", "--ls-url", server.url, "--api-key", server.token, "--project", str(pid),
                     "--out", str(out), "--formats", "csv,json,afewva", "--afewva-frames", "all"],
                    environ={"MTCLAR_CACHE_DIR": str(tmp_path / "cache"), "MODEL_DIR": str(tmp_path / "model")})
    assert code == 0
    rows = read_rows(out / "001.csv")
    assert [(int(r["frame"]), r["source"], r["valence"], r["arousal"]) for r in rows] == [
        (0, "human", "0.5", "0.2"), (1, "predicted", "0.25", "-0.5"), (2, "none", "", ""),
        (3, "human", "-0.1", "0.3"), (4, "none", "", ""), (5, "none", "", "")]
    assert float(rows[1]["time_s"]) == pytest.approx(1 / 25)  # no frame rate in the tasks: 25 fps
    (clip,) = read_afewva(out / "afew-va")
    assert sorted(clip.frame_files) == list(range(6))
    assert (clip.frame_files[4].read_bytes() == (AFEWVA_CLIP / "00004.png").read_bytes())
    assert clip.labels == {0: pytest.approx((0.5, 0.2)), 1: pytest.approx((0.25, -0.5)),
                           3: pytest.approx((-0.1, 0.3))}
