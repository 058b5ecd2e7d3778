import math

import numpy as np
import pytest

from mtclar.model.metrics import accuracy, ccc, pcc, per_video_mean, regression_metrics, rmse, sagr, va_metrics

PRED = np.array([1.0, 2.0, 3.0, 4.0])
TRUE = np.array([2.0, 2.0, 4.0, 4.0])


def test_rmse_by_hand():
    # differences -1, 0, -1, 0 -> mean square 2/4 = 0.5 -> sqrt(0.5)
    assert rmse(PRED, TRUE) == pytest.approx(math.sqrt(0.5))
    assert rmse(TRUE, TRUE) == 0.0


def test_pcc_by_hand():
    # pred - 2.5 = -1.5 -0.5 0.5 1.5; true - 3 = -1 -1 1 1
    # sum of products = 1.5 + 0.5 + 0.5 + 1.5 = 4; sum squares 5 and 4 -> 4 / sqrt(20)
    assert pcc(PRED, TRUE) == pytest.approx(4 / math.sqrt(20))
    assert pcc(PRED, -TRUE) == pytest.approx(-4 / math.sqrt(20))


def test_ccc_by_hand_uses_population_moments():
    # population: cov = 4/4 = 1, var_p = 5/4, var_t = 4/4 = 1, (mean_p - mean_t)^2 = (2.5 - 3)^2 = 0.25
    # ccc = 2 * 1 / (1.25 + 1 + 0.25) = 0.8   (sample moments would give (8/3) / (5/3 + 4/3 + 0.25) = 0.8205)
    assert ccc(PRED, TRUE) == pytest.approx(0.8)
    # the design's form: 2 * pcc * sd_p * sd_t / (...) with population sd
    assert ccc(PRED, TRUE) == pytest.approx(2 * pcc(PRED, TRUE) * math.sqrt(1.25) * 1.0 / 2.5)
    assert ccc(TRUE, TRUE) == pytest.approx(1.0)


def test_ccc_is_symmetric_and_penalises_bias():
    assert ccc(TRUE, PRED) == pytest.approx(ccc(PRED, TRUE))
    # shifting by a constant keeps pcc = 1 but ccc < 1: var 1.25 each, shift 1 -> 2.5 / (2.5 + 1)
    assert pcc(PRED + 1, PRED) == pytest.approx(1.0)
    assert ccc(PRED + 1, PRED) == pytest.approx(2.5 / 3.5)


def test_sagr_by_hand():
    pred = np.array([0.5, -0.2, 0.0, 0.3])
    true = np.array([0.4, 0.1, 0.0, -0.3])
    # signs + - 0 + vs + + 0 -: frames 0 and 2 agree (0 is its own sign) -> 2/4
    assert sagr(pred, true) == pytest.approx(0.5)


def test_accuracy_by_hand():
    assert accuracy(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2])) == pytest.approx(0.75)


def test_constant_arrays():
    constant = np.array([0.3, 0.3, 0.3])
    varying = np.array([0.0, 0.5, 1.0])
    assert math.isnan(pcc(constant, varying))
    assert math.isnan(pcc(varying, constant))
    assert math.isnan(pcc(constant, constant))
    # both constant and equal: perfect agreement
    assert ccc(constant, constant) == 1.0
    # both constant, different: cov = var = 0, (0.3 - 0.1)^2 > 0 -> 0
    assert ccc(constant, np.full(3, 0.1)) == pytest.approx(0.0)
    # one constant: cov = 0 -> 0
    assert ccc(constant, varying) == pytest.approx(0.0)
    assert rmse(constant, constant) == 0.0


@pytest.mark.parametrize("metric", [rmse, pcc, ccc, sagr, accuracy])
def test_length_mismatch_and_empty_raise(metric):
    with pytest.raises(ValueError, match="differ in length: 3 vs 2"):
        metric(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="no frames"):
        metric(np.array([]), np.array([]))


def test_inputs_are_flattened_lists_accepted():
    assert rmse([[1.0], [2.0]], [1.0, 4.0]) == pytest.approx(math.sqrt(2.0))


def test_va_metrics_pools_each_dimension():
    pred = {"valence": PRED, "arousal": TRUE}
    true = {"valence": TRUE, "arousal": TRUE}
    out = va_metrics(pred, true)
    assert set(out) == {"valence", "arousal"}
    assert set(out["valence"]) == {"rmse", "pcc", "ccc", "sagr"}
    assert out["valence"] == regression_metrics(PRED, TRUE)
    assert out["valence"]["ccc"] == pytest.approx(0.8)
    assert out["arousal"] == {"rmse": 0.0, "pcc": pytest.approx(1.0), "ccc": pytest.approx(1.0), "sagr": 1.0}


def test_per_video_mean_skips_nan():
    a = {"valence": {"rmse": 0.1, "pcc": 0.5}, "arousal": {"rmse": 0.3, "pcc": float("nan")}}
    b = {"valence": {"rmse": 0.3, "pcc": float("nan")}, "arousal": {"rmse": 0.5, "pcc": float("nan")}}
    out = per_video_mean({"a": a, "b": b})
    # valence rmse (0.1 + 0.3) / 2; pcc only from a; arousal pcc NaN in every video -> NaN
    assert out["valence"]["rmse"] == pytest.approx(0.2)
    assert out["valence"]["pcc"] == pytest.approx(0.5)
    assert out["arousal"]["rmse"] == pytest.approx(0.4)
    assert math.isnan(out["arousal"]["pcc"])


def test_per_video_mean_of_nothing_raises():
    with pytest.raises(ValueError, match="no videos"):
        per_video_mean({})
