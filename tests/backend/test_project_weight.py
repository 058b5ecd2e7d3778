"""A video with too few segments to validate its own correction weight takes the project's."""

from __future__ import annotations

import pytest

from mtclar_backend.model import project_weight


def test_the_mean_of_the_other_videos_validated_weights():
    weights = {"a": [0.5, 0.25], "b": [1.0, 0.75], "c": [0.0, 0.0]}
    assert project_weight(weights, "c") == pytest.approx((0.75, 0.5))  # its own (stale) weight is left out
    assert project_weight(weights, "new") == pytest.approx((0.5, 1 / 3))


def test_no_other_validated_video_means_the_labellers_default():
    assert project_weight({}, "a") is None
    assert project_weight({"a": [1.0, 1.0]}, "a") is None
