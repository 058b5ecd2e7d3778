"""Per-dimension face signals of the floor's cold-start correction (model/face_signals.py), by hand."""

import math

import numpy as np
import pytest

from mtclar.model.errors import ConfigError
from mtclar.model.face_signals import INTENSITY_EPS, happiness, neutral_intensity, va_signals
from mtclar.model.fewshot import FewShotLabeler, FloorConfig, FrameFeatures, LabelerConfig

CLASSES = ("neutral", "happy", "sad", "surprised")


def test_intensity_is_minus_log_neutral():
    probs = np.array([[1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [0.0, 0, 1, 0]])
    np.testing.assert_allclose(neutral_intensity(probs, CLASSES),
                               [-math.log(1 + INTENSITY_EPS), -math.log(0.5 + INTENSITY_EPS), -math.log(INTENSITY_EPS)])
    with pytest.raises(ValueError, match="neutral"):
        neutral_intensity(probs[:, 1:], CLASSES[1:])


def test_happiness_is_the_log_odds_of_positive_against_neutral_and_negative():
    # surprise (circumplex valence 0.2) counts in neither side
    probs = np.array([[0.2, 0.6, 0.1, 0.1], [0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 0.25, 0.25]])
    e = INTENSITY_EPS
    np.testing.assert_allclose(happiness(probs, CLASSES),
                               [math.log(0.6 + e) - math.log(0.3 + e), math.log(e) - math.log(0.5 + e),
                                math.log(0.25 + e) - math.log(0.5 + e)])
    with pytest.raises(ValueError, match="positive"):
        happiness(probs[:, [0, 2]], ("neutral", "sad"))


def test_va_signals_pick_and_scale_per_dimension():
    probs = np.array([[0.2, 0.6, 0.1, 0.1], [0.7, 0.1, 0.1, 0.1]])
    out = va_signals(probs, CLASSES, ("circumplex", "intensity"), (2.0, 0.5))
    np.testing.assert_allclose(out[:, 0], 2.0 * (probs @ [0.0, 0.8, -0.6, 0.2]))
    np.testing.assert_allclose(out[:, 1], 0.5 * neutral_intensity(probs, CLASSES))
    np.testing.assert_allclose(va_signals(probs, CLASSES, ("happiness", "circumplex"))[:, 0], happiness(probs, CLASSES))
    with pytest.raises(ValueError, match="unknown face signal"):
        va_signals(probs, CLASSES, ("circumplex", "motion"))


def test_floor_config_refuses_an_unknown_signal():
    with pytest.raises(ConfigError, match="floor.signals"):
        LabelerConfig(floor=FloorConfig(signals=("circumplex", "motion")))


def _frames(probs: np.ndarray) -> FrameFeatures:
    n = len(probs)
    return FrameFeatures(np.random.default_rng(0).normal(size=(n, 4)), np.ones(n, dtype=bool),
                         np.arange(n) / 10.0, probs, CLASSES)


@pytest.mark.parametrize("signals", [("circumplex", "circumplex"), ("happiness", "intensity")])
def test_one_anchor_adds_weight_times_the_signal_change_and_is_exact_at_the_anchor(signals):
    # a face that turns from neutral to happy and back, slowly (smoothing leaves it nearly as is)
    n = 60
    p_happy = 0.9 * np.sin(np.linspace(0, np.pi, n)) ** 2
    probs = np.stack([1 - p_happy, p_happy, np.zeros(n), np.zeros(n)], axis=1)
    floor = FloorConfig(signals=signals, signal_gain=(0.3, 0.2), default_weight=(0.5, 0.5), smooth_s=0.0)
    out = FewShotLabeler(LabelerConfig(method="kernel", floor=floor)).label(_frames(probs), {0: (0.1, -0.2)})
    expected = 0.5 * va_signals(probs, CLASSES, signals, (0.3, 0.2))
    expected = np.clip(np.array([0.1, -0.2]) + expected - expected[0], -1, 1)
    np.testing.assert_allclose(out.values, expected, atol=1e-12)
    assert out.valence[0] == 0.1 and out.arousal[0] == -0.2
    # both signals say the happy face is higher in valence and in arousal than the neutral one
    assert out.valence[n // 2] > 0.1 and out.arousal[n // 2] > -0.2
