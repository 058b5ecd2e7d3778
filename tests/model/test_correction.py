"""Interpolation floor + validated correction (model/correction.py, strategy ``floor``) on synthetic videos."""

import numpy as np
import pytest

from mtclar.model.baselines import linear_interpolation
from mtclar.model.correction import brackets, choose_weight, leave_one_segment_out, segment_ids, smooth_in_time
from mtclar.model.errors import AnchorError
from mtclar.model.fewshot import FewShotLabeler, FloorConfig, FrameFeatures, LabelerConfig
from mtclar.model.siamese import HeadConfig, PairHeads

FPS = 10.0
CLASSES = ("neutral", "happy")  # prior = p_happy * (0.8, 0.5)


def video(prior_valence: np.ndarray, has_face: np.ndarray | None = None) -> FrameFeatures:
    """Frames at 10 fps whose class prior is ``(v, 0.625 v)`` (probabilities of neutral / happy)."""
    p = np.clip(np.asarray(prior_valence, dtype=np.float64) / 0.8, 0, 1)
    n = len(p)
    probs = np.stack([1 - p, p], axis=1)
    rng = np.random.default_rng(0)
    face = np.ones(n, dtype=bool) if has_face is None else np.asarray(has_face, dtype=bool)
    embeddings = np.where(face[:, None], rng.normal(size=(n, 4)), np.nan)
    return FrameFeatures(embeddings, face, np.arange(n) / FPS, probs, CLASSES)


def labeler(**floor) -> FewShotLabeler:
    """The floor reading the circumplex prior at gain 1, which ``video`` builds to be the label change."""
    floor = {"signals": ("circumplex", "circumplex"), "signal_gain": (1.0, 1.0), **floor}
    return FewShotLabeler(LabelerConfig(method="kernel", floor=FloorConfig(**floor)))


def anchors_of(rows, labels) -> dict[int, tuple[float, float]]:
    return {int(r): (float(labels[r, 0]), float(labels[r, 1])) for r in rows}


def wave(n: int, period_s: float, amplitude: float = 0.35, centre: float = 0.4) -> np.ndarray:
    return centre + amplitude * np.sin(2 * np.pi * np.arange(n) / FPS / period_s)


# -- the pieces -------------------------------------------------------------------------------------


def test_brackets_by_hand():
    b = brackets(np.array([-1.0, 0.0, 1.0, 3.0, 5.0]), np.array([0.0, 4.0]))
    assert b.left.tolist() == [0, 0, 0, 0, 1] and b.right.tolist() == [0, 0, 1, 1, 1]
    # t = 1 between 0 and 4: weight of the left anchor 3/4; bridge distance 1 * 3 / 4
    np.testing.assert_allclose(b.weight_left, [1, 1, 0.75, 0.25, 1])
    np.testing.assert_allclose(b.distance_s, [1, 0, 0.75, 0.75, 1])


def test_segments_are_runs_of_close_anchors():
    assert segment_ids(np.array([0.0, 0.1, 0.2, 2.0, 2.1, 5.0]), 0.25).tolist() == [0, 0, 0, 1, 1, 2]
    assert segment_ids(np.arange(5) * 0.5, 0.25).tolist() == [0, 1, 2, 3, 4]


def test_smoothing_ignores_invalid_rows_and_keeps_constants():
    values = np.ones((20, 2))
    valid = np.ones(20, dtype=bool)
    valid[5] = False
    values[5] = 100.0  # an invalid row's value never leaks
    np.testing.assert_allclose(smooth_in_time(values, valid, np.arange(20) / FPS, 0.2)[valid], 1.0)


def test_choose_weight_prefers_zero_on_ties_and_small_wins():
    truth, floor = np.array([0.1, 0.2]), np.array([0.1, 0.2])
    assert choose_weight(truth, floor, np.zeros(2), (0.0, 0.5, 1.0)) == 0.0
    assert choose_weight(np.array([0.5, 0.5]), np.zeros(2), np.array([0.5, 0.5]), (0.0, 0.5, 1.0)) == 1.0
    # w = 1 halves nothing here: error 0.25 -> 0.2 is a 20% cut, under a 30% margin
    truth, correction = np.array([0.5]), np.array([0.5 - np.sqrt(0.2)])
    assert choose_weight(truth, np.zeros(1), correction, (0.0, 1.0), margin=0.3) == 0.0
    assert choose_weight(truth, np.zeros(1), correction, (0.0, 1.0), margin=0.1) == 1.0


