"""MT-CLAR: a Siamese pair over a shared face encoder with three projector heads; the MT-CLAR+SL head."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .config_io import from_dict
from .encoders.base import FaceEncoder
from .errors import ConfigError

FUSIONS = ("concat", "absdiff", "product")


@dataclass(frozen=True)
class HeadConfig:
    embed_dim: int = 256
    fusion: str = "concat"
    hidden: tuple[int, ...] = (2048, 1024, 512, 128)
    dropout: float = 0.5

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ConfigError(f"unknown fusion {self.fusion!r}; choose one of {', '.join(FUSIONS)}")

    @property
    def pair_dim(self) -> int:
        return 2 * self.embed_dim if self.fusion == "concat" else self.embed_dim

    def to_dict(self) -> dict:
        return {**asdict(self), "hidden": list(self.hidden)}

    @classmethod
    def from_dict(cls, data: dict) -> HeadConfig:
        return from_dict(cls, data, "heads")


def projector(in_dim: int, hidden: tuple[int, ...], out_dim: int, dropout: float) -> nn.Sequential:
    """Dropout -> [Linear -> BN -> ReLU -> Dropout] per hidden size -> Linear, Xavier-uniform init."""
    layers: list[nn.Module] = [nn.Dropout(dropout)]
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    for layer in layers:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


def fuse(e1: torch.Tensor, e2: torch.Tensor, fusion: str) -> torch.Tensor:
    if fusion == "concat":
        return torch.cat([e1, e2], dim=-1)
    if fusion == "absdiff":
        return (e1 - e2).abs()
    if fusion == "product":
        return e1 * e2
    raise ValueError(f"unknown fusion {fusion!r}")


class PairHeads(nn.Module):
    """The three MT-CLAR heads on a pair of embeddings. delta = label(first) - label(second)."""

    def __init__(self, config: HeadConfig = HeadConfig()):
        super().__init__()
        self.config = config
        args = (config.pair_dim, config.hidden)
        self.similarity = projector(*args, 2, config.dropout)
        self.valence = projector(*args, 1, config.dropout)
        self.arousal = projector(*args, 1, config.dropout)

    def forward(self, e1: torch.Tensor, e2: torch.Tensor) -> dict[str, torch.Tensor]:
        pair = fuse(e1, e2, self.config.fusion)
        return {
            "similarity_logits": self.similarity(pair),
            "delta_valence": 2 * torch.tanh(self.valence(pair).squeeze(-1)),
            "delta_arousal": 2 * torch.tanh(self.arousal(pair).squeeze(-1)),
        }


class MTCLAR(nn.Module):
    """Both images through the same encoder, then the pair heads. Outputs also carry the raw embeddings
    (for the cosine-embedding loss)."""

    def __init__(self, encoder: FaceEncoder, heads: PairHeads):
        super().__init__()
        if heads.config.embed_dim != encoder.embed_dim:
            raise ValueError(f"heads expect {heads.config.embed_dim}-d embeddings, {encoder.name} gives "
                             f"{encoder.embed_dim}")
        self.encoder = encoder
        self.heads = heads

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, torch.Tensor]:
        both = self.encoder(torch.cat([x1, x2]))
        e1, e2 = both.split(len(x1))
        return {**self.heads(e1, e2), "embedding1": e1, "embedding2": e2}


@dataclass(frozen=True)
class SLConfig:
    embed_dim: int = 256
    hidden: tuple[int, ...] = (1024, 512, 256, 128)
    dropout: float = 0.5
    n_classes: int = 0  # 0: no class head
    regress_va: bool = True

    def to_dict(self) -> dict:
        return {**asdict(self), "hidden": list(self.hidden)}

    @classmethod
    def from_dict(cls, data: dict) -> SLConfig:
        return from_dict(cls, data, "sl_head")


class SupervisedHead(nn.Module):
    """MT-CLAR+SL: single-image expression classes and/or V/A from a (frozen) embedding."""

    def __init__(self, config: SLConfig = SLConfig()):
        super().__init__()
        if not config.n_classes and not config.regress_va:
            raise ValueError("a supervised head needs classes, V/A or both")
        self.config = config
        self.classes = projector(config.embed_dim, config.hidden, config.n_classes, config.dropout) \
            if config.n_classes else None
        self.va = projector(config.embed_dim, config.hidden, 2, config.dropout) if config.regress_va else None

    def forward(self, embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        if self.classes is not None:
            out["class_logits"] = self.classes(embedding)
        if self.va is not None:
            va = torch.tanh(self.va(embedding))
            out["valence"], out["arousal"] = va[:, 0], va[:, 1]
        return out
