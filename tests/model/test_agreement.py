"""Agreement numbers against the textbook formulas, computed by hand on small arrays."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mtclar.model.agreement import (
    RatingTable,
    agreement,
    alpha_step,
    icc,
    interval_alpha,
    mean_pairwise_ccc,
    pooled_agreement,
)

A = np.array([0.1, 0.3, 0.2, 0.6, 0.5, -0.2, 0.0])
B = np.array([0.2, 0.3, 0.1, 0.7, 0.4, -0.1, 0.2])
C = np.array([0.0, np.nan, 0.2, 0.5, 0.6, -0.3, np.nan])


def hand_ccc(x: np.ndarray, y: np.ndarray) -> float:
    mx, my = x.sum() / len(x), y.sum() / len(y)
    vx, vy = ((x - mx) ** 2).sum() / len(x), ((y - my) ** 2).sum() / len(y)
    cov = ((x - mx) * (y - my)).sum() / len(x)
    return 2 * cov / (vx + vy + (mx - my) ** 2)


def hand_icc_a1(y: np.ndarray) -> float:
    """Shrout & Fleiss ICC(2,1) from the two-way ANOVA mean squares; ``y`` is (units, raters)."""
    n, k = y.shape
    grand = y.mean()
    rows, cols = y.mean(axis=1), y.mean(axis=0)
    ms_rows = k * ((rows - grand) ** 2).sum() / (n - 1)
    ms_cols = n * ((cols - grand) ** 2).sum() / (k - 1)
    ms_error = ((y - rows[:, None] - cols[None, :] + grand) ** 2).sum() / ((n - 1) * (k - 1))
    return (ms_rows - ms_error) / (ms_rows + (k - 1) * ms_error + k * (ms_cols - ms_error) / n)


def hand_alpha_interval(values: np.ndarray) -> float:
    """1 - D_o / D_e over the pairable values; ``values`` is (raters, units), NaN = missing."""
    units = [col[np.isfinite(col)] for col in values.T]
    units = [u for u in units if len(u) >= 2]
    pooled = np.concatenate(units)
    n = len(pooled)
    observed = sum(sum((a - b) ** 2 for a, b in itertools.permutations(u, 2)) / (len(u) - 1) for u in units) / n
    expected = sum((a - b) ** 2 for a, b in itertools.permutations(pooled, 2)) / (n * (n - 1))
    return 1 - observed / expected


def test_icc_matches_anova_mean_squares() -> None:
    table = RatingTable(("a", "b"), np.stack([A, B]))
    assert icc(table) == pytest.approx(hand_icc_a1(np.stack([A, B], axis=1)), abs=1e-12)


def test_icc_three_raters_uses_the_frames_all_rated() -> None:
    table = RatingTable(("a", "b", "c"), np.stack([A, B, C]))
    done = np.isfinite(C)
    assert icc(table) == pytest.approx(hand_icc_a1(np.stack([A[done], B[done], C[done]], axis=1)), abs=1e-12)


def test_alpha_matches_observed_over_expected_disagreement() -> None:
    table = RatingTable(("a", "b", "c"), np.stack([A, B, C]))
    value, step = interval_alpha(table)
    assert step == 1
    assert value == pytest.approx(hand_alpha_interval(table.values), abs=1e-12)


def test_ccc_is_the_mean_over_rater_pairs_on_shared_frames() -> None:
    table = RatingTable(("a", "b", "c"), np.stack([A, B, C]))
    done = np.isfinite(C)
    expected = np.mean([hand_ccc(A, B), hand_ccc(A[done], C[done]), hand_ccc(B[done], C[done])])
    assert mean_pairwise_ccc(table) == pytest.approx(expected, abs=1e-12)


def test_agreement_of_a_video_compares_the_frames_both_labelled() -> None:
    first = {f: (float(v), float(-v)) for f, v in enumerate(A)}
    second = {f: (float(v), float(-v)) for f, v in enumerate(B)}
    second[100] = (0.9, 0.9)  # only the second rater labelled frame 100: not a unit
    result = agreement({"ann": first, "bob": second})
    assert result is not None and result.raters == ("ann", "bob") and result.units == len(A)
    assert result.scores["valence"]["ccc"] == pytest.approx(hand_ccc(A, B), abs=1e-12)
    assert result.scores["arousal"]["icc"] == pytest.approx(hand_icc_a1(np.stack([-A, -B], axis=1)), abs=1e-12)
    assert result.scores["valence"]["alpha"] == pytest.approx(hand_alpha_interval(np.stack([A, B])), abs=1e-12)
    assert result.to_dict()["icc_form"] == "ICC(A,1)"


def test_perfect_and_no_agreement() -> None:
    same = {f: (float(v), 0.5 * float(v)) for f, v in enumerate(A)}
    result = agreement({"a": same, "b": dict(same)})
    assert result is not None
    for dim in ("valence", "arousal"):
        assert result.scores[dim]["ccc"] == pytest.approx(1.0)
        assert result.scores[dim]["icc"] == pytest.approx(1.0)
        assert result.scores[dim]["alpha"] == pytest.approx(1.0)
    assert agreement({"a": {0: (0.1, 0.1)}, "b": {1: (0.2, 0.2)}}) is None  # no frame in common
    assert agreement({"a": same}) is None  # one rater


def test_undefined_scores_are_nan_and_json_null() -> None:
    constant = {f: (0.3, 0.3) for f in range(5)}
    result = agreement({"a": constant, "b": dict(constant)})
    assert result is not None
    assert np.isnan(result.scores["valence"]["icc"]) and np.isnan(result.scores["valence"]["alpha"])
    assert result.to_dict()["valence"]["icc"] is None


def test_pooled_matches_the_concatenated_table() -> None:
    videos = {"v1": {"a": {f: (float(A[f]), 0.0) for f in range(4)}, "b": {f: (float(B[f]), 0.0) for f in range(4)}},
              "v2": {"a": {f: (float(A[4 + f]), 0.1 * f) for f in range(3)},
                     "b": {f: (float(B[4 + f]), 0.1 * f) for f in range(3)}}}
    pooled = pooled_agreement(videos)
    assert pooled is not None and pooled.units == 7
    assert pooled.scores["valence"]["ccc"] == pytest.approx(hand_ccc(A, B), abs=1e-12)
    assert pooled.scores["valence"]["icc"] == pytest.approx(hand_icc_a1(np.stack([A, B], axis=1)), abs=1e-12)


def test_alpha_thins_units_past_the_memory_bound() -> None:
    assert alpha_step(1000, 10, max_cells=100_000) == 1
    assert alpha_step(1000, 20, max_cells=100_000) == 4
    rng = np.random.default_rng(0)
    first = rng.integers(-10, 11, 400)
    second = np.clip(first + rng.integers(-1, 2, 400), -10, 10)
    table = RatingTable(("a", "b"), np.stack([first, second]) / 10)
    assert np.unique(table.values).size == 21
    value, step = interval_alpha(table, max_cells=400 * 21 * 21 // 4)
    assert step == 4
    assert value == pytest.approx(hand_alpha_interval(table.values[:, ::4]), abs=1e-9)