# -- the floor --------------------------------------------------------------------------------------


def test_floor_with_zero_weight_is_interpolation():
    n = 120
    labels = np.stack([wave(n, 3.0), wave(n, 5.0)], axis=1)
    frames = video(np.random.default_rng(1).uniform(-0.8, 0.8, n))
    rows = np.arange(0, n, 17)
    out = labeler(default_weight=(0.0, 0.0), weight_grid=(0.0,)).label(frames, anchors_of(rows, labels))
    np.testing.assert_allclose(out.values, linear_interpolation(np.arange(n), rows, labels[rows]), atol=1e-12)
    assert out.details["correction_weight"] == [0.0, 0.0]


def test_loso_picks_zero_when_the_correction_is_noise():
    n = 400
    labels = np.stack([wave(n, 6.0), wave(n, 8.0, 0.2, 0.1)], axis=1)  # smooth: interpolation is good
    frames = video(np.random.default_rng(2).uniform(0, 0.8, n))  # the face says nothing about the labels
    out = labeler().label(frames, anchors_of(np.arange(0, n, 10), labels))
    assert out.details["weight_validated"] and out.details["segments"] == 40
    assert out.details["correction_weight"] == [0.0, 0.0]


def test_loso_picks_the_correction_when_it_is_informative():
    n = 400
    valence = wave(n, 1.3)  # changes faster than the anchors (every 1 s) can follow
    labels = np.stack([valence, 0.625 * valence], axis=1)
    frames = video(valence)  # the prior change is the label change
    rows = np.arange(0, n, 10)
    out = labeler(default_weight=(0.0, 0.0)).label(frames, anchors_of(rows, labels))
    assert out.details["weight_validated"]
    assert min(out.details["correction_weight"]) >= 0.75
    queries = np.setdiff1d(np.arange(n), rows)
    floor = linear_interpolation(queries, rows, labels[rows])
    assert np.abs(out.values[queries] - labels[queries]).mean() < 0.5 * np.abs(floor - labels[queries]).mean()


def test_few_segments_take_the_default_weight():
    n = 100
    valence = wave(n, 2.0)
    labels = np.stack([valence, valence], axis=1)
    out = labeler(default_weight=(0.25, 0.5)).label(video(valence), anchors_of([10, 60], labels))
    assert out.details == {**out.details, "correction_weight": [0.25, 0.5], "weight_validated": False,
                           "segments": 2}


def test_few_segments_take_a_given_fallback_weight_and_validated_videos_ignore_it():
    n = 100
    valence = wave(n, 2.0)
    labels = np.stack([valence, valence], axis=1)
    out = labeler().label(video(valence), anchors_of([10, 60], labels), fallback_weight=(0.75, 0.0))
    assert out.details["correction_weight"] == [0.75, 0.0] and not out.details["weight_validated"]
    frames, anchors = segment_case()
    validated = labeler().label(frames, anchors, fallback_weight=(0.0, 0.0))
    assert validated.details["weight_validated"] and validated.details["correction_weight"] != [0.0, 0.0]


# Segment labels: runs of 5 consecutive labelled frames (one value per run), runs 2 s apart. The face's prior
# follows the true curve, plus noise. Holding out single frames, a held-out frame's neighbour (same value)
# stays in: interpolation is (nearly) exact there and the noisy correction barely helps -> a small weight.
# Holding out whole runs, interpolation must bridge 4 s and the correction earns its full weight.
def segment_case() -> tuple[FrameFeatures, dict[int, tuple[float, float]]]:
    n = 600
    valence = wave(n, 2.9)
    runs = [np.arange(start, start + 5) for start in range(0, n - 5, 20)]
    labels = np.zeros((n, 2))
    for run in runs:
        labels[run] = valence[run[2]], 0.625 * valence[run[2]]
    noisy = valence + np.random.default_rng(3).normal(0, 0.15, n)
    return video(noisy), anchors_of(np.concatenate(runs), labels)


def test_segments_are_held_out_whole():
    frames, anchors = segment_case()
    out = labeler(default_weight=(0.0, 0.0)).label(frames, anchors)
    assert out.details["segments"] == len(anchors) // 5
    assert min(out.details["correction_weight"]) >= 0.75
    # the same rule holding out single frames (each frame its own segment) rewards copying the neighbour
    single = labeler(default_weight=(0.0, 0.0), segment_gap_s=0.0).label(frames, anchors)
    assert single.details["segments"] == len(anchors)
    assert max(single.details["correction_weight"]) <= 0.25


