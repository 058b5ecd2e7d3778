"""Suggestions by expected error reduction (model/support.py) and VideoLabeler.suggest."""

from types import SimpleNamespace

import numpy as np
import pytest

from mtclar.model.correction import brackets
from mtclar.model.errors import ConfigError
from mtclar.model.fewshot import FewShotLabeler
from mtclar.model.labeling import VideoLabeler
from mtclar.model.support import ErrorModel, activity_time, expected_error_reduction, suggest_frames

ROWS = np.arange(101)
TIMES = ROWS.astype(float)  # one frame a second


@pytest.mark.parametrize("exponent", [1.0, 2.0])
def test_first_pick_splits_the_gap_then_the_halves(exponent):
    model = ErrorModel(0.35, 0.1, exponent)
    picked = expected_error_reduction(3, TIMES, np.array([0, 100]), ROWS, ROWS, model)
    assert picked.tolist() == [50, 25, 75]  # in the order chosen; the ties (25, 75) go to the earlier gap


def test_the_largest_gap_is_split_first():
    times = np.arange(301.0)
    picked = expected_error_reduction(2, times, np.array([0, 100, 300]), np.arange(301), np.arange(301))
    assert picked.tolist() == [200, 50]  # the 200 s gap, then three 100 s gaps tie: the earliest


def test_no_anchors_first_pick_is_the_centre_then_both_sides():
    picked = expected_error_reduction(3, TIMES, np.zeros(0, dtype=int), ROWS, ROWS)
    assert picked[0] == 50
    assert picked[1] < 50 < picked[2] or picked[2] < 50 < picked[1]


def test_hold_before_the_first_anchor_counts():
    # one anchor at 100: the frames before it are held at its value; the pick goes inside that stretch
    picked = expected_error_reduction(1, TIMES, np.array([100]), ROWS, ROWS)
    assert 0 < picked[0] < 100


def test_candidates_exclude_anchors_and_faceless_frames():
    has_face = np.ones(101, dtype=bool)
    has_face[40:61] = False  # no face around the middle
    picked = suggest_frames(10, TIMES, has_face, np.array([0, 100]))
    assert len(picked) == 10 and len(set(picked.tolist())) == 10
    assert not set(picked.tolist()) & ({0, 100} | set(range(40, 61)))


def brute_force_total(time_s, has_face, anchors, model):
    """Sum of the labeller's own half-width shape (model/correction.brackets) over the face frames."""
    rows = np.flatnonzero(has_face & ~np.isin(np.arange(len(time_s)), anchors))
    distance = brackets(time_s[rows], np.sort(time_s[anchors])).distance_s
    return float(np.sum(np.maximum(distance, model.min_distance_s) ** (model.power * model.exponent)))


@pytest.mark.parametrize("anchors", [[0, 100], [30], [10, 45, 90]])
def test_each_pick_is_the_best_single_addition(anchors):
    """Against brute force with the labeller's own bridge distance, on an irregular face mask."""
    rng = np.random.default_rng(1)
    has_face = rng.random(101) > 0.3
    model = ErrorModel()
    anchors = np.array(anchors)
    candidates = np.flatnonzero(has_face & ~np.isin(ROWS, anchors))
    totals = [brute_force_total(TIMES, has_face, np.append(anchors, c), model) for c in candidates]
    picked = suggest_frames(1, TIMES, has_face, anchors, model, max_eval=8)
    assert brute_force_total(TIMES, has_face, np.append(anchors, picked), model) == pytest.approx(min(totals))


def test_given_candidates_are_the_only_ones_suggested():
    candidates = np.arange(0, 101, 10)
    picked = suggest_frames(20, TIMES, np.ones(101, dtype=bool), np.array([0, 100]), candidates=candidates)
    assert sorted(picked.tolist()) == list(range(10, 100, 10))  # every candidate but the anchors, then stop


def test_faceless_frames_carry_no_error():
    has_face = np.zeros(101, dtype=bool)
    has_face[60:101] = True
    # anchors at 0 and 100; candidates everywhere a face is; only frames 60..99 count
    picked = suggest_frames(1, TIMES, has_face, np.array([0, 100]))
    assert 60 <= picked[0] < 100


def test_nothing_to_suggest():
    assert suggest_frames(0, TIMES, np.ones(101, dtype=bool), np.array([0])).size == 0
    assert suggest_frames(3, TIMES, np.zeros(101, dtype=bool), np.array([0])).size == 0
    assert suggest_frames(3, TIMES[:2], np.ones(2, dtype=bool), np.array([0, 1])).size == 0


def test_diverse_start_needs_embeddings():
    with pytest.raises(ConfigError, match="embeddings"):
        suggest_frames(2, TIMES, np.ones(101, dtype=bool), np.zeros(0, dtype=int), start="diverse")
    with pytest.raises(ConfigError, match="unknown start"):
        suggest_frames(2, TIMES, np.ones(101, dtype=bool), np.zeros(0, dtype=int), start="middle")
    embeddings = np.random.default_rng(0).normal(size=(101, 4))
    picked = suggest_frames(3, TIMES, np.ones(101, dtype=bool), np.zeros(0, dtype=int), embeddings=embeddings,
                            start="diverse")
    assert len(set(picked.tolist())) == 3


def test_a_long_video_is_quick_and_well_formed():
    n = 15_000
    times = np.arange(n) / 25
    has_face = np.random.default_rng(0).random(n) > 0.1
    for anchors in (np.zeros(0, dtype=int), np.array([100, 9000])):
        picked = suggest_frames(20, times, has_face, anchors)
        assert picked.shape == (20,) and len(set(picked.tolist())) == 20
        assert has_face[picked].all() and not np.isin(picked, anchors).any()


def test_activity_time():
    times = np.arange(10.0)
    signal = np.zeros((10, 2))
    has_face = np.ones(10, dtype=bool)
    assert activity_time(times, signal, has_face, 0.5).tolist() == times.tolist()  # nothing moves
    signal[5:, 0] = 1.0  # one change between frames 4 and 5
    clock = activity_time(times, signal, has_face, 1.0, smooth_s=0.0)
    assert clock.tolist() == [0.0] * 5 + [9.0] * 5
    assert activity_time(times, signal, has_face, 0.0).tolist() == times.tolist()
    assert np.all(np.diff(activity_time(times, signal, has_face, 0.5)) > 0)


def test_video_labeler_suggest_returns_frames_in_time_order():
    labeler = object.__new__(VideoLabeler)  # only the few-shot labeller's config is read
    labeler.labeler = FewShotLabeler()
    has_face = np.ones(101, dtype=bool)
    has_face[[25, 50]] = False
    video = SimpleNamespace(time_s=TIMES / 25, has_face=has_face)
    frames = labeler.suggest(video, {0: (0.1, 0.2), 100: (0.3, 0.4)}, 3)
    assert frames == sorted(frames) and len(frames) == 3
    assert not {0, 100, 25, 50} & set(frames)
