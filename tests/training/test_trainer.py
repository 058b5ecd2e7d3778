"""The training loop on the tiny smoke set: a real `mtclar train` run, loss on a fixed batch, resume."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mtclar.model.checkpoint import load_checkpoint
from mtclar.model.encoders import create_encoder
from mtclar.training.config import TrainConfig, override
from mtclar.training.datasets import PairDataset, split_by_group
from mtclar.training.trainer import Trainer

pytestmark = pytest.mark.slow  # trains

SMALL = {"model.encoder_mode": "frozen", "model.heads.hidden": [64, 32], "model.heads.dropout": 0.1,
         "optim.batch_size": 16, "optim.lr": 1e-3, "run.workers": 0}


def _config(tmp_path, **values) -> TrainConfig:
    return override(TrainConfig(), {**SMALL, "run.out": str(tmp_path), **values})


def test_smoke_training_run_writes_checkpoints_log_and_state(smoke_run):
    out = smoke_run["out"]
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["stage"]) for r in records] == [(1, "train"), (1, "val"), (2, "train"), (2, "val")]
    for r in records:
        assert np.isfinite(r["loss"]) and 0 <= r["similarity_acc"] <= 1 and r["pairs_per_s"] > 0
        assert {"similarity", "valence", "arousal", "embedding", "delta_valence_rmse", "delta_arousal_ccc"} <= set(r)
    val = [r for r in records if r["stage"] == "val"]
    assert val[0]["pairs"] == 12  # 12 face_noface frames with a face; the 2 cartoon frames were dropped
    assert val[1]["loss"] < val[0]["loss"]  # seeded: the validation loss goes down
    best, final = load_checkpoint(out / "best"), load_checkpoint(out / "final")
    assert final.name == "mtclar-faceapi-expression-train-e002" and final.heads_trained
    assert final.heads.hidden == (2048, 1024, 512, 128)
    assert final.trained_on["kind"] == "mtclar-train" and final.trained_on["similarity"] == "class"
    assert final.trained_on["data"]["rows"] == 30 and final.trained_on["encoder_mode"] == "frozen"
    assert final.metrics["val"]["similarity_acc"] is not None and final.metrics["epoch"] == 2
    assert not final.encoder["weights_in_checkpoint"] and not any(k.startswith("encoder.") for k in final.state)
    assert best.name.startswith("mtclar-faceapi-expression-train-e00")
    assert (out / "state.pt").is_file() and (out / "config.yaml").is_file()


def test_training_loss_goes_down_on_a_fixed_batch(smoke_items, tmp_path):
    train, _, _ = smoke_items
    frames = [i for i in train.items if i.has_va]  # the video frames: every pair has V/A targets
    trainer = Trainer(_config(tmp_path), create_encoder("faceapi-expression"), frames, [], tmp_path)
    pairs = trainer.train_sampler.sample(16, np.random.default_rng(0))
    batch = next(iter(DataLoader(PairDataset(trainer.val_crops, pairs, trainer.train_va), batch_size=16)))
    assert batch["known"].all()

    def val_losses() -> dict[str, float]:
        trainer._set_mode(False)
        with torch.no_grad():
            loss, parts, _ = trainer._step(batch, "val")
        return {"loss": float(loss), **{k: float(v) for k, v in parts.items()}}

    before = val_losses()
    for _ in range(30):
        trainer._set_mode(True)
        loss, _, _ = trainer._step(batch, "train")
        trainer.optimizer.zero_grad()
        loss.backward()
        trainer.optimizer.step()
    after = val_losses()
    assert after["loss"] < before["loss"]
    # the frozen encoder's cosine-embedding term cannot move; the three heads' losses must
    heads = ("similarity", "valence", "arousal")
    assert sum(after[k] for k in heads) < 0.7 * sum(before[k] for k in heads), (before, after)
    assert after["embedding"] == pytest.approx(before["embedding"], rel=1e-5)


class Interrupted(Exception):
    pass


def test_resume_continues_exactly_like_an_uninterrupted_run(smoke_items, tmp_path):
    train, val, _ = smoke_items
    items, val_items = train.items[:20], val.items[:8]
    config = _config(tmp_path, **{"optim.epochs": 3, "optim.plateau_patience": 0})

    def trainer(folder):
        return Trainer(replace(config, run=replace(config.run, out=str(folder))), create_encoder("faceapi-expression"),
                       items, val_items, folder)

    straight = trainer(tmp_path / "straight")
    straight.fit()

    crashing = trainer(tmp_path / "resumed")
    run = crashing._run

    def crash_in_epoch_3(dataset, stage):
        if crashing.epoch == 2 and stage == "val":
            raise Interrupted  # killed in the middle of the last epoch, after its training pass
        return run(dataset, stage)

    crashing._run = crash_in_epoch_3
    with pytest.raises(Interrupted):
        crashing.fit()
    assert load_checkpoint(tmp_path / "resumed" / "best").name.endswith(("-e001", "-e002"))

    resumed = trainer(tmp_path / "resumed")
    resumed.fit(resume=tmp_path / "resumed")
    for key, value in straight.heads.state_dict().items():
        torch.testing.assert_close(resumed.heads.state_dict()[key], value, msg=key)
    assert resumed.scheduler.state_dict() == straight.scheduler.state_dict()
    assert resumed.optimizer.param_groups[0]["lr"] == straight.optimizer.param_groups[0]["lr"]
    log_a = [json.loads(x) for x in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    log_b = [json.loads(x) for x in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["stage"]) for r in log_b] == [(r["epoch"], r["stage"]) for r in log_a]
    assert [r["loss"] for r in log_b] == pytest.approx([r["loss"] for r in log_a], rel=1e-5)
    assert load_checkpoint(tmp_path / "resumed" / "final").name.endswith("-e003")


def test_resume_refuses_another_head_config(smoke_items, tmp_path):
    train, val, _ = smoke_items
    config = _config(tmp_path, **{"optim.epochs": 1})
    Trainer(config, create_encoder("faceapi-expression"), train.items[:12], val.items[:6], tmp_path).fit()
    other = override(config, {"model.heads.hidden": [32], "optim.epochs": 2})
    trainer = Trainer(other, create_encoder("faceapi-expression"), train.items[:12], val.items[:6], tmp_path)
    with pytest.raises(Exception, match="model.heads differs"):
        trainer.fit(tmp_path)


def test_partial_and_finetune_modes_train_the_encoder(smoke_items, tmp_path):
    train, val, _ = smoke_items
    for mode, trained in (("partial", ["dense3"]), ("finetune", ["dense0", "dense1", "dense2", "dense3"])):
        encoder = create_encoder("faceapi-expression")
        before = {k: v.clone() for k, v in encoder.state_dict().items()}
        config = _config(tmp_path / mode, **{"model.encoder_mode": mode, "optim.epochs": 1})
        trainer = Trainer(config, encoder, train.items[:16], val.items[:4], tmp_path / mode)
        assert trainer.trainable_encoder == trained
        trainer.fit()
        changed = {k.split(".")[0] for k, v in encoder.state_dict().items() if not torch.equal(v, before[k])}
        assert changed == set(trained)  # fc (the expression classifier) never trains
        checkpoint = load_checkpoint(tmp_path / mode / "final")
        assert checkpoint.encoder["weights_in_checkpoint"]
        assert any(k.startswith("encoder.dense0.") for k in checkpoint.state)


def test_split_by_group_never_splits_a_video(smoke_items):
    train, _, _ = smoke_items
    kept, held = split_by_group(train.items, 0.3, seed=0)
    assert kept and held and len(kept) + len(held) == len(train.items)
    assert not {i.group for i in kept} & {i.group for i in held}
