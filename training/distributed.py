"""One process or many under torchrun: detection from the environment, device and thread choice, gathers.

torchrun sets WORLD_SIZE, RANK, LOCAL_RANK and LOCAL_WORLD_SIZE (and the rendezvous address); the settings read
them and the `mtclar train` entry passes them here as a ``DistInfo``. Backend:
NCCL on CUDA, gloo on CPU. Rank 0 writes every file; the others only compute.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from mtclar.model.device import resolve_device


@dataclass(frozen=True)
class DistInfo:
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE_PROCESS = DistInfo()


def setup(device_name: str = "auto", threads: int = 0,
          info: DistInfo = SINGLE_PROCESS) -> tuple[DistInfo, torch.device]:
    """Join the process group when started by torchrun (``info`` from the settings); set torch's CPU threads
    (0: cores / local processes)."""
    device = resolve_device(device_name, info.local_rank if info.distributed else 0)
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // info.local_world_size))
    if info.distributed and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=info.rank,
                                world_size=info.world_size)
    return info, device


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def gather(info: DistInfo, value: Any) -> list[Any]:
    """Every rank's ``value`` (picklable), on every rank."""
    if not info.distributed:
        return [value]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, value)
    return out


