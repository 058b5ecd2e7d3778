"""The training commands end to end: a trained checkpoint serves `mtclar label` and `mtclar evaluate`;
`mtclar train-sl` and `mtclar finetune` write checkpoints that load."""

import csv
import json

import pytest

from mtclar.cli import main
from mtclar.model.checkpoint import load_checkpoint


def _anchor_csv(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["video", "frame", "valence", "arousal"])
        writer.writerows(rows)
    return path


@pytest.mark.slow
def test_trained_checkpoint_labels_and_evaluates(smoke_run, smoke_data, tmp_path, capsys):
    videos = smoke_data["videos"]
    cache = ["--cache-dir", str(smoke_data["cache"])]
    anchors = _anchor_csv(tmp_path / "anchors.csv", [["single_face", 0, 0.0, 0.0], ["single_face", 45, 0.6, 0.35]])
    out = tmp_path / "labels"
    assert main(["label", str(videos / "single_face.mp4"), "--anchors", str(anchors), "--out", str(out),
                 "--checkpoint", str(smoke_run["out"] / "best"), "--no-plot", *cache]) == 0
    result = json.loads((out / "single_face.json").read_text())
    assert result["metadata"]["method"] == "mtclar"
    assert result["metadata"]["model_version"] == load_checkpoint(smoke_run["out"] / "best").name
    assert {f["source"] for f in result["frames"]} == {"anchor", "predicted"}
    assert all(-1 <= f["valence"] <= 1 for f in result["frames"])

    data = _anchor_csv(tmp_path / "labels.csv", [["single_face", f, v, a] for f, v, a in
                                                  [(0, 0, 0), (12, 0, 0), (24, 0.65, 0.4), (36, 0.65, 0.4),
                                                   (48, 0.55, 0.3), (60, 0.55, 0.3), (69, 0.5, 0.25)]])
    capsys.readouterr()
    assert main(["evaluate", "--data", str(data), "--videos", str(videos), "--support", "every:3",
                 "--checkpoint", str(smoke_run["out"] / "final"), *cache]) == 0
    printed = capsys.readouterr().out
    assert "method mtclar" in printed
    rows = json.loads(printed.strip().splitlines()[-1])["rows"]
    assert {r["method"] for r in rows} == {"mtclar", "hold-last", "interpolation"}


@pytest.mark.slow
def test_train_sl_writes_a_checkpoint_with_the_head(smoke_run, smoke_data, tmp_path, capsys):
    out = tmp_path / "sl"
    assert main(["train-sl", "--checkpoint", str(smoke_run["out"] / "final"), "--data", str(smoke_data["train"]),
                 "--val-data", str(smoke_data["val"]), "--videos", str(smoke_data["videos"]), "--target", "both",
                 "--epochs", "4", "--out", str(out), "--cache-dir", str(smoke_data["cache"]), "--workers", "0",
                 "--no-progress"]) == 0
    checkpoint = load_checkpoint(out)
    assert checkpoint.sl_trained and checkpoint.sl_head.n_classes == 8 and checkpoint.sl_head.regress_va
    assert checkpoint.sl_head.hidden == (1024, 512, 256, 128)
    assert checkpoint.heads_trained  # the pair heads it came with are kept
    assert checkpoint.trained_on["sl_head"]["target"] == "both"
    assert set(checkpoint.metrics["sl_head"]["val"]) >= {"class_acc", "valence_rmse", "arousal_ccc"}
    head = checkpoint.build_sl_head()
    assert head is not None
    assert "MT-CLAR+SL (both)" in capsys.readouterr().out

    # with the SL head a video needs no anchors
    anchors = _anchor_csv(tmp_path / "none.csv", [])
    labels = tmp_path / "labels"
    assert main(["label", str(smoke_data["videos"] / "single_face.mp4"), "--anchors", str(anchors), "--out",
                 str(labels), "--checkpoint", str(out), "--no-plot", "--cache-dir", str(smoke_data["cache"])]) == 0
    frames = json.loads((labels / "single_face.json").read_text())["frames"]
    assert {f["predictor"] for f in frames} == {"sl"}


@pytest.mark.slow
def test_finetune_command_prints_before_after_and_writes_the_kept_model(smoke_data, tmp_path, capsys):
    rows = [["single_face", f, v, a] for f, v, a in [(0, 0, 0), (9, 0, 0), (18, 0.2, 0.1), (27, 0.7, 0.45),
                                                      (36, 0.65, 0.4), (45, 0.6, 0.35), (54, 0.55, 0.3),
                                                      (63, 0.55, 0.3), (69, 0.5, 0.25)]]
    anchors = _anchor_csv(tmp_path / "anchors.csv", rows)
    out = tmp_path / "ft"
    assert main(["finetune", "--anchors", str(anchors), str(smoke_data["videos"] / "single_face.mp4"),
                 "--out", str(out), "--steps", "40", "--folds", "3", "--cache-dir", str(smoke_data["cache"])]) == 0
    printed = capsys.readouterr().out
    assert "leave-one-segment-out: 3 folds over 9 anchors" in printed and "before" in printed and "after" in printed
    summary = json.loads(printed.strip().splitlines()[-1])
    kept = load_checkpoint(out)
    assert kept.name == summary["checkpoint"]
    assert kept.name == ("mtclar-faceapi-floor-4-ft1" if summary["kept_new"] else "mtclar-faceapi-floor-4")
    assert ("keeps the NEW model" if summary["kept_new"] else "keeps the BASE model") in printed


def test_finetune_command_refuses_too_few_anchors(smoke_data, tmp_path, capsys):
    anchors = _anchor_csv(tmp_path / "anchors.csv", [["single_face", 0, 0, 0], ["single_face", 30, 0.6, 0.4]])
    code = main(["finetune", "--anchors", str(anchors), str(smoke_data["videos"] / "single_face.mp4"),
                 "--out", str(tmp_path / "ft"), "--cache-dir", str(smoke_data["cache"])])
    assert code == 2
    assert "at least 3 labelled frames with a face" in capsys.readouterr().err
    assert not (tmp_path / "ft").exists()
