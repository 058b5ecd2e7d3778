import csv
import json
import math
from pathlib import Path

import pytest

from mtclar.cli import main

REPO = Path(__file__).resolve().parents[2]
DEV_LABELS = REPO / "benchmarks" / "data" / "dev_labels.csv"
METHODS = {"kernel", "hold-last", "interpolation"}


def json_line(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_evaluate_afewva_layout(shared_dir, cache_dir, tmp_path, capsys):
    out_json = tmp_path / "result.json"
    code = main(["evaluate", "--data", str(shared_dir / "data" / "afewva-sample"), "--support", "first:1",
                 "--cache-dir", str(cache_dir), "--json", str(out_json)])
    stdout = capsys.readouterr().out
    assert code == 0
    lines = stdout.strip().splitlines()
    assert "1 videos, 6 labelled frames; model mtclar-faceapi-floor-4 (method kernel)" in lines[0]
    assert lines[1].startswith("support | method") and set(lines[2]) <= {"-", "+"}
    assert sum(line.startswith("first:1 ") for line in lines) == 3
    result = json_line(stdout)
    assert result == json.loads(out_json.read_text())
    assert result["videos"] == 1 and result["labelled_frames"] == 6 and result["frames_with_face"] == 6
    rows = {row["method"]: row for row in result["rows"]}
    assert set(rows) == METHODS
    for row in rows.values():
        assert row["support"] == "first:1" and row["n_queries"] == 5
        assert row["labelled_pct"] == pytest.approx(100 / 6)
    # constant labels (V 0, A 0.5): the baselines copy them exactly; correlation is undefined
    for method in ("hold-last", "interpolation"):
        assert rows[method]["pooled"]["valence"]["rmse"] == 0.0
        assert rows[method]["pooled"]["arousal"]["rmse"] == pytest.approx(0.0)
        assert rows[method]["pooled"]["valence"]["pcc"] is None  # NaN is written as null: strict JSON


@pytest.mark.slow
def test_evaluate_csv_manifest_with_several_supports(videos, cache_dir, tmp_path, capsys):
    manifest = tmp_path / "labels.csv"
    with open(DEV_LABELS) as f:
        rows = [r for r in csv.DictReader(f) if r["video"] == "single_face"]
    with open(manifest, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["video", "frame", "valence", "arousal"])
        writer.writeheader()
        writer.writerows(rows)
    supports = ["every:6", "first:1", "random:3", "suggest:3"]
    code = main(["evaluate", "--data", str(manifest), "--videos", str(videos), "--support", *supports,
                 "--cache-dir", str(cache_dir)])
    stdout = capsys.readouterr().out
    assert code == 0
    result = json_line(stdout)
    assert result["videos"] == 1 and result["labelled_frames"] == 24
    by_key = {(row["support"], row["method"]): row for row in result["rows"]}
    assert set(by_key) == {(s, m) for s in supports for m in METHODS}
    anchors = {"every:6": 4, "first:1": 1, "random:3": 3, "suggest:3": 3}
    for (support, _), row in by_key.items():
        assert row["labelled_pct"] == pytest.approx(100 * anchors[support] / 24)
        assert row["n_queries"] == 24 - anchors[support]
        for dim in ("valence", "arousal"):
            assert math.isfinite(row["pooled"][dim]["rmse"])
    for support in supports:
        assert sum(line.startswith(f"{support} ") for line in stdout.splitlines()) == 3


def test_bad_support_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "--data", str(tmp_path), "--support", "every:20", "every:0"])
    assert exit_.value.code == 2
    assert "bad support set 'every:0'" in capsys.readouterr().err


def test_bad_data_exits_2(tmp_path, cache_dir, capsys):
    code = main(["evaluate", "--data", str(tmp_path / "labels.txt"), "--cache-dir", str(cache_dir)])
    assert code == 2
    assert "expected an AFEW-VA folder or a .csv manifest" in capsys.readouterr().err
    (tmp_path / "labels.csv").write_text("video,frame,valence,arousal\nghost,0,0,0\n")
    code = main(["evaluate", "--data", str(tmp_path / "labels.csv"), "--cache-dir", str(cache_dir)])
    assert code == 2
    assert "row 2: video 'ghost' not found" in capsys.readouterr().err
