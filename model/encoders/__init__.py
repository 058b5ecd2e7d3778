"""Encoders by name: ``create_encoder("faceapi-expression")``. Importing this package registers them all."""

from __future__ import annotations

from . import emonet, faceapi_expression  # noqa: F401  (each module registers its encoder)
from .base import EncoderConfig, FaceEncoder
from .registry import DEFAULT_ENCODER, create_encoder, list_encoders, register_encoder

__all__ = ["EncoderConfig", "FaceEncoder", "create_encoder", "list_encoders", "register_encoder", "DEFAULT_ENCODER"]
