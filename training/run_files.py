"""The files of a training run, each written so that a crash never leaves a half-written one behind.

```
<run>/config.yaml              the resolved training config
<run>/log.jsonl                one JSON line per epoch and stage
<run>/state.pt                 the training state to resume from (model, optimizer, scheduler, epoch, RNG)
<run>/checkpoints/<name>/      checkpoint folders (model/checkpoint.py format), never overwritten
<run>/best -> checkpoints/...  symlinks, switched atomically to a complete folder
<run>/final -> checkpoints/...
```
A checkpoint folder is staged beside its destination and renamed into place (``Checkpoint.save``); the
``best`` / ``final`` names are symlinks replaced with one ``rename``, so a reader (``mtclar label
--checkpoint <run>/best``) sees the old checkpoint or the new one, never a gap or a half.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
import yaml

from mtclar.model.checkpoint import Checkpoint
from mtclar.model.files import atomic_write

STATE_FILE = "state.pt"
LOG_FILE = "log.jsonl"
CONFIG_FILE = "config.yaml"
CHECKPOINTS = "checkpoints"


def _replace_symlink(link: Path, target: str) -> None:
    tmp = link.with_name(f".{link.name}.{os.getpid()}.link")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def publish(checkpoint: Checkpoint, run_dir: Path, alias: str) -> Path:
    """Save ``checkpoint`` under ``<run>/checkpoints/<name>`` and point ``<run>/<alias>`` at it.

    The folder the alias pointed to before is removed when no other alias points to it.
    """
    run_dir = Path(run_dir)
    folder = checkpoint.save(run_dir / CHECKPOINTS / checkpoint.name)
    link = run_dir / alias
    previous = link.resolve() if link.is_symlink() else None
    if link.exists() and not link.is_symlink():
        raise FileExistsError(f"{link} exists and is not a symlink made by a training run")
    _replace_symlink(link, f"{CHECKPOINTS}/{checkpoint.name}")
    if previous is not None and previous != folder.resolve():
        others = [p.resolve() for p in run_dir.iterdir() if p.is_symlink() and p.name != alias]
        if previous not in others and previous.parent == (run_dir / CHECKPOINTS).resolve():
            shutil.rmtree(previous, ignore_errors=True)
    return link


def save_state(state: dict[str, Any], run_dir: Path) -> Path:
    path = Path(run_dir) / STATE_FILE
    with atomic_write(path) as f:
        torch.save(state, f)
    return path


def load_state(path: str | Path) -> dict[str, Any]:
    """A run folder or its state file. Our own file: it holds numpy RNG state, so not weights-only."""
    path = Path(path)
    if path.is_dir():
        path = path / STATE_FILE
    if not path.is_file():
        from mtclar.model.errors import CheckpointError

        raise CheckpointError(f"no training state to resume from at {path}")
    return torch.load(path, map_location="cpu", weights_only=False)


def write_config(config_dict: dict, run_dir: Path) -> None:
    path = Path(run_dir) / CONFIG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_dict, sort_keys=False))


class JsonLog:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOG_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record, allow_nan=True) + "\n")

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
