import numpy as np
import pytest
import torch

from mtclar.model.checkpoint import Checkpoint, load_checkpoint
from mtclar.model.errors import DataError
from mtclar.training.config import SLTrainConfig
from mtclar.training.supervised import attach_sl_head, sl_metrics, train_supervised_head

SMALL = SLTrainConfig(hidden=(64, 32), dropout=0.1, batch_size=64, epochs=30, step_size=15)


CENTRES = np.random.default_rng(100).normal(0, 1, size=(3, 16))


def _data(seed=0, n=300):
    rng = np.random.default_rng(seed)
    classes = rng.choice(3, size=n, p=[0.8, 0.15, 0.05])  # unbalanced
    centres = CENTRES
    embeddings = centres[classes] + 0.3 * rng.normal(size=(n, 16))
    va = np.stack([np.tanh(embeddings[:, 0]), np.tanh(embeddings[:, 1])], axis=1) * 0.8
    return embeddings.astype(np.float32), classes, va


def test_classes_are_learned_with_balanced_sampling():
    emb, classes, va = _data()
    head, history = train_supervised_head(emb, classes, va, SMALL, seed=0, val=_data(1))
    assert head.config.n_classes == 8 and not head.config.regress_va
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["val_class_acc"] > 0.9
    assert [h["lr"] for h in history][14:16] == pytest.approx([1e-4, 1e-4])  # StepLR(15, 0.1) after 15 epochs
    assert history[13]["lr"] == pytest.approx(1e-3)


def test_va_regression_and_both_targets():
    emb, classes, va = _data()
    va[::4] = np.nan  # unlabelled rows do not count towards the V/A loss
    config = SLTrainConfig(**{**SMALL.__dict__, "target": "both"})
    head, history = train_supervised_head(emb, classes, va, config, seed=0)
    metrics = sl_metrics(head, *_data(2))
    assert head.config.regress_va and head.config.n_classes == 8
    assert metrics["valence_ccc"] > 0.6 and metrics["class_acc"] > 0.9
    with pytest.raises(DataError):
        train_supervised_head(emb[:1], classes[:1], va[:1], SMALL)


def test_same_seed_same_head():
    emb, classes, va = _data()
    a, _ = train_supervised_head(emb, classes, va, SLTrainConfig(**{**SMALL.__dict__, "epochs": 2}), seed=3)
    b, _ = train_supervised_head(emb, classes, va, SLTrainConfig(**{**SMALL.__dict__, "epochs": 2}), seed=3)
    for key, value in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[key], value)


def test_attach_keeps_the_rest_of_the_checkpoint(tmp_path):
    emb, classes, va = _data()
    head, _ = train_supervised_head(emb, classes, va, SLTrainConfig(**{**SMALL.__dict__, "epochs": 1}), seed=0)
    base = load_checkpoint(None)
    with_head = attach_sl_head(base, head, {"target": "classes"}, {"val": {"class_acc": 1.0}})
    assert isinstance(with_head, Checkpoint) and with_head.name == f"{base.name}-sl"
    loaded = load_checkpoint(with_head.save(tmp_path / "sl"))
    assert loaded.sl_trained and loaded.encoder == base.encoder and loaded.labeler == base.labeler
    assert loaded.build_sl_head() is not None and not base.sl_trained
