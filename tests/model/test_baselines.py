import numpy as np
import pytest

from mtclar.model.baselines import hold_last_anchor, linear_interpolation


def test_hold_last_anchor_copies_the_preceding_anchor():
    frames = np.arange(10)
    anchor_frames = np.array([3, 7])
    values = np.array([[0.1, 0.2], [0.5, -0.5]])
    out = hold_last_anchor(frames, anchor_frames, values)
    assert out.shape == (10, 2)
    # 0..2 precede every anchor: they take the first; 3..6 the anchor at 3; 7..9 the anchor at 7
    np.testing.assert_array_equal(out[:7], np.tile([0.1, 0.2], (7, 1)))
    np.testing.assert_array_equal(out[7:], np.tile([0.5, -0.5], (3, 1)))


def test_hold_last_anchor_sorts_the_anchors():
    anchor_frames = np.array([8, 0, 4])
    values = np.array([[0.8, 0.8], [0.0, 0.0], [0.4, -0.4]])
    out = hold_last_anchor(np.array([0, 3, 4, 5, 7, 8, 20]), anchor_frames, values)
    np.testing.assert_array_equal(out[:, 0], [0.0, 0.0, 0.4, 0.4, 0.4, 0.8, 0.8])
    np.testing.assert_array_equal(out[:, 1], [0.0, 0.0, -0.4, -0.4, -0.4, 0.8, 0.8])


def test_linear_interpolation_between_anchors_constant_outside():
    anchor_frames = np.array([6, 2])  # unsorted on purpose
    values = np.array([[1.0, -1.0], [0.0, 0.0]])
    out = linear_interpolation(np.array([0, 2, 3, 4, 5, 6, 9]), anchor_frames, values)
    # frame 3 is 1/4 of the way from 2 to 6: 0 + (1 - 0) * 1/4 = 0.25; frame 4: 0.5; frame 5: 0.75
    np.testing.assert_allclose(out[:, 0], [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0])
    np.testing.assert_allclose(out[:, 1], [0.0, 0.0, -0.25, -0.5, -0.75, -1.0, -1.0])


def test_single_anchor_is_constant():
    out = linear_interpolation(np.arange(4), np.array([2]), np.array([[0.3, -0.1]]))
    np.testing.assert_allclose(out, np.tile([0.3, -0.1], (4, 1)))
    np.testing.assert_allclose(hold_last_anchor(np.arange(4), np.array([2]), np.array([[0.3, -0.1]])), out)


@pytest.mark.parametrize("baseline", [hold_last_anchor, linear_interpolation])
def test_no_anchor_raises(baseline):
    with pytest.raises(ValueError, match="at least one anchor"):
        baseline(np.arange(3), np.array([], dtype=int), np.zeros((0, 2)))
