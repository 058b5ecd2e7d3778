"""EmoNet-8 encoder: exact checkpoint layout, strict loading, outputs, frozen FAN, weight errors.

The real emonet_8.pth is not available (CC BY-NC-ND); a random state dict with its exact layout,
taken from the spec in ../shared, stands in for it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from mtclar.model.encoders import create_encoder
from mtclar.model.encoders.emonet import EMOTION_BRANCH, EmoNetEncoder, build_emonet, load_emonet_state_dict
from mtclar.model.errors import WeightsError

pytestmark = pytest.mark.slow  # builds EmoNet (a large network) several times


@pytest.fixture(scope="module")
def encoder(emonet_weights_file: Path) -> EmoNetEncoder:
    return build_emonet(weights=emonet_weights_file)


@pytest.fixture(scope="module")
def outputs(encoder: EmoNetEncoder) -> dict[str, dict[str, torch.Tensor]]:
    x = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return {"batch": encoder.forward_features(x), "single": encoder.forward_features(x[:1])}


def test_state_dict_layout_matches_spec(spec: dict) -> None:
    state = EmoNetEncoder().state_dict()
    assert len(spec["keys"]) == spec["num_state_dict_keys"] == 682
    assert list(state) == [name for name, _, _ in spec["keys"]]
    for name, shape, dtype in spec["keys"]:
        assert list(state[name].shape) == shape, name
        assert str(state[name].dtype) == f"torch.{dtype}", name
    assert sum(p.numel() for p in EmoNetEncoder().parameters()) == spec["num_params"]


@pytest.mark.parametrize("variant", ["plain", "module_prefix", "wrapped"])
def test_build_loads_strictly(
    variant: str, spec_state: dict[str, torch.Tensor], emonet_weights_file: Path, tmp_path: Path
) -> None:
    if variant == "plain":
        path = emonet_weights_file
    else:
        saved: dict = {f"module.{k}": v for k, v in spec_state.items()}
        if variant == "wrapped":
            saved = {"state_dict": saved, "epoch": 3}
        path = tmp_path / f"emonet_8_{variant}.pth"
        torch.save(saved, path)
    model = build_emonet(weights=path)
    assert not model.training
    assert model.weights_id == hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    loaded = model.state_dict()
    for name in ("conv1.weight", "m1.b2_plus_1.conv3.weight", "emo_fc_2.3.bias", "bn_end1.running_var"):
        assert torch.equal(loaded[name], spec_state[name])


def test_registry_builds_emonet(emonet_weights_file: Path) -> None:
    model = create_encoder("emonet", weights=emonet_weights_file)
    assert isinstance(model, EmoNetEncoder)
    assert model.config.embed_dim == 256 and model.config.input_size == 256
    assert len(model.config.expression_classes) == 8


def test_output_shapes_match_spec(spec: dict, outputs: dict[str, dict[str, torch.Tensor]]) -> None:
    expected = spec["forward_check_shapes_1x3x256x256"]
    ours = {
        "heatmap": "heatmap",
        "expression": "expression_logits",
        "valence": "valence",
        "arousal": "arousal",
        "pooled_emotion_feature": "embedding",
    }
    for spec_name, our_name in ours.items():
        assert list(outputs["single"][our_name].shape) == expected[spec_name], spec_name
        assert list(outputs["batch"][our_name].shape) == [2, *expected[spec_name][1:]], spec_name
    for out in outputs.values():
        for name, value in out.items():
            assert torch.isfinite(value).all(), name


def test_eval_is_batch_independent(outputs: dict[str, dict[str, torch.Tensor]]) -> None:
    for name, value in outputs["single"].items():
        scale = value.abs().max().item()  # random weights give large activations; compare relatively
        torch.testing.assert_close(value, outputs["batch"][name][:1], rtol=1e-3, atol=1e-4 * scale)


def test_gradients_reach_emotion_branch_only(encoder: EmoNetEncoder) -> None:
    fan_stats = encoder.bn_end1.running_mean.clone()
    emo_stats = encoder.emo_fc_2[1].running_mean.clone()
    encoder.train()
    try:
        # 64x64 keeps this cheap on CPU; the network is fully convolutional up to the global pooling
        out = encoder.forward_features(torch.rand(2, 3, 64, 64))
        (out["embedding"].sum() + out["valence"].sum() + out["expression_logits"].sum()).backward()
        for name, param in encoder.named_parameters():
            if name.split(".")[0] in EMOTION_BRANCH:
                assert param.requires_grad and param.grad is not None, name
            else:
                assert not param.requires_grad and param.grad is None, name
        assert encoder.conv1x1_input_emo_2.weight.grad.abs().sum() > 0
        assert torch.equal(encoder.bn_end1.running_mean, fan_stats), "frozen FAN must keep its BN stats"
        assert not torch.equal(encoder.emo_fc_2[1].running_mean, emo_stats)
    finally:
        encoder.zero_grad(set_to_none=True)
        encoder.eval()


def test_preprocess_scales_to_unit_range(encoder: EmoNetEncoder) -> None:
    crops = np.zeros((2, 256, 256, 3), dtype=np.uint8)
    crops[0] = 255
    x = encoder.preprocess(crops)
    assert x.shape == (2, 3, 256, 256) and x.dtype == torch.float32
    assert torch.all(x[0] == 1.0) and torch.all(x[1] == 0.0)


def test_missing_weights_explain_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="--encoder-weights"):
        build_emonet(weights=None)
    missing = tmp_path / "nowhere" / "emonet_8.pth"
    with pytest.raises(WeightsError) as err:
        build_emonet(weights=missing)
    message = str(err.value)
    for needle in (
        str(missing),
        "face-analysis/emonet",
        "pretrained/emonet_8.pth",
        "CC BY-NC-ND",
        "--encoder-weights",
        "MTCLAR_ENCODER_WEIGHTS",
    ):
        assert needle in message


def test_wrong_layout_lists_keys_and_shapes(spec_state: dict[str, torch.Tensor], tmp_path: Path) -> None:
    state = dict(spec_state)
    del state["l1.bias"]
    state["extra_head.weight"] = torch.zeros(3)
    state["emo_fc_2.3.weight"] = torch.zeros(7, 128)  # the 5-class model's head
    path = tmp_path / "emonet_5.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError) as err:
        build_emonet(weights=path)
    message = str(err.value)
    for needle in (
        str(path),
        "1 missing: l1.bias",
        "1 unexpected: extra_head.weight",
        "emo_fc_2.3.weight: (7, 128) (expected (10, 128))",
    ):
        assert needle in message
    with pytest.raises(WeightsError, match="wrong shape"):
        load_emonet_state_dict(state)


def test_unreadable_weights(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot be read"):
        build_emonet(weights=corrupt)
    not_a_state_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_a_state_dict)
    with pytest.raises(WeightsError, match="expected a state dict"):
        build_emonet(weights=not_a_state_dict)
