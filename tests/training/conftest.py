"""Fixtures for the training tests: a tiny labelled set made from the shared clips and stills.

Classes are AffectNet indices given by eye (0 neutral, 1 happy, 3 surprise, 5 disgust, 6 anger): the
stills' names say their class (su, hao, anc, di), single_face.jpg and the largest face of multi_face.jpg
smile; single_face.mp4 is neutral until about frame 15, then smiles (V/A from benchmarks/data/dev_labels.csv).
face_noface.mov is the same footage followed by a cartoon: it is the validation set, and its cartoon
frames (no face) must be dropped.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEV_LABELS = REPO / "benchmarks" / "data" / "dev_labels.csv"
STILL_CLASSES = {"0-f1-su-ph.jpg": 3, "0-f15-hao-ph.jpg": 1, "15-f13-anc-ph.jpg": 6, "45-m7-di-ph.jpg": 5,
                 "single_face.jpg": 1, "multi_face.jpg": 1}
FIELDS = ["video", "frame", "path", "expression", "valence", "arousal"]


def dev_labels(video: str) -> dict[int, tuple[str, str]]:
    with open(DEV_LABELS) as f:
        return {int(r["frame"]): (r["valence"], r["arousal"]) for r in csv.DictReader(f) if r["video"] == video}


@pytest.fixture(scope="session")
def dev_anchors():
    """video -> {frame: (valence, arousal)} from benchmarks/data/dev_labels.csv, every ``every``-th label."""

    def anchors(video: str, every: int = 1) -> dict[int, tuple[float, float]]:
        labels = sorted(dev_labels(video).items())[::every]
        return {frame: (float(v), float(a)) for frame, (v, a) in labels}

    return anchors


def _write(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from a second thread, and OpenMP threads waiting for each other on a busy
    2-core runner made these tests up to 10x slower (measured)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory, videos: Path, stills: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("smoke-data")
    train = [{"path": str(stills / name), "expression": c} for name, c in STILL_CLASSES.items()]
    for frame, (v, a) in sorted(dev_labels("single_face").items()):
        train.append({"video": "single_face", "frame": frame, "expression": 0 if frame <= 15 else 1,
                      "valence": v, "arousal": a})
    val = [{"video": "face_noface", "frame": frame, "expression": 0 if frame <= 15 else 1, "valence": v,
            "arousal": a} for frame, (v, a) in sorted(dev_labels("face_noface").items()) if frame % 6 == 0]
    val += [{"video": "face_noface", "frame": frame, "expression": 0} for frame in (100, 140)]  # cartoon: no face
    return {"train": _write(root / "train.csv", train), "val": _write(root / "val.csv", val), "videos": videos,
            "cache": tmp_path_factory.mktemp("smoke-cache"), "root": root}


@pytest.fixture(scope="session")
def smoke_items(smoke_data):
    """(train items, val items, crop cache) with the faceapi encoder's crop sizes."""
    from mtclar.model.face import FacePipeline
    from mtclar.training.config import TrainConfig
    from mtclar.training.crops import CropCache, canvas_size
    from mtclar.training.datasets import load_items
    from mtclar.training.run import serving_pipeline

    config = TrainConfig()
    cache = CropCache(smoke_data["cache"] / "crops", FacePipeline(serving_pipeline()), 112,
                      canvas_size(112, config.augment.resize_ratio))
    search = (str(smoke_data["videos"]),)
    train = load_items(smoke_data["train"], cache, search=search)
    val = load_items(smoke_data["val"], cache, search=search)
    return train, val, cache


@pytest.fixture(scope="session")
def smoke_run(smoke_data) -> dict:
    """`mtclar train` for 2 epochs (paper heads, frozen faceapi encoder, batch 16)."""
    from mtclar.cli import main

    out = smoke_data["root"] / "run"
    args = ["train", "--data", str(smoke_data["train"]), "--val-data", str(smoke_data["val"]),
            "--videos", str(smoke_data["videos"]), "--epochs", "2", "--batch-size", "16", "--encoder-mode", "frozen",
            "--out", str(out), "--workers", "0", "--seed", "0", "--cache-dir", str(smoke_data["cache"]),
            "--no-progress", "--set", "optim.lr=0.0003"]
    assert main(args) == 0
    return {"out": out, "args": args}
