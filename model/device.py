"""The one place a device name ("auto", "cpu", "cuda", "cuda:1") becomes a torch device."""

from __future__ import annotations

import torch

from .errors import ConfigError


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` picks CUDA when present; a bare ``cuda`` means this process's GPU (its local rank under torchrun)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not one of auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device
