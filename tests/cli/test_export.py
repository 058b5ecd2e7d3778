"""`mtclar export` without Label Studio: the rows built from synthetic annotation JSON against a synthetic video,
the files written, and the readers that take them back (anchor CSV, AFEW-VA). The full path is in
tests/e2e/test_export_e2e.py."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtclar.afewva_export import afewva_frames, write_afewva, write_afewva_images
from mtclar.cli import main
from mtclar.commands.export import in_media_root, media_name, unique_name
from mtclar.model.errors import AnchorError, PayloadError
from mtclar.model.video import probe_video
from mtclar.outputs import write_csv
from mtclar.training.sources import read_afewva, read_anchor_csv
from mtclar_backend.export_rows import (
    COLUMNS,
    frame_task_rows,
    label_studio_frames,
    latest_prediction,
    mean_human,
    parse_task,
    task_rows,
)
from mtclar_backend.label_configs import FRAME, VIDEO
from mtclar_backend.ls_format import frame_prediction, parse_label_config, video_prediction
from mtclar_backend.segments import Segment

SETUP = parse_label_config(VIDEO)
FPS = 10.0
N_FRAMES = 37


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """A real, small video: N_FRAMES frames at FPS, each frame's brightness its index (to check frame order)."""
    path = tmp_path_factory.mktemp("export-video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (64, 48))
    for i in range(N_FRAMES):
        writer.write(np.full((48, 64, 3), 5 * i, np.uint8))
    writer.release()
    return path


def region(rid: str, start: int, end: int, valence: float, arousal: float, origin: str | None = None) -> list[dict]:
    """A timeline region as the Label Studio editor saves it (1-based, inclusive frame range)."""
    ranges = [{"start": start, "end": end}]
    extra = {"origin": origin} if origin else {}
    return [
        {"id": rid, "from_name": "segment", "to_name": "video", "type": "timelinelabels",
         "value": {"ranges": ranges, "timelinelabels": ["VA"]}, **extra},
        {"id": rid, "from_name": "valence", "to_name": "video", "type": "number",
         "value": {"ranges": ranges, "number": valence}, **extra},
        {"id": rid, "from_name": "arousal", "to_name": "video", "type": "number",
         "value": {"ranges": ranges, "number": arousal}, **extra},
    ]


def task_json(annotations: list[tuple[int, list[dict]]], frames: int | None = None) -> dict:
    data = {"video": "/data/upload/3/0a1b2c3d-clip.avi", "fps": FPS}
    if frames is not None:
        data["frames"] = frames
    return {"id": 7, "data": data, "annotations": [
        {"id": 100 + k, "completed_by": who, "result": result, "was_cancelled": False}
        for k, (who, result) in enumerate(annotations)]}


def rows_by_frame(rows) -> dict[int, list]:
    out: dict[int, list] = {}
    for row in rows:
        out.setdefault(row.frame, []).append(row)
    return out


def test_rows_follow_the_decoded_video_and_map_label_studio_frames_to_zero_based(video) -> None:
    info = probe_video(video)
    assert (info.n_frames, info.fps) == (N_FRAMES, FPS)
    task = parse_task(task_json([
        (1, region("a", 1, 3, 0.5, -0.2) + region("b", 30, 45, -0.4, 0.3)),  # b runs past the 37 frames
        (2, region("c", 2, 2, 0.1, 0.1)),
    ], frames=45))
    prediction = video_prediction(SETUP, [Segment(3, 20, 0.25, 0.75, 0.9)], [], 0.9, "m.r1")
    rows = task_rows(SETUP, task, {"id": 9, **prediction}, info.n_frames, info.fps, 10_000,
                     users={1: "ann@example.com"})
    by_frame = rows_by_frame(rows)

    assert sorted(by_frame) == list(range(N_FRAMES))  # every decoded frame, none beyond
    assert label_studio_frames(task) == 45
    # Label Studio's frame 1 is decoded frame 0
    assert [(r.source, r.annotator, r.valence, r.arousal) for r in by_frame[0]] == \
        [("human", "ann@example.com", 0.5, -0.2)]
    # two annotators on frame 1 (LS frame 2): one row each, sorted by annotator
    assert [(r.annotator, r.valence) for r in by_frame[1]] == [("ann@example.com", 0.5), ("user 2", 0.1)]
    assert [(r.source, r.valence) for r in by_frame[2]] == [("human", 0.5)]
    # the prediction's segment 3..20 (0-based) fills the unlabelled frames it covers
    assert [(r.source, r.valence, r.arousal, r.annotator) for r in by_frame[3]] == [("predicted", 0.25, 0.75, "")]
    assert by_frame[20][0].source == "predicted"
    assert [(r.source, r.valence, r.arousal) for r in by_frame[21]] == [("none", None, None)]
    assert by_frame[28][0].source == "none" and by_frame[29][0].source == "human"  # LS 30 = frame 29
    assert by_frame[N_FRAMES - 1][0].valence == -0.4  # clipped at the last decoded frame
    assert by_frame[21][0].time_s == pytest.approx(2.1)


def test_an_accepted_unchanged_prediction_is_not_a_human_label() -> None:
    task = parse_task(task_json([(1, region("p", 1, 5, 0.3, 0.3, origin="prediction"))]))
    rows = task_rows(SETUP, task, None, 10, FPS, 10_000)
    assert {r.source for r in rows} == {"none"}


def test_latest_prediction_is_the_newest() -> None:
    older = {"id": 5, "created_at": "2026-01-01T10:00:00Z"}
    newer = {"id": 4, "created_at": "2026-01-02T10:00:00Z"}
    assert latest_prediction([older, newer]) is newer
    assert latest_prediction([]) is None


def test_malformed_annotation_names_the_task_and_field() -> None:
    with pytest.raises(PayloadError, match=r"task 7: annotations\[0\].result\[1\].value.number"):
        task_rows(SETUP, parse_task(task_json([(1, region("a", 1, 3, 7.0, 0.0))])), None, 10, FPS, 10_000)
    with pytest.raises(PayloadError, match="task 7"):
        parse_task({"id": 7, "data": {}, "annotations": {"not": "a list"}})


def test_csv_is_read_back_as_the_backends_anchors_and_afewva_by_its_loader(video, tmp_path) -> None:
    task = parse_task(task_json([
        (1, region("a", 1, 4, 0.5, -0.2) + region("b", 10, 12, -0.4, 0.3)),
        (2, region("c", 3, 6, 0.1, 0.1)),
    ]))
    prediction = video_prediction(SETUP, [Segment(12, 30, 0.25, 0.75, 0.9)], [], 0.9, "m.r1")
    rows = task_rows(SETUP, task, prediction, N_FRAMES, FPS, 10_000)
    write_csv(tmp_path / "clip.csv", [r.as_dict() for r in rows], COLUMNS)
    with open(tmp_path / "clip.csv", newline="") as f:
        assert tuple(next(csv.reader(f))) == COLUMNS

    anchors = read_anchor_csv(tmp_path / "clip.csv")
    expected = {0: (0.5, -0.2), 1: (0.5, -0.2), 2: (0.3, -0.05), 3: (0.3, -0.05), 4: (0.1, 0.1), 5: (0.1, 0.1),
                9: (-0.4, 0.3), 10: (-0.4, 0.3), 11: (-0.4, 0.3)}
    assert list(anchors) == ["clip"]
    got = {r.frame: (r.valence, r.arousal) for r in anchors["clip"]}
    assert got.keys() == expected.keys()
    for frame, (v, a) in expected.items():
        assert got[frame] == pytest.approx((v, a), abs=1e-12)

    write_afewva(tmp_path / "afew-va", "clip", video, N_FRAMES, rows, "human", {"fps": FPS})
    (clip,) = read_afewva(tmp_path / "afew-va")
    assert clip.name == "clip" and sorted(clip.frame_files) == list(range(N_FRAMES))
    assert clip.labels.keys() == expected.keys()
    for frame, (v, a) in expected.items():
        assert clip.labels[frame] == pytest.approx((v, a), abs=1e-9)
    # the frame images are the decoded frames, in order (frame i was written with brightness 5 i)
    assert abs(float(cv2.imread(str(clip.frame_files[20])).mean()) - 100) < 3
    document = json.loads((tmp_path / "afew-va" / "clip" / "clip.json").read_text())
    assert document["frames"]["00009"] == {"valence": -4.0, "arousal": 3.0, "source": "human"}
    with_predicted = afewva_frames(rows, "all")
    assert with_predicted["00012"] == {"valence": 2.5, "arousal": 7.5, "source": "predicted"}


# -- the annotation -> rows conversion, against an independent per-frame reading ------------------------------------

GRID = st.integers(-100, 100).map(lambda k: k / 100)
REGION = st.tuples(st.integers(1, 60), st.integers(0, 20), GRID, GRID)  # 1-based start, length - 1, v, a
ANNOTATION = st.tuples(st.integers(1, 4), st.lists(REGION, min_size=0, max_size=4))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(annotations=st.lists(ANNOTATION, max_size=4), n_frames=st.integers(1, 70),
       predicted=st.lists(st.tuples(st.integers(0, 69), st.integers(0, 15), GRID, GRID), max_size=3))
def test_rows_match_a_frame_by_frame_reading(annotations, n_frames, predicted) -> None:
    task = parse_task(task_json([(who, [item for k, (s, length, v, a) in enumerate(regions)
                                         for item in region(f"r{k}", s, s + length, v, a)])
                                 for who, regions in annotations]))
    segments = [Segment(s, s + length, v, a, 0.5) for s, length, v, a in predicted]
    prediction = video_prediction(SETUP, segments, [], 0.5, "m") if segments else None
    rows = task_rows(SETUP, task, prediction, n_frames, FPS, 10_000)
    by_frame = rows_by_frame(rows)
    assert sorted(by_frame) == list(range(n_frames))

    for frame in range(n_frames):
        expected_human = []
        for who, regions in annotations:
            covering = [(v, a) for s, length, v, a in regions if s - 1 <= frame <= s - 1 + length]
            if covering:
                expected_human.append((f"user {who}", np.mean([c[0] for c in covering]),
                                       np.mean([c[1] for c in covering])))
        covering = [(v, a) for s, length, v, a in predicted if s <= frame <= s + length]
        got = by_frame[frame]
        if expected_human:
            assert [r.source for r in got] == ["human"] * len(expected_human)
            got_human = sorted((r.annotator, r.valence, r.arousal) for r in got)
            assert [g[0] for g in got_human] == [e[0] for e in sorted(expected_human)]
            np.testing.assert_allclose([g[1:] for g in got_human], [e[1:] for e in sorted(expected_human)],
                                       atol=1e-6)
        elif covering:
            assert len(got) == 1 and got[0].source == "predicted"
            assert (got[0].valence, got[0].arousal) == pytest.approx(
                (np.mean([c[0] for c in covering]), np.mean([c[1] for c in covering])), abs=1e-6)
        else:
            assert [(r.source, r.valence, r.arousal) for r in got] == [("none", None, None)]
    means = mean_human(rows)
    assert set(means) == {r.frame for r in rows if r.source == "human"}


def test_exported_csv_without_human_rows_has_no_anchors_and_bad_rows_are_named(tmp_path) -> None:
    path = tmp_path / "clip.csv"
    path.write_text("frame,time_s,valence,arousal,source,annotator\n0,0.0,0.2,0.1,predicted,\n1,0.1,,,none,\n")
    assert read_anchor_csv(path) == {}
    path.write_text("frame,time_s,valence,arousal,source,annotator\n0,0.0,1.5,0.1,human,a@b.c\n")
    with pytest.raises(AnchorError, match=r"clip.csv row 2: valence = 1.5 is outside"):
        read_anchor_csv(path)
    path.write_text("frame,valence,arousal\n0,0.2,0.1\n")  # neither an anchors CSV nor an export
    with pytest.raises(AnchorError, match="missing column.*video"):
        read_anchor_csv(path)


def test_frame_mode_rows_are_the_frames_with_a_task(tmp_path) -> None:
    setup = parse_label_config(FRAME)
    numbers = [{"id": "n", "from_name": name, "to_name": "frame", "type": "number", "value": {"number": value}}
               for name, value in (("valence", 0.4), ("arousal", -0.3))]
    labelled = parse_task({"id": 1, "data": {"image": "/x/00005.png", "video_id": "001", "frame": 5},
                           "annotations": [{"id": 1, "completed_by": 3, "result": numbers}]})
    predicted = parse_task({"id": 2, "data": {"image": "/x/00002.png", "video_id": "001", "frame": 2}})
    empty = parse_task({"id": 3, "data": {"image": "/x/00009.png", "video_id": "001", "frame": 9}})
    prediction = frame_prediction(setup, 0.1, 0.2, 0.5, "m")
    rows = frame_task_rows(setup, [(labelled, 5, None), (predicted, 2, prediction), (empty, 9, None)], 25.0,
                           10_000, {3: "c@d.e"})
    assert [(r.frame, r.time_s, r.source, r.valence, r.arousal, r.annotator) for r in rows] == [
        (2, 0.08, "predicted", 0.1, 0.2, ""), (5, 0.2, "human", 0.4, -0.3, "c@d.e"), (9, 0.36, "none", None, None, "")]
    images = {}
    for frame in (2, 5, 9):
        images[frame] = tmp_path / f"img{frame}.png"
        cv2.imwrite(str(images[frame]), np.full((8, 8, 3), frame, np.uint8))
    write_afewva_images(tmp_path / "afew-va", "001", images, rows, "all")
    (clip,) = read_afewva(tmp_path / "afew-va")
    assert sorted(clip.frame_files) == [2, 5, 9]
    assert clip.labels == {2: pytest.approx((0.1, 0.2)), 5: pytest.approx((0.4, -0.3))}


# -- names, media and options ---------------------------------------------------------------------------------------


def test_media_names() -> None:
    assert media_name("/data/upload/3/0a1b2c3d-my clip.mp4") == "my_clip"
    assert media_name("/data/local-files/?d=videos/study%201/p01.mov") == "p01"
    assert media_name("http://media.example.org/a/b/c.webm") == "c"


def test_unique_names_never_take_the_summary_or_a_later_literal_name() -> None:
    names = {"export"}
    assert unique_name("export", names, 4) == "export-task4"  # export.json is the summary
    assert unique_name("clip-task9", names, 1) == "clip-task9"  # a video literally named so
    assert unique_name("clip", names, 2) == "clip"
    assert unique_name("clip", names, 9) == "clip-task9-2"
    assert unique_name("clip", names, 9) == "clip-task9-3"
    assert len(names) == 6


def test_media_root_finds_a_file_by_its_name(tmp_path) -> None:
    tmp_path = tmp_path.resolve()
    (tmp_path / "clip.mp4").write_bytes(b"x")
    assert in_media_root("/data/upload/3/0a1b2c3d-clip.mp4", tmp_path) == tmp_path / "clip.mp4"
    assert in_media_root("/data/upload/3/0a1b2c3d-other.mp4", tmp_path) is None
    assert in_media_root("/data/local-files/?d=study/clip.mp4", tmp_path) == tmp_path / "clip.mp4"
    (tmp_path / "001").mkdir()
    (tmp_path / "001" / "00000.png").write_bytes(b"x")
    assert in_media_root("/data/local-files/?d=frames/001/00000.png", tmp_path, "001") == tmp_path / "001" / "00000.png"
    assert in_media_root("/data/local-files/?d=frames/002/00000.png", tmp_path, "002") is None
    assert in_media_root("/data/local-files/?d=x/clip.mp4", tmp_path / "001", "..") is None  # not outside the root


def test_unknown_format_is_refused_before_any_call(tmp_path, capsys) -> None:
    code = main(["export", "--ls-url", "http://127.0.0.1:9", "--api-key", "k", "--project", "1",
                 "--out", str(tmp_path), "--formats", "csv,xls"], environ={})
    assert code == 2
    assert "--formats: unknown xls" in capsys.readouterr().err


def test_unreachable_label_studio_is_an_error_naming_it(tmp_path, capsys) -> None:
    code = main(["export", "--ls-url", "http://127.0.0.1:9", "--api-key", "k", "--project", "1",
                 "--out", str(tmp_path / "out")], environ={})
    assert code == 2
    assert "cannot reach Label Studio at http://127.0.0.1:9" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
