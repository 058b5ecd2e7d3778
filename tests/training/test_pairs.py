import numpy as np
import pytest

from mtclar.training.pairs import (
    VA_THRESHOLD,
    ClassPairSampler,
    VAPairSampler,
    balanced_flags,
    pair_targets,
    sample_class_pairs,
)


def test_balanced_flags_are_half_and_half():
    rng = np.random.default_rng(0)
    assert balanced_flags(10, rng).sum() == 5
    assert balanced_flags(11, rng).sum() in (5, 6)


def test_class_pairs_balanced_first_class_uniform_and_never_the_same_image():
    rng = np.random.default_rng(0)
    # very unbalanced classes: 500 of class 0, 50 of class 1, 5 of class 2, 2 of class 3; -1 never drawn
    classes = np.array([0] * 500 + [1] * 50 + [2] * 5 + [3] * 2 + [-1] * 20)
    pairs = sample_class_pairs(classes, 20000, rng)
    assert pairs.shape == (20000, 3)
    assert pairs[:, 2].sum() == 10000  # exactly 50/50
    assert (pairs[:, 0] != pairs[:, 1]).all()
    assert (classes[pairs[:, :2]] >= 0).all()
    same = classes[pairs[:, 0]] == classes[pairs[:, 1]]
    np.testing.assert_array_equal(same, pairs[:, 2] == 1)  # similar <=> same class
    first = np.bincount(classes[pairs[:, 0]], minlength=4) / len(pairs)
    np.testing.assert_allclose(first, 0.25, atol=0.02)  # first class uniform, not proportional to size


def test_class_pairs_resampled_every_epoch():
    classes = np.repeat(np.arange(4), 10)
    sampler = ClassPairSampler(classes)
    a = sampler.sample(len(classes), np.random.default_rng([0, 0]))
    b = sampler.sample(len(classes), np.random.default_rng([0, 1]))
    assert len(a) == len(classes)  # epoch length = number of rows
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, sampler.sample(len(classes), np.random.default_rng([0, 0])))


def test_class_pairs_degenerate_sets():
    rng = np.random.default_rng(0)
    one_each = sample_class_pairs(np.array([0, 1, 2]), 50, rng)  # no class has two images: all dissimilar
    assert one_each[:, 2].sum() == 0
    single_class = sample_class_pairs(np.array([4, 4, 4]), 50, rng)
    assert single_class[:, 2].all() and (single_class[:, 0] != single_class[:, 1]).all()
    with pytest.raises(ValueError):
        sample_class_pairs(np.array([2]), 5, rng)


def test_va_pairs_similar_by_distance_threshold():
    rng = np.random.default_rng(1)
    va = np.concatenate([rng.normal(0, 0.15, size=(400, 2)), rng.uniform(-1, 1, size=(100, 2))]).clip(-1, 1)
    va[::50] = np.nan  # unlabelled rows are never drawn
    sampler = VAPairSampler(va)
    pairs = sampler.sample(4000, np.random.default_rng(2))
    distance = np.linalg.norm(va[pairs[:, 0]] - va[pairs[:, 1]], axis=1)
    assert np.isfinite(distance).all()
    np.testing.assert_array_equal(pairs[:, 2] == 1, distance < VA_THRESHOLD)
    assert abs(pairs[:, 2].mean() - 0.5) < 0.02
    assert (pairs[:, 0] != pairs[:, 1]).all()


def test_va_pairs_first_image_balanced_over_cells():
    rng = np.random.default_rng(3)
    # 900 rows near neutral, 100 in the happy corner: the corner is drawn first as often as its cell share says
    va = np.concatenate([rng.normal(0.1, 0.03, size=(900, 2)), rng.normal(0.8, 0.03, size=(100, 2))])
    pairs = VAPairSampler(va).sample(4000, np.random.default_rng(4))
    corner = (va[pairs[:, 0], 0] > 0.5).mean()
    assert 0.4 < corner < 0.6  # two occupied cells, each about half of the first draws


def test_pair_targets_delta_convention():
    va = np.array([[0.5, 0.1], [-0.2, 0.3], [np.nan, np.nan]])
    delta, known = pair_targets(np.array([[0, 1, 0], [1, 0, 0], [0, 2, 1]]), va)
    np.testing.assert_allclose(delta[0], [0.7, -0.2])  # label(first) - label(second)
    np.testing.assert_allclose(delta[1], [-0.7, 0.2])
    assert known.tolist() == [True, True, False] and (delta[2] == 0).all()
