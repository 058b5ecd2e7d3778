"""Checkpoints: a folder with ``config.json`` (everything needed to rebuild the model) and, when anything
was trained, ``weights.safetensors`` (keys ``heads.*``, ``sl_head.*``, ``encoder.*``).

Folders are written next to their destination and renamed into place, so a reader never sees half a
checkpoint.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .encoders.base import FaceEncoder
from .errors import CheckpointError
from .face.pipeline import PipelineConfig
from .fewshot import LabelerConfig
from .files import UMASK, utc_now
from .siamese import HeadConfig, PairHeads, SLConfig, SupervisedHead

FORMAT = "mtclar-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "default"


@dataclass
class Checkpoint:
    name: str
    encoder: dict  # EncoderConfig.to_dict() + "weights_id" + "weights_in_checkpoint"
    labeler: LabelerConfig = field(default_factory=LabelerConfig)
    heads: HeadConfig | None = None
    heads_trained: bool = False
    sl_head: SLConfig | None = None
    sl_trained: bool = False
    pipeline: dict = field(default_factory=lambda: PipelineConfig().to_dict())
    label_range: tuple[float, float] = (-1.0, 1.0)
    trained_on: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    created: str = field(default_factory=utc_now)
    state: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def to_config(self) -> dict:
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "name": self.name, "created": self.created,
            "encoder": self.encoder, "pipeline": self.pipeline, "labeler": self.labeler.to_dict(),
            "heads": self.heads.to_dict() if self.heads else None, "heads_trained": self.heads_trained,
            "sl_head": self.sl_head.to_dict() if self.sl_head else None, "sl_trained": self.sl_trained,
            "label_range": list(self.label_range), "trained_on": self.trained_on, "metrics": self.metrics,
        }

    @classmethod
    def from_config(cls, config: dict, state: dict[str, torch.Tensor], where: str) -> Checkpoint:
        if config.get("format") != FORMAT or config.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"{where}: not an MT-CLAR checkpoint of format version {FORMAT_VERSION}")
        try:
            return cls(
                name=config["name"], encoder=config["encoder"], labeler=LabelerConfig.from_dict(config["labeler"]),
                heads=HeadConfig.from_dict(config["heads"]) if config.get("heads") else None,
                heads_trained=bool(config.get("heads_trained")),
                sl_head=SLConfig.from_dict(config["sl_head"]) if config.get("sl_head") else None,
                sl_trained=bool(config.get("sl_trained")), pipeline=config["pipeline"],
                label_range=tuple(config.get("label_range", (-1.0, 1.0))), trained_on=config.get("trained_on", {}),
                metrics=config.get("metrics", {}), created=config.get("created", ""), state=state,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{where}: malformed config ({error})") from error

    # -- modules ------------------------------------------------------------------------------------

    def build_heads(self, device: str = "cpu") -> PairHeads | None:
        if self.heads is None:
            return None
        heads = PairHeads(self.heads)
        _load_prefixed(heads, self.state, "heads.", self.name, required=self.heads_trained)
        return heads.to(device).eval()

    def build_sl_head(self, device: str = "cpu") -> SupervisedHead | None:
        if self.sl_head is None:
            return None
        head = SupervisedHead(self.sl_head)
        _load_prefixed(head, self.state, "sl_head.", self.name, required=self.sl_trained)
        return head.to(device).eval()

    def check_encoder(self, encoder: FaceEncoder) -> None:
        """Refuse an encoder other than the one this checkpoint was trained with."""
        expected = self.encoder
        if expected.get("name") != encoder.name:
            raise CheckpointError(f"checkpoint {self.name!r} was trained with encoder {expected.get('name')!r}, "
                                  f"not {encoder.name!r}: use --encoder {expected.get('name')} or another checkpoint")
        actual = encoder.config.to_dict()

        def same(a, b) -> bool:
            return list(a) == list(b) if isinstance(a, list | tuple) and isinstance(b, list | tuple) else a == b

        mismatched = [f"{k} (checkpoint {expected[k]}, encoder {actual[k]})"
                      for k in ("input_size", "embed_dim", "mean", "std", "expression_classes")
                      if k in expected and not same(expected[k], actual[k])]
        if mismatched:
            raise CheckpointError(f"checkpoint {self.name!r}: encoder {encoder.name} preprocessing differs in "
                                  f"{', '.join(mismatched)}")
        if not expected.get("weights_in_checkpoint") and expected.get("weights_id") not in (None, encoder.weights_id):
            raise CheckpointError(f"checkpoint {self.name!r} was trained on {encoder.name} weights "
                                  f"{expected['weights_id']}, but the loaded weights are {encoder.weights_id}")

    # -- files --------------------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write the checkpoint beside ``directory`` and swap it into place: at every instant the path holds a
        complete checkpoint (the old or the new one), and nothing is left beside it afterwards."""
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        _remove_litter(directory)
        staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.staging-"))
        staging.chmod(0o777 & ~UMASK)  # mkdtemp makes 0700; a checkpoint is read by other accounts (servers)
        try:
            if self.state:
                tensors = {k: v.detach().cpu().contiguous() for k, v in self.state.items()}
                save_file(tensors, str(staging / WEIGHTS_FILE), metadata={"name": self.name})
            # config last: a folder with a config.json is complete (what _remove_litter relies on)
            (staging / CONFIG_FILE).write_text(json.dumps(self.to_config(), indent=2) + "\n")
            if directory.exists() and exchange(staging, directory):
                shutil.rmtree(staging, ignore_errors=True)  # now holds the old checkpoint
            else:
                if directory.exists():  # no atomic exchange on this file system: two renames
                    os.replace(directory, directory.parent / f".{directory.name}.old-{os.getpid()}")
                os.replace(staging, directory)
                _remove_litter(directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return directory


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where that is not available."""
    if sys.platform != "linux":
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(error, os.strerror(error), str(b))


def _remove_litter(directory: Path) -> None:
    """Staging and old folders of this checkpoint left by a process killed while saving; if the checkpoint
    itself is missing (killed between two renames), the newest complete one is put back first."""
    litter = sorted(directory.parent.glob(f".{directory.name}.*"), key=lambda p: p.stat().st_mtime, reverse=True)
    if not directory.exists():
        for candidate in litter:
            if (candidate / CONFIG_FILE).is_file():
                os.replace(candidate, directory)
                break
    for path in directory.parent.glob(f".{directory.name}.*"):
        shutil.rmtree(path, ignore_errors=True)


def load_checkpoint(path: str | Path | None = None) -> Checkpoint:
    """A checkpoint folder (or its config.json / weights file); ``None`` = the shipped default."""
    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    directory = path.parent if path.is_file() else path
    if not directory.exists() and any(directory.parent.glob(f".{directory.name}.*")):
        _remove_litter(directory)  # a save was killed between two renames: put the checkpoint back
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(f"no checkpoint at {path}: expected a folder with {CONFIG_FILE}")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{config_path}: unreadable ({error})") from error
    state: dict[str, torch.Tensor] = {}
    weights = directory / WEIGHTS_FILE
    if weights.exists():
        try:
            state = load_file(str(weights))
        except (SafetensorError, OSError) as error:
            raise CheckpointError(f"{weights}: corrupt weights file ({error})") from error
    return Checkpoint.from_config(config, state, str(directory))


def _load_prefixed(module: torch.nn.Module, state: dict[str, torch.Tensor], prefix: str, name: str,
                   required: bool) -> None:
    own = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not own:
        if required:
            raise CheckpointError(f"checkpoint {name!r} says {prefix.rstrip('.')} was trained but has no weights")
        return
    try:
        module.load_state_dict(own, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"checkpoint {name!r}: {prefix.rstrip('.')} weights do not fit ({error})") from error


def state_with_prefix(module: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}{k}": v for k, v in module.state_dict().items()}
