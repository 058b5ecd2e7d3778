"""Agreement numbers against the textbook formulas, computed by hand on small arrays."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from mtclar.model.agreement import (
    RatingTable,
    agreement,
    icc,
    interval_alpha,
    mean_pairwise_ccc,
    pooled_agreement,
    runs_from_spans,
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
    assert interval_alpha(table) == pytest.approx(hand_alpha_interval(table.values), abs=1e-12)


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


def krippendorff_alpha(values: np.ndarray) -> float:
    import krippendorff

    return float(krippendorff.alpha(reliability_data=values, level_of_measurement="interval"))


@pytest.mark.parametrize("seed", range(6))
def test_alpha_equals_the_krippendorff_package_with_missing_values(seed: int) -> None:
    rng = np.random.default_rng(seed)
    raters, units = int(rng.integers(2, 5)), int(rng.integers(5, 40))
    values = np.round(rng.uniform(-1, 1, (raters, units)), 2)
    values[rng.random((raters, units)) < 0.3] = np.nan
    table = RatingTable(tuple("abcd"[:raters]), values)
    assert interval_alpha(table) == pytest.approx(krippendorff_alpha(values), abs=1e-10)


def test_alpha_uses_every_frame_of_a_fine_grid() -> None:
    """5,000 frames on the sliders' 0.01 grid (201 values): exact, no frame left out."""
    rng = np.random.default_rng(1)
    first = np.round(np.cumsum(rng.normal(0, 0.02, 5000)).clip(-1, 1), 2)
    second = np.round((first + rng.normal(0, 0.05, 5000)).clip(-1, 1), 2)
    values = np.stack([first, second])
    assert np.unique(values).size > 100
    assert interval_alpha(RatingTable(("a", "b"), values)) == pytest.approx(krippendorff_alpha(values), abs=1e-10)


def test_runs_weighted_by_length_equal_the_frame_by_frame_scores() -> None:
    """Segments as runs: every score equals the one over the expanded frames (pingouin for ICC)."""
    import pandas as pd
    import pingouin

    spans = {"a": [(0, 9, 0.1, 0.2), (10, 29, 0.4, 0.3), (30, 39, -0.2, 0.0), (5, 14, 0.3, 0.3)],
             "b": [(0, 11, 0.2, 0.2), (12, 24, 0.5, 0.4), (25, 44, -0.1, 0.1)],
             "c": [(3, 20, 0.0, 0.1), (21, 35, 0.35, 0.2)]}
    frames = {r: {} for r in spans}
    for rater, found in spans.items():
        sums: dict[int, list] = {}
        for first, last, v, a in found:
            for f in range(first, last + 1):
                sums.setdefault(f, []).append((v, a))
        frames[rater] = {f: tuple(np.mean(vals, axis=0)) for f, vals in sums.items()}
    by_runs = agreement({r: runs_from_spans(s) for r, s in spans.items()})
    by_frames = agreement(frames)
    assert by_runs is not None and by_frames is not None
    assert (by_runs.units, by_runs.complete_units) == (by_frames.units, by_frames.complete_units) == (40, 33)
    for dim in ("valence", "arousal"):
        for score in ("ccc", "icc", "alpha"):
            assert by_runs.scores[dim][score] == pytest.approx(by_frames.scores[dim][score], abs=1e-10)
    common = range(3, 36)
    long = pd.DataFrame([{"unit": f, "rater": r, "rating": frames[r][f][0]} for f in common for r in spans])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecations inside pingouin
        reference = pingouin.intraclass_corr(long, targets="unit", raters="rater", ratings="rating")
    expected = float(reference[reference["Type"].isin(["ICC(A,1)", "ICC2"])]["ICC"].iloc[0])
    assert by_runs.scores["valence"]["icc"] == pytest.approx(expected, abs=1e-10)
    values = np.array([[frames[r].get(f, (np.nan,))[0] for f in range(45)] for r in sorted(spans)])
    assert by_runs.scores["valence"]["alpha"] == pytest.approx(krippendorff_alpha(values), abs=1e-10)


def test_a_million_frame_segment_costs_its_segments_not_its_frames() -> None:
    import time
    import tracemalloc

    tracemalloc.start()
    started = time.perf_counter()
    result = agreement({"a": runs_from_spans([(0, 999_999, 0.2, 0.1), (1_000_000, 1_999_999, 0.6, 0.3)]),
                        "b": runs_from_spans([(0, 1_499_999, 0.3, 0.1), (1_500_000, 1_999_999, 0.5, 0.4)])})
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert result is not None and result.units == 2_000_000
    assert seconds < 1.0 and peak < 5_000_000
