"""The one place a device name ("auto", "cpu", "cuda", "cuda:1") becomes a torch device, a precision becomes
an autocast context, and a device becomes ONNX Runtime execution providers."""

from __future__ import annotations

import contextlib
import logging
from contextlib import AbstractContextManager

import onnxruntime as ort
import torch

from .errors import ConfigError
from .precision import PRECISIONS

log = logging.getLogger(__name__)

CUDA_PROVIDER, CPU_PROVIDER = "CUDAExecutionProvider", "CPUExecutionProvider"
_warned: set[str] = set()


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


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """``auto`` -> fp16 on CUDA, fp32 elsewhere. fp16 applies to CUDA only: on another device it runs fp32 (logged)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    cuda = torch.device(device).type == "cuda"
    if precision == "auto":
        return "fp16" if cuda else "fp32"
    if precision == "fp16" and not cuda:
        _warn_once("fp16-cpu", "precision fp16 applies to CUDA only: the encoder runs fp32 on %s", device)
        return "fp32"
    return precision


def autocast(device: torch.device | str, precision: str) -> AbstractContextManager:
    """fp16 autocast on CUDA when ``precision`` (resolved) is fp16; a no-op otherwise."""
    if torch.device(device).type == "cuda" and precision == "fp16":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def onnx_providers(device: torch.device | str) -> list[str]:
    """ONNX Runtime's providers for ``device``: CUDA first when the device is CUDA and the installed wheel has it
    (``onnxruntime-gpu``); else CPU, said once in the log, so that what runs where is never a guess."""
    if torch.device(device).type != "cuda":
        return [CPU_PROVIDER]
    if CUDA_PROVIDER in ort.get_available_providers():
        return [CUDA_PROVIDER, CPU_PROVIDER]
    _warn_once("ort-cpu", "the face detector runs on CPU while the encoder runs on %s: this onnxruntime has no "
               "CUDAExecutionProvider (install onnxruntime-gpu==1.31.1 in place of onnxruntime)", device)
    return [CPU_PROVIDER]


def _warn_once(key: str, message: str, *args: object) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)
