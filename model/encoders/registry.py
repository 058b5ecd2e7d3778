"""The encoder registry: builders by name; ``create_encoder`` fails naming the known names."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ConfigError
from .base import FaceEncoder

_REGISTRY: dict[str, Callable[..., FaceEncoder]] = {}

DEFAULT_ENCODER = "faceapi-expression"


def register_encoder(name: str) -> Callable[[Callable[..., FaceEncoder]], Callable[..., FaceEncoder]]:
    def wrap(builder: Callable[..., FaceEncoder]) -> Callable[..., FaceEncoder]:
        if name in _REGISTRY:
            raise ConfigError(f"encoder {name!r} registered twice")
        _REGISTRY[name] = builder
        return builder

    return wrap


def list_encoders() -> list[str]:
    return sorted(_REGISTRY)


def create_encoder(name: str = DEFAULT_ENCODER, **kwargs) -> FaceEncoder:
    """Build a registered encoder with its weights loaded. kwargs go to its builder (e.g. ``weights=``)."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown encoder {name!r}; known encoders: {', '.join(list_encoders())}")
    return _REGISTRY[name](**kwargs)
