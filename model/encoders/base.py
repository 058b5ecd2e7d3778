"""The interface every face encoder implements, and its frozen config."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class EncoderConfig:
    """What a checkpoint must record to reproduce an encoder's input and output.

    ``mean``/``std`` are in 0-255 units and applied as ``(x - mean) / std`` on RGB pixels.
    """

    name: str
    input_size: int
    embed_dim: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    expression_classes: tuple[str, ...] = ()
    weights_file: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "input_size": self.input_size,
            "embed_dim": self.embed_dim,
            "mean": list(self.mean),
            "std": list(self.std),
            "expression_classes": list(self.expression_classes),
        }


class FaceEncoder(nn.Module):
    """A face crop -> embedding network.

    Subclasses set ``config`` and implement ``forward_features``. Inputs to ``forward`` are
    preprocessed tensors ``(N, 3, S, S)``; ``preprocess`` turns aligned uint8 RGB crops
    ``(N, S, S, 3)`` into such tensors.
    """

    config: EncoderConfig
    #: identifies the loaded weights (e.g. sha256 prefix of the file); part of every cache key
    weights_id: str = "random"

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def input_size(self) -> int:
        return self.config.input_size

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def preprocess(self, crops: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 RGB ``(N, S, S, 3)`` (or one ``(S, S, 3)``) -> float ``(N, 3, S, S)`` on the module's device."""
        x = torch.as_tensor(crops)
        if x.ndim == 3:
            x = x.unsqueeze(0)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"{self.name}: expected RGB crops (N, H, W, 3), got shape {tuple(x.shape)}")
        size = self.input_size
        if x.shape[1] != size or x.shape[2] != size:
            raise ValueError(f"{self.name}: expected {size}x{size} crops, got {x.shape[1]}x{x.shape[2]}")
        # to the device as it came (uint8 from pinned memory: a quarter of float32's bytes), then channels first
        x = x.to(device=next(self.parameters()).device, non_blocking=True)
        return self.normalize(x.permute(0, 3, 1, 2))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Channels-first RGB ``(N, 3, S, S)`` (uint8 or float 0..255) -> this encoder's input, on its device.
        The one place the encoder's mean/std are applied (serving, training and the SL head all come here)."""
        device = next(self.parameters()).device
        x = x.to(device=device, non_blocking=True).float()
        mean = torch.tensor(self.config.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.config.std, device=device).view(1, 3, 1, 1)
        return (x - mean) / std

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return at least ``{"embedding": (N, embed_dim)}``; ``"expression_logits"`` when the encoder has them."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)["embedding"]
