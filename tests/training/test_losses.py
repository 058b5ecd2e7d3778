import math

import pytest
import torch

from mtclar.training.losses import (
    TASKS,
    VAL_TASK_WEIGHTS,
    ccc,
    cosine_embedding_loss,
    dynamic_mse_weight,
    mse_ccc_loss,
    random_task_weights,
    similarity_loss,
    total_loss,
)


def test_similarity_cross_entropy_by_hand():
    logits = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    target = torch.tensor([1, 1])
    # row 1: -log(1/2); row 2: -log(e^0 / (e^2 + e^0))
    expected = (math.log(2) + math.log(math.exp(2) + 1)) / 2
    assert float(similarity_loss(logits, target)) == pytest.approx(expected, rel=1e-6)


def test_ccc_by_hand():
    x, y = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 4.0, 6.0])
    # means 2, 4; population variances 2/3, 8/3; covariance 4/3 -> 2 * 4/3 / (2/3 + 8/3 + 4) = 8/22
    assert float(ccc(x, y)) == pytest.approx(8 / 22, rel=1e-6)
    assert float(ccc(x, x)) == pytest.approx(1.0, rel=1e-6)
    assert float(ccc(x, -x + 4)) == pytest.approx(-1.0, rel=1e-6)


def test_dynamic_mse_weight_schedule():
    assert dynamic_mse_weight(0, 40) == 0.0
    assert dynamic_mse_weight(10, 40) == pytest.approx(1 / 16)
    assert dynamic_mse_weight(20, 40) == pytest.approx(0.25)
    assert dynamic_mse_weight(39, 40) == pytest.approx((39 / 40) ** 2)
    with pytest.raises(ValueError):
        dynamic_mse_weight(0, 0)


def test_mse_ccc_loss_by_hand():
    pred, target = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 4.0, 6.0])
    mse = (1 + 4 + 9) / 3
    assert float(mse_ccc_loss(pred, target, 0.25)) == pytest.approx(0.25 * mse + 0.75 * (1 - 8 / 22), rel=1e-6)
    assert float(mse_ccc_loss(pred, target, 1.0)) == pytest.approx(mse, rel=1e-6)
    assert float(mse_ccc_loss(pred, target, 0.0)) == pytest.approx(1 - 8 / 22, rel=1e-6)


def test_mse_ccc_loss_masks_unknown_labels():
    pred = torch.tensor([1.0, 2.0, 3.0, 100.0], requires_grad=True)
    target = torch.tensor([2.0, 4.0, 6.0, 0.0])
    mask = torch.tensor([True, True, True, False])
    loss = mse_ccc_loss(pred, target, 0.5, mask)
    assert float(loss.detach()) == pytest.approx(0.5 * 14 / 3 + 0.5 * (1 - 8 / 22), rel=1e-6)
    loss.backward()
    assert pred.grad[3] == 0
    # one known pair: CCC is undefined, only the MSE part counts; none: 0 and still differentiable
    one = torch.tensor([True, False, False, False])
    assert float(mse_ccc_loss(pred, target, 0.5, one).detach()) == pytest.approx(0.5 * 1.0)
    none = mse_ccc_loss(pred, target, 0.5, torch.zeros(4, dtype=torch.bool))
    assert float(none.detach()) == 0.0
    none.backward()


def test_cosine_embedding_loss_by_hand():
    e1 = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    e2 = torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.0, 1.0]])
    similar = torch.tensor([1, 0, 0])
    c = 1 / math.sqrt(2)
    # similar: 1 - cos; dissimilar: max(0, cos - 0.25)
    expected = ((1 - c) + (c - 0.25) + 0.0) / 3
    assert float(cosine_embedding_loss(e1, e2, similar)) == pytest.approx(expected, rel=1e-6)


def test_random_task_weights_are_convex_and_fresh_every_draw():
    generator = torch.Generator().manual_seed(0)
    draws = torch.stack([random_task_weights(generator) for _ in range(200)])
    assert draws.shape == (200, 4)
    assert (draws >= 0).all()
    torch.testing.assert_close(draws.sum(1), torch.ones(200))
    assert len({tuple(d.tolist()) for d in draws}) == 200
    # uniform draws normalised: every task gets about a quarter on average
    torch.testing.assert_close(draws.mean(0), torch.full((4,), 0.25), atol=0.04, rtol=0)


def test_total_loss_weights_tasks_in_order():
    parts = {"valence": torch.tensor(1.0), "similarity": torch.tensor(2.0), "arousal": torch.tensor(3.0),
             "embedding": torch.tensor(4.0)}
    assert TASKS == ("valence", "similarity", "arousal", "embedding")
    assert float(total_loss(parts, VAL_TASK_WEIGHTS)) == pytest.approx(2.5)
    assert float(total_loss(parts, torch.tensor([0.1, 0.2, 0.3, 0.4]))) == pytest.approx(0.1 + 0.4 + 0.9 + 1.6)