def test_folds_never_keep_a_held_out_frames_neighbour():
    frames, anchors = segment_case()
    rows = np.array(sorted(anchors))
    values = np.array([anchors[r] for r in rows])
    folds = leave_one_segment_out(frames.time_s, frames.has_face, rows, values, None, 0.25)
    assert folds.truth.shape == (len(rows), 2)
    # the nearest training anchor of every held-out frame is in another run: at least 1.6 s away (bridge >= 0.8 s)
    assert folds.distance_s.min() >= 0.8 - 1e-9


def test_interval_covers_about_80_percent_of_a_random_walk():
    rng = np.random.default_rng(4)
    n = 3000
    labels = np.clip(np.cumsum(rng.normal(0, 0.02, (n, 2)), axis=0) * 0.5, -1, 1)
    frames = video(np.zeros(n))  # constant prior: no correction, the interval is all that is tested
    rows = np.arange(0, n, 10)
    out = labeler(interval_power=0.5).label(frames, anchors_of(rows, labels))  # a random walk: sd ~ sqrt(d)
    queries = np.setdiff1d(np.arange(n), rows)
    inside_v = (out.valence_low <= labels[:, 0]) & (labels[:, 0] <= out.valence_high)
    inside_a = (out.arousal_low <= labels[:, 1]) & (labels[:, 1] <= out.arousal_high)
    for inside in (inside_v, inside_a):
        assert 0.72 <= inside[queries].mean() <= 0.88
        assert inside[rows].all()  # anchors: the interval is the value
    # uncertainty grows away from the anchors: mid-gap frames are less certain than an anchor's neighbour
    assert out.uncertainty[5] > out.uncertainty[1] > 0 and out.uncertainty[0] == 0


def test_floor_without_anchors_keeps_todays_behaviour():
    with pytest.raises(AnchorError, match="no anchors"):
        labeler().label(video(np.zeros(10)), {})


def test_floor_no_face_rows_get_nan_and_anchor_without_face_still_anchors_time():
    has_face = np.ones(50, dtype=bool)
    has_face[[0, 20]] = False
    frames = video(wave(50, 2.0), has_face)
    out = labeler().label(frames, {0: (0.1, 0.1), 10: (0.3, 0.3), 40: (0.5, 0.5)})
    assert out.source[20] == "no_face" and np.isnan([out.valence[20], out.valence_low[20]]).all()
    assert out.source[0] == "anchor" and out.valence[0] == 0.1
    assert np.isfinite(out.values[has_face]).all() and out.predictor[5] == "kernel"


def test_default_config_is_the_floor():
    assert LabelerConfig().strategy == "floor"


def test_floor_uses_the_trained_heads_as_the_correction(monkeypatch):
    n = 400
    valence = wave(n, 1.3)
    labels = np.stack([valence, -0.5 * valence], axis=1)
    frames = video(np.zeros(n))  # the class prior says nothing: only the heads can help
    frames = FrameFeatures(np.concatenate([labels, np.zeros((n, 2))], axis=1), frames.has_face, frames.time_s,
                           frames.expression_probs, frames.expression_classes)
    lab = FewShotLabeler(LabelerConfig(floor=FloorConfig(default_weight=(0.0, 0.0))),
                         PairHeads(HeadConfig(embed_dim=4, hidden=(8,))), heads_trained=True)
    # heads that read the label difference off the first two embedding dimensions
    monkeypatch.setattr(lab, "_pair_deltas", lambda query, anchors: query[:, :2] - anchors[:, :2])
    rows = np.arange(0, n, 10)
    out = lab.label(frames, anchors_of(rows, labels))
    assert lab.method == "mtclar" and out.predictor[5] == "mtclar"
    assert min(out.details["correction_weight"]) >= 0.75
    queries = np.setdiff1d(np.arange(n), rows)
    floor = linear_interpolation(queries, rows, labels[rows])
    assert np.abs(out.values[queries] - labels[queries]).mean() < 0.5 * np.abs(floor - labels[queries]).mean()


def test_shipped_checkpoint_carries_the_dataclass_defaults():
    """The tuned values live in one place, the dataclass defaults; the shipped checkpoint is built from them."""
    from mtclar.model.checkpoint import load_checkpoint
    from mtclar.model.face.pipeline import PipelineConfig

    shipped = load_checkpoint(None)
    assert shipped.labeler == LabelerConfig() and shipped.labeler.strategy == "floor"
    assert PipelineConfig.from_dict(shipped.pipeline) == PipelineConfig()
