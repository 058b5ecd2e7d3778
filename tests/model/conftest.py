"""Shared fixtures of the model tests: EmoNet's exact checkpoint layout, random weights in it.

The real emonet_8.pth is not available (CC BY-NC-ND); a random state dict with its exact layout, taken from
the spec in ../shared, stands in for it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[2].parent / "shared"  # tests/model/x.py -> repo -> its parent
SPEC_PATH = SHARED / "data" / "weights" / "emonet_8_state_dict_spec.json"


@pytest.fixture(scope="session")
def spec() -> dict:
    assert SPEC_PATH.is_file(), f"the EmoNet layout spec is missing: {SPEC_PATH}"
    return json.loads(SPEC_PATH.read_text())


@pytest.fixture(scope="session")
def spec_state(spec: dict) -> dict[str, torch.Tensor]:
    """Random tensors with the spec's exact names, shapes and dtypes (scaled so activations stay sane)."""
    gen = torch.Generator().manual_seed(0)
    state: dict[str, torch.Tensor] = {}
    for name, shape, dtype in spec["keys"]:
        if dtype == "int64":
            state[name] = torch.tensor(1000, dtype=torch.int64).reshape(shape)
        elif name.endswith("running_var"):
            state[name] = 0.5 + torch.rand(shape, generator=gen)
        elif len(shape) >= 2:
            fan_in = math.prod(shape[1:])
            state[name] = torch.randn(shape, generator=gen) / math.sqrt(fan_in)
        elif name.endswith(".weight"):  # BatchNorm scale
            state[name] = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        else:
            state[name] = 0.1 * torch.randn(shape, generator=gen)
        assert str(state[name].dtype) == f"torch.{dtype}"
    return state


@pytest.fixture(scope="session")
def emonet_weights_file(tmp_path_factory: pytest.TempPathFactory, spec_state: dict[str, torch.Tensor]) -> Path:
    path = tmp_path_factory.mktemp("emonet") / "emonet_8.pth"
    torch.save(spec_state, path)
    return path
