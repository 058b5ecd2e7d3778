import csv
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from mtclar.model.embeddings import VideoEmbeddings
from mtclar.model.evaluate import BASELINES, VideoCase, choose_support, embed_case, evaluate, format_table
from mtclar.model.fewshot import FewShotLabeler, FrameFeatures
from mtclar.model.metrics import spearman
from mtclar.model.support import ErrorModel, random, suggest_frames
from mtclar.model.video import VideoInfo
from mtclar.training.sources import LabelledVideo, load_labelled_videos

REPO = Path(__file__).resolve().parents[2]
DEV_LABELS = REPO / "benchmarks" / "data" / "dev_labels.csv"


def test_spearman_by_hand():
    assert spearman(np.array([1, 2, 3, 4]), np.array([10, 20, 30, 40])) == pytest.approx(1.0)
    assert spearman(np.array([1, 2, 3, 4]), np.array([4, 3, 2, 1])) == pytest.approx(-1.0)
    # only ranks matter: x ranks 2 0 1 3, y ranks 2 0 1 3
    assert spearman(np.array([3.0, 1.0, 2.0, 50.0]), np.array([0.3, 0.1, 0.2, 0.4])) == pytest.approx(1.0)
    # ties share the average rank: x ranks 0 1.5 1.5 3 (deviations -1.5 0 0 1.5), y ranks 0 1 2 3 (-1.5 -.5 .5 1.5)
    # sum of products 4.5, sums of squares 4.5 and 5 -> 4.5 / sqrt(22.5)
    assert spearman(np.array([1, 2, 2, 3]), np.array([1, 2, 3, 4])) == pytest.approx(4.5 / math.sqrt(22.5))
    # a constant side has no ranking, so no correlation
    assert math.isnan(spearman(np.ones(5), np.arange(5.0)))
    # fewer than three points: undefined
    assert math.isnan(spearman(np.array([1.0, 2.0]), np.array([1.0, 2.0])))


def fake_case() -> VideoCase:
    """12 frames at 2 fps, no face on row 5; labels on rows 0 2 4 5 6 8 10 -> candidates 0 2 4 6 8 10."""
    rng = np.random.default_rng(0)
    n = 12
    has_face = np.ones(n, dtype=bool)
    has_face[5] = False
    embeddings = rng.normal(size=(n, 4)).astype(np.float32)
    embeddings[5] = np.nan
    info = VideoInfo("fake.mp4", n, 2.0, 64, 64, "0" * 64)
    video = VideoEmbeddings(info, has_face, has_face.astype(np.float32), np.zeros((n, 4)), np.zeros((n, 5, 2)),
                            embeddings, np.zeros((n, 0), np.float32), "test", "test")
    truth = {r: (0.1 * r / 10, -0.05 * r / 10) for r in (0, 2, 4, 5, 6, 8, 10)}
    labelled = LabelledVideo("fake", Path("fake.mp4"), labels=truth)
    return VideoCase(labelled, video, np.array([0, 2, 4, 6, 8, 10]), truth)


def stub_labeler():
    return SimpleNamespace(features=lambda video: FrameFeatures.of(video), labeler=FewShotLabeler())


def test_choose_support_protocols():
    case, labeler = fake_case(), stub_labeler()
    assert choose_support(case, "every:2", labeler).tolist() == [0, 4, 8]
    assert choose_support(case, "every:20", labeler).tolist() == [0]
    assert choose_support(case, "first:2", labeler).tolist() == [0, 2]
    chosen = choose_support(case, "random:3", labeler, seed=4)
    assert chosen.tolist() == random(case.candidates, 3, 4).tolist()
    assert len(chosen) == 3 and set(chosen.tolist()) <= set(case.candidates.tolist())
    with pytest.raises(ValueError, match="bad support set"):
        choose_support(case, "every:0", labeler)


