"""Training configuration: frozen dataclasses, loaded once from YAML, overridden by CLI flags.

The dataclass defaults are the paper's settings; ``configs/mtclar_paper.yaml`` spells them out (a test
keeps the two equal). Unknown keys raise naming the key and the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mtclar.model.config_io import from_dict
from mtclar.model.encoders import DEFAULT_ENCODER
from mtclar.model.errors import ConfigError
from mtclar.model.fewshot import STRATEGIES
from mtclar.model.siamese import HeadConfig

from .pairs import VA_THRESHOLD

PAPER_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "mtclar_paper.yaml"
ENCODER_MODES = ("frozen", "partial", "finetune")
SIMILARITY_MODES = ("auto", "class", "va")
SL_TARGETS = ("classes", "va", "both")


class _Checked:
    """Type checks for the simple field types (YAML gives ``1e-4`` as a string, for one)."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value, hint = getattr(self, f.name), hints[f.name]
            if hint is float and isinstance(value, str):
                with contextlib.suppress(ValueError):  # YAML 1.1 reads 1e-4 (no dot) as a string
                    value = float(value)
            ok = {float: lambda v: isinstance(v, int | float) and not isinstance(v, bool),
                  int: lambda v: isinstance(v, int) and not isinstance(v, bool),
                  bool: lambda v: isinstance(v, bool), str: lambda v: isinstance(v, str),
                  str | None: lambda v: v is None or isinstance(v, str)}.get(hint)
            if ok is not None and not ok(value):
                raise ConfigError(f"{type(self).__name__}.{f.name}: expected {getattr(hint, '__name__', hint)}, "
                                  f"got {value!r}")
            if hint is float:
                object.__setattr__(self, f.name, float(value))


@dataclass(frozen=True)
class DataConfig(_Checked):
    train: str | None = None  # AFEW-VA folder, AffectNet CSV or CSV manifest
    val: str | None = None  # same formats; default: ``val_fraction`` of the training groups
    images_root: str | None = None  # AffectNet images folder (default: beside its CSV)
    search: tuple[str, ...] = ()  # more folders where a manifest's videos are looked up
    val_fraction: float = 0.1  # share of groups (videos, images) held out when ``val`` is not given
    similarity: str = "auto"  # class | va | auto (class when every item has one, else V/A distance)
    va_threshold: float = VA_THRESHOLD
    cache_dir: str | None = None  # face-crop cache (default: the CLI's cache folder)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.similarity not in SIMILARITY_MODES:
            raise ConfigError(f"data.similarity: {self.similarity!r} is not one of {', '.join(SIMILARITY_MODES)}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"data.val_fraction must lie in [0, 1), got {self.val_fraction}")


@dataclass(frozen=True)
class ModelConfig(_Checked):
    encoder: str = DEFAULT_ENCODER
    encoder_weights: str | None = None
    # frozen: heads only; partial: also the last dense block(s) of faceapi / the emotion branch of EmoNet
    # (the paper: EmoNet's face-alignment network frozen, its emotion branch trained); finetune: everything
    encoder_mode: str = "partial"
    partial_blocks: int = 1  # faceapi dense blocks trained in "partial" mode, counted from the last
    heads: HeadConfig = field(default_factory=HeadConfig)
    strategy: str = "floor"  # the labeller's combination strategy recorded in the checkpoint

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.encoder_mode not in ENCODER_MODES:
            raise ConfigError(f"model.encoder_mode: {self.encoder_mode!r} is not one of {', '.join(ENCODER_MODES)}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"model.strategy: {self.strategy!r} is not one of {', '.join(STRATEGIES)}")


@dataclass(frozen=True)
class OptimConfig(_Checked):
    lr: float = 1e-4
    weight_decay: float = 1e-4
    batch_size: int = 256
    epochs: int = 40
    plateau_factor: float = 0.1
    plateau_patience: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 2 or self.epochs < 1:
            raise ConfigError(f"optim: batch_size must be >= 2 and epochs >= 1 (got {self.batch_size}, {self.epochs})")


@dataclass(frozen=True)
class AugmentConfig(_Checked):
    """The paper at 256 px: resize 288 -> RandomAffine -> flip -> random crop 256; eval: centre crop.
    Scaled to the encoder: the crop is its input size, the resize ``resize_ratio`` times that."""

    resize_ratio: float = 288 / 256
    degrees: float = 20.0
    translate: float = 0.2
    scale: tuple[float, float] = (0.8, 1.2)
    shear: float = 0.1  # degrees, as torchvision reads it (the paper's value)
    hflip: float = 0.5


@dataclass(frozen=True)
class RunConfig(_Checked):
    out: str = "runs/mtclar"
    name: str | None = None  # checkpoint name root (default: mtclar-<encoder>-<data stem>)
    seed: int = 0
    workers: int = 4  # DataLoader worker processes per rank
    device: str = "auto"
    threads: int = 0  # torch CPU threads per process; 0 = cores / local processes


@dataclass(frozen=True)
class SLTrainConfig(_Checked):
    """MT-CLAR+SL: an MLP on the frozen embedding."""

    target: str = "classes"  # classes | va | both
    hidden: tuple[int, ...] = (1024, 512, 256, 128)
    dropout: float = 0.5
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 512
    epochs: int = 60
    step_size: int = 15
    gamma: float = 0.1
    balanced: bool = True  # class-balanced sampling (classes and both targets)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.target not in SL_TARGETS:
            raise ConfigError(f"sl.target: {self.target!r} is not one of {', '.join(SL_TARGETS)}")


@dataclass(frozen=True)
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    run: RunConfig = field(default_factory=RunConfig)
    sl: SLTrainConfig = field(default_factory=SLTrainConfig)

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict, where: str = "") -> TrainConfig:
        try:
            return from_dict(cls, data, "")
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}" if where else str(error)) from None
        except (ValueError, TypeError) as error:
            raise ConfigError(f"{where}: {error}" if where else str(error)) from None


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def load_config(path: str | Path | None = None) -> TrainConfig:
    """A YAML file (default: the shipped paper config; the built-in defaults when it is not installed)."""
    if path is None:
        if not PAPER_CONFIG.is_file():
            return TrainConfig()
        path = PAPER_CONFIG
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (data, model, optim, ...)")
    return TrainConfig.from_dict(data, str(path))


def override(config: TrainConfig, values: dict[str, Any]) -> TrainConfig:
    """``{"optim.epochs": 2, "model.heads.dropout": 0.1}`` -> a new config; ``None`` values are skipped."""
    data = config.to_dict()
    for key, value in values.items():
        if value is None:
            continue
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"override {key}: no section {part!r}")
            node = node[part]
        if leaf not in node:
            raise ConfigError(f"override {key}: unknown key {leaf!r}; known: {', '.join(node)}")
        node[leaf] = list(value) if isinstance(value, tuple) else value
    return TrainConfig.from_dict(data, "overrides")


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["optim.lr=1e-3", "model.heads.hidden=[256, 64]"]`` -> values parsed as YAML (numbers, lists)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. optim.lr=0.001")
        value = yaml.safe_load(raw)
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 as a string
            with contextlib.suppress(ValueError):
                value = float(value) if any(c in value for c in ".eE") else int(value)
        out[key.strip()] = value
    return out
