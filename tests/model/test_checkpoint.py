import json
import os
import stat

import pytest
import torch

import mtclar.model.checkpoint as checkpoint_module
from mtclar.model.checkpoint import (
    CONFIG_FILE,
    DEFAULT_CHECKPOINT,
    WEIGHTS_FILE,
    Checkpoint,
    load_checkpoint,
    state_with_prefix,
)
from mtclar.model.config_io import from_dict
from mtclar.model.errors import CheckpointError
from mtclar.model.fewshot import KernelConfig, LabelerConfig
from mtclar.model.siamese import HeadConfig, PairHeads, SLConfig, SupervisedHead

TINY_HEADS = HeadConfig(embed_dim=4, hidden=(8,), fusion="absdiff", dropout=0.1)
TINY_SL = SLConfig(embed_dim=4, hidden=(6,), n_classes=3, regress_va=True)


def encoder_record(encoder, **changes) -> dict:
    return {**encoder.config.to_dict(), "weights_id": encoder.weights_id, "weights_in_checkpoint": False, **changes}


def trained(encoder, name="run-1") -> tuple[Checkpoint, PairHeads, SupervisedHead]:
    torch.manual_seed(0)
    heads, sl_head = PairHeads(TINY_HEADS), SupervisedHead(TINY_SL)
    with torch.no_grad():  # running stats that differ from the defaults, so the round trip checks buffers too
        heads.valence[2].running_mean.uniform_()
    checkpoint = Checkpoint(
        name=name, encoder=encoder_record(encoder),
        labeler=LabelerConfig(method="mtclar", strategy="time", kernel=KernelConfig(prior_weight=(0.1, 0.2))),
        heads=TINY_HEADS, heads_trained=True, sl_head=TINY_SL, sl_trained=True,
        trained_on={"va": "test"}, metrics={"valence_ccc": 0.5},
        state={**state_with_prefix(heads, "heads."), **state_with_prefix(sl_head, "sl_head.")},
    )
    return checkpoint, heads, sl_head


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0)


def test_save_load_round_trip(encoder, tmp_path):
    checkpoint, heads, sl_head = trained(encoder)
    path = checkpoint.save(tmp_path / "ckpt")
    assert sorted(p.name for p in path.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    loaded = load_checkpoint(path)
    assert loaded.to_config() == checkpoint.to_config()
    assert loaded.heads == TINY_HEADS and loaded.sl_head == TINY_SL
    assert loaded.labeler.kernel.prior_weight == (0.1, 0.2)
    assert loaded.name == "run-1"
    assert_same_state(loaded.build_heads(), heads)
    assert_same_state(loaded.build_sl_head(), sl_head)
    assert not loaded.build_heads().training
    loaded.check_encoder(encoder)
    # the config file or the weights file name the same checkpoint
    assert load_checkpoint(path / CONFIG_FILE).name == "run-1"
    assert load_checkpoint(path / WEIGHTS_FILE).name == "run-1"


def test_save_replaces_an_existing_checkpoint_atomically(encoder, tmp_path):
    first, _, _ = trained(encoder, "first")
    first.save(tmp_path / "ckpt")
    second = Checkpoint(name="second", encoder=encoder_record(encoder))  # nothing trained: no weights file
    second.save(tmp_path / "ckpt")
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no staging or old folders left behind
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [CONFIG_FILE]  # replaced, not merged
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.name == "second" and loaded.state == {} and loaded.build_heads() is None


def test_saved_checkpoint_folder_follows_the_umask(encoder, tmp_path):
    previous = os.umask(0o022)
    try:
        path = Checkpoint(name="x", encoder=encoder_record(encoder)).save(tmp_path / "ckpt")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o755


def test_a_failed_save_keeps_the_old_checkpoint(encoder, tmp_path, monkeypatch):
    first, _, _ = trained(encoder, "first")
    first.save(tmp_path / "ckpt")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module, "save_file", broken)
    second, _, _ = trained(encoder, "second")
    with pytest.raises(OSError, match="disk full"):
        second.save(tmp_path / "ckpt")
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
    assert load_checkpoint(tmp_path / "ckpt").name == "first"


def test_default_checkpoint_is_the_cold_start(encoder):
    default = load_checkpoint(None)
    assert DEFAULT_CHECKPOINT.parts[-3:] == ("model", "weights", "default")
    assert default.name == "mtclar-faceapi-floor-4"
    assert default.encoder["name"] == "faceapi-expression"
    assert not default.heads_trained and default.heads is None and default.sl_head is None
    assert default.build_heads() is None and default.build_sl_head() is None
    assert default.labeler.method == "auto" and default.labeler.strategy == "floor"
    assert isinstance(default.labeler.kernel.prior_weight, tuple)
    default.check_encoder(encoder)  # the shipped encoder weights are the ones it was tuned with


def test_check_encoder_refuses_another_encoder(encoder):
    checkpoint = Checkpoint(name="emo", encoder={"name": "emonet", "input_size": 256})
    with pytest.raises(CheckpointError) as error:
        checkpoint.check_encoder(encoder)
    assert "'emonet'" in str(error.value) and "'faceapi-expression'" in str(error.value)


def test_check_encoder_refuses_other_weights(encoder):
    checkpoint = Checkpoint(name="w", encoder=encoder_record(encoder, weights_id="0123456789abcdef"))
    with pytest.raises(CheckpointError) as error:
        checkpoint.check_encoder(encoder)
    assert "0123456789abcdef" in str(error.value) and encoder.weights_id in str(error.value)
    # weights stored in the checkpoint are loaded over the encoder: no id to compare
    Checkpoint(name="w", encoder=encoder_record(encoder, weights_id="0123456789abcdef",
                                                weights_in_checkpoint=True)).check_encoder(encoder)