def test_choose_support_suggest_picks_by_expected_error_reduction():
    case, labeler = fake_case(), stub_labeler()
    chosen = choose_support(case, "suggest:3", labeler)
    assert len(chosen) == 3 and chosen.tolist() == sorted(set(chosen.tolist()))
    assert set(chosen.tolist()) <= set(case.candidates.tolist())
    floor = labeler.labeler.config.floor
    expected = suggest_frames(3, case.embeddings.time_s, case.embeddings.has_face, np.zeros(0, dtype=int),
                              ErrorModel(floor.interval_power, floor.interval_min_distance_s),
                              candidates=case.candidates)
    assert chosen.tolist() == sorted(expected.tolist())


# -- a real run on single_face.mp4 with the dev labels --------------------------------------------------------


def single_face_manifest(folder: Path) -> Path:
    with open(DEV_LABELS) as f:
        rows = [r for r in csv.DictReader(f) if r["video"] == "single_face"]
    assert len(rows) == 24  # frames 0, 3, ..., 69
    path = folder / "labels.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["video", "frame", "valence", "arousal"])
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def single_face_run(embedder, videos, tmp_path_factory):
    from mtclar.model.labeling import VideoLabeler

    labeler = VideoLabeler(None, encoder=embedder.encoder, cache_dir=embedder.cache.root)
    manifest = single_face_manifest(tmp_path_factory.mktemp("manifest"))
    (video,) = load_labelled_videos(manifest, [videos])
    case = embed_case(labeler, video)
    rows = evaluate(labeler, [case], ["every:6", "first:1"])
    return labeler, case, rows


@pytest.mark.slow
def test_embed_case(single_face_run):
    _, case, _ = single_face_run
    assert case.embeddings.n_frames == 72 and case.embeddings.has_face.all()
    assert case.candidates.tolist() == list(range(0, 72, 3))
    assert case.truth[21] == (0.5, 0.3)


@pytest.mark.slow
def test_evaluate_single_face(single_face_run):
    labeler, case, rows = single_face_run
    assert labeler.labeler.method == "kernel"  # the shipped cold-start checkpoint
    by_key = {(r.support, r.method): r for r in rows}
    assert set(by_key) == {(s, m) for s in ("every:6", "first:1") for m in ("kernel", *BASELINES)}
    for (support, method), row in by_key.items():
        # every:6 of 24 labelled frames -> rows 0 18 36 54: 4 anchors, 20 queries; first:1 -> 1 anchor, 23 queries
        anchors = 4 if support == "every:6" else 1
        assert row.labelled_pct == pytest.approx(100 * anchors / 24)
        assert row.n_queries == 24 - anchors
        for dim in ("valence", "arousal"):
            assert np.isfinite(row.pooled[dim]["rmse"]) and 0 <= row.pooled[dim]["sagr"] <= 1
            if support == "every:6":
                assert np.isfinite(row.pooled[dim]["pcc"]) and np.isfinite(row.pooled[dim]["ccc"])
        assert list(row.videos) == ["single_face"]
        for dim in ("valence", "arousal"):  # one video: its mean is the pooled value
            for metric, value in row.pooled[dim].items():
                assert row.per_video[dim][metric] == pytest.approx(value, nan_ok=True)
        if method in BASELINES:
            assert math.isnan(row.uncertainty_error_rho)
        else:
            assert -1 <= row.uncertainty_error_rho <= 1
        assert set(row.to_dict()) == {"support", "method", "pooled", "per_video_mean", "labelled_pct", "n_queries",
                                      "uncertainty_error_spearman", "videos"}
    # first:1 anchors frame 0 at (0, 0): hold-last predicts 0 everywhere -> rmse = sqrt(mean(truth^2))
    queries = list(range(3, 72, 3))
    truth = np.array([case.truth[f] for f in queries])
    hold = by_key[("first:1", "hold-last")].pooled
    assert hold["valence"]["rmse"] == pytest.approx(np.sqrt(np.mean(truth[:, 0] ** 2)))
    assert hold["arousal"]["rmse"] == pytest.approx(np.sqrt(np.mean(truth[:, 1] ** 2)))
    table = format_table(rows)
    assert table.splitlines()[0].startswith("support | method")
    assert len(table.splitlines()) == 2 + len(rows)
