"""Which encoder parameters train: none (frozen), the top (partial) or all (finetune).

partial: faceapi's last ``blocks`` dense block(s); EmoNet's emotion branch with its face-alignment network
frozen (the paper). The expression classifiers (faceapi ``fc``, EmoNet ``emo_fc_2``) never train: they are
not part of the embedding, and a parameter without a gradient would stall DistributedDataParallel.
"""

from __future__ import annotations

from torch import nn

from mtclar.model.encoders.base import FaceEncoder
from mtclar.model.encoders.emonet import EmoNetEncoder
from mtclar.model.encoders.faceapi_expression import FaceExpressionEncoder

from .config import ENCODER_MODES, ConfigError

FACEAPI_BLOCKS = ("dense0", "dense1", "dense2", "dense3")


def configure_encoder(encoder: FaceEncoder, mode: str, blocks: int = 1) -> list[str]:
    """Set ``requires_grad`` for ``mode``; return the names of the submodules that train."""
    if mode not in ENCODER_MODES:
        raise ConfigError(f"unknown encoder mode {mode!r}; choose one of {', '.join(ENCODER_MODES)}")
    encoder.requires_grad_(False)
    if isinstance(encoder, EmoNetEncoder):
        encoder.freeze_alignment(mode != "finetune")
        encoder.requires_grad_(False)
        if mode == "frozen":
            return []
        names = [name for name, _ in encoder.named_children() if name != "emo_fc_2"]
        if mode == "partial":
            names = ["conv1x1_input_emo_2", "emo_net_2"]
        for name in names:
            encoder.get_submodule(name).requires_grad_(True)
        return names
    if mode == "frozen":
        return []
    if isinstance(encoder, FaceExpressionEncoder):
        if not 1 <= blocks <= len(FACEAPI_BLOCKS):
            raise ConfigError(f"model.partial_blocks must lie in 1..{len(FACEAPI_BLOCKS)}, got {blocks}")
        names = list(FACEAPI_BLOCKS[-blocks:]) if mode == "partial" else list(FACEAPI_BLOCKS)
        for name in names:
            encoder.get_submodule(name).requires_grad_(True)
        return names
    if mode == "partial":
        raise ConfigError(f"encoder {encoder.name!r} has no 'partial' recipe; use frozen or finetune")
    encoder.requires_grad_(True)
    return [name for name, _ in encoder.named_children()]


def trainable(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())
