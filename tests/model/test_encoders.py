"""Every registered encoder, run the same way: shapes, finite outputs, gradients, its own normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mtclar.model.encoders import create_encoder, list_encoders
from mtclar.model.errors import ConfigError


@pytest.fixture(scope="module")
def build_kwargs(emonet_weights_file: Path) -> dict[str, dict]:
    """How each registered encoder is built in tests; an encoder missing here fails the coverage test."""
    return {"faceapi-expression": {}, "emonet": {"weights": emonet_weights_file}}


def test_every_registered_encoder_is_covered(build_kwargs: dict[str, dict]):
    assert set(list_encoders()) == set(build_kwargs)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "emonet" else n
                                  for n in list_encoders()])
def test_encoder_shapes_finite_outputs_and_gradients(name: str, build_kwargs: dict[str, dict]):
    torch.manual_seed(0)
    encoder = create_encoder(name, **build_kwargs[name]).eval()
    size = encoder.input_size
    crops = np.random.default_rng(0).integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    x = encoder.preprocess(crops)
    assert x.shape == (2, 3, size, size) and x.dtype == torch.float32
    out = encoder.forward_features(x)
    assert out["embedding"].shape == (2, encoder.embed_dim)
    assert all(torch.isfinite(value).all() for value in out.values())
    if "expression_logits" in out:
        assert out["expression_logits"].shape == (2, len(encoder.config.expression_classes))
    x.requires_grad_(True)
    sum(value.square().mean() for value in encoder.forward_features(x).values()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    trainable = [p for p in encoder.parameters() if p.requires_grad]
    reached = [p.grad for p in trainable if p.grad is not None]
    assert trainable and len(reached) == len(trainable), f"{len(trainable) - len(reached)} parameters get no gradient"
    assert all(torch.isfinite(g).all() for g in reached)


def test_unknown_encoder_is_a_config_error_naming_the_known_ones():
    with pytest.raises(ConfigError, match="faceapi-expression"):
        create_encoder("resnet-9000")


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "emonet" else n
                                  for n in list_encoders()])
def test_every_encoder_runs_under_autocast(name: str, build_kwargs: dict[str, dict]):
    """The encoder path under autocast: fp16 on CUDA where there is one (marked gpu in test_gpu.py), else CPU's
    bfloat16 as the stand-in that runs everywhere (same op casting lists; fewer mantissa bits than fp16)."""
    from mtclar.model.embeddings import encode_crops

    torch.manual_seed(0)
    encoder = create_encoder(name, **build_kwargs[name]).eval()
    crops = np.random.default_rng(1).integers(0, 256, (3, encoder.input_size, encoder.input_size, 3), dtype=np.uint8)
    reference, _ = encode_crops(encoder, crops)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = encoder.forward_features(encoder.preprocess(crops))
    low = out["embedding"].float().numpy()
    assert out["embedding"].dtype == torch.bfloat16, "autocast reached the encoder's layers"
    cosine = (low * reference).sum(1) / (np.linalg.norm(low, axis=1) * np.linalg.norm(reference, axis=1))
    assert np.isfinite(low).all() and cosine.min() > 0.98, cosine
