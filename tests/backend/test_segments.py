import numpy as np
import pytest

from mtclar_backend.segments import expand_segments, merge_segments, merge_within_budget


def test_constant_run_is_one_segment():
    frames = np.arange(10)
    segments = merge_segments(frames, np.tile([0.2, -0.1], (10, 1)), np.full(10, 0.8), tolerance=0.05)
    assert len(segments) == 1
    s = segments[0]
    assert (s.start, s.end, s.valence, s.arousal, s.score) == (0, 9, pytest.approx(0.2), pytest.approx(-0.1), 0.8)


def test_error_bounded_by_tolerance_everywhere():
    rng = np.random.default_rng(0)
    frames = np.arange(300)
    values = np.cumsum(rng.normal(0, 0.03, (300, 2)), axis=0).clip(-1, 1)
    for tolerance in (0.02, 0.05, 0.1):
        segments = merge_segments(frames, values, np.ones(300), tolerance)
        curve = expand_segments(segments, 300)
        assert np.abs(curve - values).max() <= tolerance + 1e-12
    coarse, fine = (len(merge_segments(frames, values, np.ones(300), t)) for t in (0.1, 0.02))
    assert coarse < fine


def test_a_jump_splits_and_the_midpoint_is_used():
    values = np.array([[0.0, 0.0], [0.06, 0.0], [0.5, 0.0], [0.5, 0.0]])
    segments = merge_segments(np.arange(4), values, np.array([1.0, 0.5, 0.2, 0.4]), tolerance=0.05)
    assert [(s.start, s.end) for s in segments] == [(0, 1), (2, 3)]
    assert segments[0].valence == pytest.approx(0.03)  # (0 + 0.06) / 2
    assert segments[0].score == pytest.approx(0.75)
    assert segments[1].score == pytest.approx(0.3)


def test_gaps_in_frames_split_segments():
    frames = np.array([0, 1, 2, 5, 6])
    segments = merge_segments(frames, np.zeros((5, 2)), np.ones(5), tolerance=0.1)
    assert [(s.start, s.end) for s in segments] == [(0, 2), (5, 6)]
    curve = expand_segments(segments, 8)
    assert np.isnan(curve[[3, 4, 7]]).all()


def test_max_length_and_edge_cases():
    assert merge_segments(np.array([], dtype=int), np.zeros((0, 2)), np.zeros(0), 0.1) == []
    segments = merge_segments(np.arange(10), np.zeros((10, 2)), np.ones(10), 0.1, max_length=4)
    assert [(s.start, s.end) for s in segments] == [(0, 3), (4, 7), (8, 9)]
    with pytest.raises(ValueError, match="increasing"):
        merge_segments(np.array([2, 1]), np.zeros((2, 2)), np.ones(2), 0.1)
    with pytest.raises(ValueError, match="length"):
        merge_segments(np.arange(3), np.zeros((2, 2)), np.ones(3), 0.1)


def test_budget_raises_the_tolerance_until_the_segments_fit():
    rng = np.random.default_rng(1)
    values = np.cumsum(rng.normal(0, 0.04, (400, 2)), axis=0).clip(-1, 1)
    frames = np.arange(400)
    free = merge_segments(frames, values, np.ones(400), 0.05)
    segments, tolerance = merge_within_budget(frames, values, np.ones(400), 0.05, max_segments=len(free) // 3)
    assert len(segments) <= len(free) // 3 and tolerance > 0.05
    assert np.abs(expand_segments(segments, 400) - values).max() <= tolerance + 1e-12
    same, kept = merge_within_budget(frames, values, np.ones(400), 0.05, max_segments=len(free))
    assert kept == 0.05 and len(same) == len(free)
    capped, top = merge_within_budget(frames, values, np.ones(400), 0.05, max_segments=1, max_tolerance=0.1)
    assert top == 0.1 and len(capped) > 1  # the cap wins over the budget
