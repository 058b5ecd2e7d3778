import csv
import json
import re

import cv2
import pytest

from mtclar.cli import main

from .conftest import run_captured

COLUMNS = ["frame", "time_s", "valence", "arousal", "score", "face", "source"]
ANCHORS = {0: (-0.3, -0.2), 200: (0.25, 0.5), 400: (0.6, 0.35)}


def anchors_csv(path, rows):
    path.write_text("video,frame,valence,arousal\n" + "".join(f"{','.join(map(str, r))}\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def wolfgang(videos, cache_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("label")
    anchors = anchors_csv(tmp / "a.csv", [("WolfgangLanger_Pexels", f, v, a) for f, (v, a) in ANCHORS.items()])
    out = tmp / "out"
    code, stdout, stderr = run_captured(["label", str(videos / "WolfgangLanger_Pexels.mp4"), "--anchors",
                                         str(anchors), "--out", str(out), "--cache-dir", str(cache_dir),
                                         "--suggest", "3"])
    return code, stdout, stderr, out


@pytest.mark.slow
def test_label_writes_csv(wolfgang):
    code, stdout, _, out = wolfgang
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["WolfgangLanger_Pexels.csv", "WolfgangLanger_Pexels.json",
                                                     "WolfgangLanger_Pexels.png"]
    with open(out / "WolfgangLanger_Pexels.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        rows = list(reader)
    assert len(rows) == 472 and [int(r["frame"]) for r in rows] == list(range(472))
    assert float(rows[240]["time_s"]) == pytest.approx(240 / 23.976, abs=1e-3)
    for row in rows:
        frame = int(row["frame"])
        assert row["face"] == "True"
        v, a, score = float(row["valence"]), float(row["arousal"]), float(row["score"])
        if frame in ANCHORS:
            assert row["source"] == "anchor" and (v, a) == ANCHORS[frame] and score == 1.0
        else:
            assert row["source"] == "predicted"
            assert -1 <= v <= 1 and -1 <= a <= 1 and 0 < score <= 1
    assert "WolfgangLanger_Pexels: 472 frames" in stdout and "(3 anchors, 469 predicted, 0 without a face)" in stdout


@pytest.mark.slow
def test_label_writes_json_with_the_same_rows(wolfgang):
    _, _, _, out = wolfgang
    data = json.loads((out / "WolfgangLanger_Pexels.json").read_text())
    meta = data["metadata"]
    assert meta["model_version"] == "mtclar-faceapi-floor-4"
    assert meta["frames"] == 472 and meta["frames_with_face"] == 472
    assert meta["encoder"] == "faceapi-expression" and meta["method"] == "kernel"
    assert meta["anchors"] == {str(f): list(v) for f, v in ANCHORS.items()}
    with open(out / "WolfgangLanger_Pexels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(data["frames"]) == 472
    for row, frame in zip(rows, data["frames"], strict=True):
        assert frame["frame"] == int(row["frame"]) and frame["source"] == row["source"]
        for key in ("time_s", "valence", "arousal", "score"):
            assert frame[key] == float(row[key])
        assert frame["face"] is True
        assert frame["predictor"] == ("anchor" if frame["source"] == "anchor" else "kernel")


@pytest.mark.slow
def test_label_writes_a_png(wolfgang):
    _, _, _, out = wolfgang
    png = out / "WolfgangLanger_Pexels.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = cv2.imread(str(png))
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 100


@pytest.mark.slow
def test_label_suggests_frames(wolfgang):
    _, stdout, _, _ = wolfgang
    (line,) = [line for line in stdout.splitlines() if "label next:" in line]
    frames = [int(f) for f in re.findall(r"(\d+) \(\d+\.\d+s\)", line)]
    assert len(frames) == 3 and len(set(frames)) == 3
    assert all(0 <= f < 472 and f not in ANCHORS for f in frames)


@pytest.mark.slow
def test_label_a_video_without_a_face(videos, cache_dir, tmp_path, capsys):
    anchors = anchors_csv(tmp_path / "a.csv", [("no_face", 10, 0.1, 0.2)])
    code = main(["label", str(videos / "no_face.mp4"), "--anchors", str(anchors), "--out", str(tmp_path / "out"),
                 "--cache-dir", str(cache_dir), "--no-plot", "--device", "cpu", "--precision", "fp16",
                 "--batch-size", "8"])
    captured = capsys.readouterr()
    assert code == 0
    assert "no_face: no face was found in any frame" in captured.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["no_face.csv", "no_face.json"]
    with open(tmp_path / "out" / "no_face.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 95
    for row in rows:
        assert row["face"] == "False"
        if row["frame"] == "10":  # the anchor keeps its value
            assert (row["source"], row["valence"], row["arousal"]) == ("anchor", "0.1", "0.2")
        else:
            assert (row["source"], row["valence"], row["arousal"], row["score"]) == ("no_face", "", "", "")
    data = json.loads((tmp_path / "out" / "no_face.json").read_text())
    assert data["metadata"]["frames_with_face"] == 0
    # what ran where: fp16 applies to CUDA only, so this CPU run was fp32
    assert data["metadata"]["device"] == {"encoder": "cpu", "precision": "fp32", "detector": ["CPUExecutionProvider"]}
    assert data["frames"][0]["valence"] is None and data["frames"][0]["predictor"] == "no_face"


@pytest.mark.parametrize(("rows", "message"), [
    ([("ghost", 0, 0, 0)], "row 2: unknown video 'ghost'; videos given: single_face"),
    ([("single_face", 0, 0, 0), ("single_face", 72, 0, 0)],
     "row 3: frame 72 is out of range for single_face (72 frames, 0..71)"),
    ([("single_face", 1, "nan", 0)], "row 2: valence = 'nan' is not finite"),
    ([("single_face", 1, 0, 1.5)], "row 2: arousal = 1.5 is outside [-1, 1]"),
    ([("single_face", -1, 0, 0)], "row 2: frame '-1' must be a whole number >= 0"),
    ([("single_face", 4, 0, 0), ("single_face", 4, 0.5, 0)], "row 3: frame 4 of single_face is already labelled"),
])
def test_bad_anchors_exit_2_before_any_output(videos, cache_dir, tmp_path, capsys, rows, message):
    anchors = anchors_csv(tmp_path / "a.csv", rows)
    out = tmp_path / "out"
    code = main(["label", str(videos / "single_face.mp4"), "--anchors", str(anchors), "--out", str(out),
                 "--cache-dir", str(cache_dir)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith("mtclar label: error: ")
    assert f"{anchors} {message}" in captured.err
    assert not out.exists()


def test_missing_anchor_column_exits_2(videos, cache_dir, tmp_path, capsys):
    anchors = tmp_path / "a.csv"
    anchors.write_text("video,frame,valence\nsingle_face,0,0\n")
    code = main(["label", str(videos / "single_face.mp4"), "--anchors", str(anchors), "--out",
                 str(tmp_path / "out"), "--cache-dir", str(cache_dir)])
    assert code == 2
    assert "missing column(s) arousal" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_every_video_needs_anchors(videos, cache_dir, tmp_path, capsys):
    anchors = anchors_csv(tmp_path / "a.csv", [("single_face", 0, 0, 0)])
    code = main(["label", str(videos / "single_face.mp4"), str(videos / "no_face.mp4"), "--anchors", str(anchors),
                 "--out", str(tmp_path / "out"), "--cache-dir", str(cache_dir)])
    assert code == 2
    assert "no anchors for no_face" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_missing_video_exits_2(tmp_path, cache_dir, capsys):
    anchors = anchors_csv(tmp_path / "a.csv", [("nothing", 0, 0, 0)])
    code = main(["label", str(tmp_path / "nothing.mp4"), "--anchors", str(anchors), "--out", str(tmp_path / "out"),
                 "--cache-dir", str(cache_dir)])
    assert code == 2
    assert "video not found" in capsys.readouterr().err


@pytest.mark.slow
def test_method_the_checkpoint_cannot_do_exits_2(videos, cache_dir, tmp_path, capsys):
    anchors = anchors_csv(tmp_path / "a.csv", [("single_face", 0, 0, 0)])
    code = main(["label", str(videos / "single_face.mp4"), "--anchors", str(anchors), "--out", str(tmp_path / "out"),
                 "--cache-dir", str(cache_dir), "--method", "mtclar"])
    assert code == 2
    assert "mtclar" in capsys.readouterr().err


def test_unknown_method_is_a_usage_error(videos, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["label", str(videos / "single_face.mp4"), "--anchors", "a.csv", "--out", str(tmp_path),
              "--method", "magic"])
    assert exit_.value.code == 2
    assert "invalid choice: 'magic'" in capsys.readouterr().err
