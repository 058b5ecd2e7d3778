"""PyTorch port of face-api's FaceExpressionNet (@vladmandic/face-api 1.7.15, from face-api.js; MIT).

112x112 RGB -> 4 dense blocks of 3x3 convs (each halves the resolution) -> 7x7 average pool
-> 256-d embedding -> linear -> 7 expression logits. TF "same" padding is reproduced exactly;
scripts/faceapi_reference/ holds the JS reference run the parity test compares against.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from ..errors import WeightsError
from ..files import sha256_file
from .base import EncoderConfig, FaceEncoder
from .registry import register_encoder

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "faceapi_expression.safetensors"
CONVERTER = "scripts/convert_faceapi_weights.py"


def same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TF/tfjs 'same' padding: total max((ceil(n/s) - 1) * s + k - n, 0), the extra pixel after."""
    pads = []
    for n in (x.shape[-1], x.shape[-2]):
        total = max((-(-n // stride) - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class SameConv(nn.Conv2d):
    """A 3x3 conv with bias and TF 'same' padding (face-api's ``tf.conv2d(x, f, s, 'same') + b``)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__(c_in, c_out, 3, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(same_pad(x, 3, self.stride[0]))


class SeparableConv(nn.Module):
    """``tf.separableConv2d(x, depthwise, pointwise, stride, 'same') + bias``."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.depthwise = nn.Conv2d(c_in, c_in, 3, stride=stride, groups=c_in, bias=False)
        self.pointwise = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(same_pad(x, 3, self.stride)))


class DenseBlock(nn.Module):
    """face-api's ``denseBlock4``: each conv sees the relu of the sum of all previous outputs."""

    def __init__(self, c_in: int, c_out: int, first: bool = False) -> None:
        super().__init__()
        self.conv0 = SameConv(c_in, c_out, 2) if first else SeparableConv(c_in, c_out, 2)
        self.conv1 = SeparableConv(c_out, c_out, 1)
        self.conv2 = SeparableConv(c_out, c_out, 1)
        self.conv3 = SeparableConv(c_out, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = F.relu(self.conv0(x))
        out2 = self.conv1(out1)
        out3 = self.conv2(F.relu(out1 + out2))
        out4 = self.conv3(F.relu(out1 + (out2 + out3)))
        return F.relu(out1 + (out2 + (out3 + out4)))


class FaceExpressionEncoder(FaceEncoder):
    config = EncoderConfig(
        name="faceapi-expression",
        input_size=112,
        embed_dim=256,
        mean=(122.782, 117.001, 104.298),
        std=(255.0, 255.0, 255.0),
        expression_classes=("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"),
        weights_file="faceapi_expression.safetensors",
    )

    def __init__(self) -> None:
        super().__init__()
        self.dense0 = DenseBlock(3, 32, first=True)
        self.dense1 = DenseBlock(32, 64)
        self.dense2 = DenseBlock(64, 128)
        self.dense3 = DenseBlock(128, 256)
        self.fc = nn.Linear(256, len(self.config.expression_classes))

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.dense3(self.dense2(self.dense1(self.dense0(x))))
        embedding = x.mean(dim=(2, 3))  # tf.avgPool 7x7, stride 2, 'valid' on the 7x7 map
        return {"embedding": embedding, "expression_logits": self.fc(embedding)}


def weights_id(path: Path) -> str:
    return sha256_file(path)[:16]


@register_encoder("faceapi-expression")
def build_faceapi_expression(
    weights: str | Path | None = None, device: str | torch.device = "cpu"
) -> FaceExpressionEncoder:
    path = Path(weights) if weights is not None else DEFAULT_WEIGHTS
    hint = f"regenerate it with `python {CONVERTER}`"
    if not path.is_file():
        raise WeightsError(f"faceapi-expression weights not found: {path}; {hint}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightsError(f"cannot read faceapi-expression weights {path} ({err}); {hint}") from err
    model = FaceExpressionEncoder()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise WeightsError(f"{path} does not fit the faceapi-expression architecture: {err}; {hint}") from err
    model.weights_id = weights_id(path)
    return model.to(device).eval()