@pytest.mark.parametrize(("key", "value"), [("mean", [0.0, 0.0, 0.0]), ("std", [1.0, 1.0, 1.0]),
                                            ("input_size", 224), ("embed_dim", 512),
                                            ("expression_classes", ["neutral", "happy"])])
def test_check_encoder_refuses_other_preprocessing(encoder, key, value):
    checkpoint = Checkpoint(name="p", encoder=encoder_record(encoder, **{key: value}))
    with pytest.raises(CheckpointError) as error:
        checkpoint.check_encoder(encoder)
    message = str(error.value)
    assert key in message and str(value) in message and str(encoder.config.to_dict()[key]) in message


def write_checkpoint(folder, config: dict, weights: bytes | None = None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    if weights is not None:
        (folder / WEIGHTS_FILE).write_bytes(weights)
    return folder


def test_corrupt_weights_file(encoder, tmp_path):
    checkpoint, _, _ = trained(encoder)
    good = checkpoint.save(tmp_path / "good") / WEIGHTS_FILE
    for name, data in (("garbage", b"not a safetensors file"), ("empty", b""),
                       ("truncated", good.read_bytes()[: len(good.read_bytes()) // 2])):
        folder = write_checkpoint(tmp_path / name, checkpoint.to_config(), data)
        with pytest.raises(CheckpointError, match="corrupt weights file"):
            load_checkpoint(folder)


def test_missing_or_unreadable_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at .*missing"):
        load_checkpoint(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="expected a folder with config.json"):
        load_checkpoint(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / CONFIG_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(tmp_path / "bad")


def test_not_a_checkpoint_config(encoder, tmp_path):
    config = Checkpoint(name="x", encoder=encoder_record(encoder)).to_config()
    with pytest.raises(CheckpointError, match="format version 1"):
        load_checkpoint(write_checkpoint(tmp_path / "a", {**config, "format": "something-else"}))
    with pytest.raises(CheckpointError, match="format version 1"):
        load_checkpoint(write_checkpoint(tmp_path / "b", {**config, "format_version": 2}))
    del config["name"]
    with pytest.raises(CheckpointError, match="malformed config"):
        load_checkpoint(write_checkpoint(tmp_path / "c", config))


def test_unknown_config_keys_are_named(encoder, tmp_path):
    config = Checkpoint(name="x", encoder=encoder_record(encoder)).to_config()
    config["labeler"]["kernel"]["temprature"] = 0.1
    with pytest.raises(CheckpointError, match="labeler.kernel: unknown key.*temprature"):
        load_checkpoint(write_checkpoint(tmp_path / "a", config))
    config = Checkpoint(name="x", encoder=encoder_record(encoder), heads=TINY_HEADS).to_config()
    config["heads"]["layers"] = 3
    with pytest.raises(CheckpointError, match="heads: unknown key.*layers"):
        load_checkpoint(write_checkpoint(tmp_path / "b", config))


def test_config_io_from_dict():
    with pytest.raises(ValueError) as error:
        from_dict(KernelConfig, {"score_scale": 0.1, "colour": "red", "bogus": 1}, "where.kernel")
    assert str(error.value).startswith("where.kernel: unknown key(s) bogus, colour; known: similarity_temperature")
    with pytest.raises(ValueError, match="^KernelConfig: unknown key"):
        from_dict(KernelConfig, {"bogus": 1})
    # nested dataclasses are rebuilt, JSON lists become tuples, None gives the defaults
    config = from_dict(LabelerConfig, {"kernel": {"prior_weight": [0.2, 0.1]}, "method": "kernel"})
    assert config == LabelerConfig(method="kernel", kernel=KernelConfig(prior_weight=(0.2, 0.1)))
    assert from_dict(HeadConfig, None) == HeadConfig()
    assert from_dict(HeadConfig, {"hidden": [8, 4]}).hidden == (8, 4)


def test_heads_trained_without_weights(encoder, tmp_path):
    checkpoint = Checkpoint(name="liar", encoder=encoder_record(encoder), heads=TINY_HEADS, heads_trained=True)
    loaded = load_checkpoint(checkpoint.save(tmp_path / "ckpt"))
    with pytest.raises(CheckpointError, match="'liar' says heads was trained but has no weights"):
        loaded.build_heads()
    sl_only = Checkpoint(name="liar", encoder=encoder_record(encoder), sl_head=TINY_SL, sl_trained=True)
    with pytest.raises(CheckpointError, match="sl_head was trained but has no weights"):
        sl_only.build_sl_head()
    # untrained heads may be built from their config (random init)
    assert isinstance(Checkpoint(name="x", encoder={}, heads=TINY_HEADS).build_heads(), PairHeads)


def test_weights_that_do_not_fit(encoder):
    _, heads, _ = trained(encoder)
    checkpoint = Checkpoint(name="misfit", encoder=encoder_record(encoder), heads=HeadConfig(embed_dim=4, hidden=(16,)),
                            heads_trained=True, state=state_with_prefix(heads, "heads."))
    with pytest.raises(CheckpointError, match="'misfit': heads weights do not fit"):
        checkpoint.build_heads()


def test_state_with_prefix():
    heads = PairHeads(TINY_HEADS)
    state = state_with_prefix(heads, "heads.")
    assert set(state) == {f"heads.{k}" for k in heads.state_dict()}
    assert "heads.valence.1.weight" in state
