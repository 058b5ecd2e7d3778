"""Backend settings, read from the environment once (by _wsgi.py or `mtclar serve`) and passed down."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ENV = {
    "model_dir": "MODEL_DIR",
    "checkpoint": "MTCLAR_CHECKPOINT",
    "encoder_weights": "MTCLAR_ENCODER_WEIGHTS",
    "device": "MTCLAR_DEVICE",
    "threads": "MTCLAR_THREADS",
    "cache_dir": "MTCLAR_CACHE_DIR",
    "label_studio_url": "LABEL_STUDIO_URL",
    "label_studio_api_key": "LABEL_STUDIO_API_KEY",
    "basic_auth_user": "BASIC_AUTH_USER",
    "basic_auth_pass": "BASIC_AUTH_PASS",
    "redis_url": "REDIS_URL",
    "media_roots": "MTCLAR_MEDIA_ROOTS",
    "media_hosts": "MTCLAR_MEDIA_HOSTS",
    "train_every": "MTCLAR_TRAIN_EVERY",
    "segment_tolerance": "MTCLAR_SEGMENT_TOLERANCE",
    "finetune_min_improvement": "MTCLAR_FINETUNE_MIN_IMPROVEMENT",
    "segments_per_second": "MTCLAR_SEGMENTS_PER_SECOND",
}


@dataclass(frozen=True)
class BackendConfig:
    model_dir: Path = Path("./mtclar-data")  # anchor store, project checkpoints, media cache
    checkpoint: str | None = None  # base model; None = the shipped default
    encoder_weights: str | None = None
    device: str = "auto"
    threads: int = 0
    cache_dir: Path | None = None  # embedding cache; default <model_dir>/cache
    label_studio_url: str | None = None
    label_studio_api_key: str | None = None
    basic_auth_user: str | None = None
    basic_auth_pass: str | None = None
    redis_url: str | None = None
    media_roots: tuple[Path, ...] = ()  # local folders task media may be read from directly
    media_hosts: tuple[str, ...] = ()  # extra hosts (besides Label Studio's) media may be fetched from
    train_every: int = 0  # start a fine-tune after this many new annotations (0: only on request)
    segment_tolerance: float = 0.05  # max |value - segment value| when merging frames into segments
    segments_per_second: float = 1.0  # at most this many predicted segments per second of video (the
    # tolerance grows, up to 0.2, until they fit): one timeline row each in the editor
    # a fine-tuned model replaces the serving one when its leave-one-anchor-out error (mean of V and A RMSE)
    # is lower by at least this much; a negative value accepts any fine-tune (e.g. to exercise the loop)
    finetune_min_improvement: float = 0.005
    extra: dict = field(default_factory=dict)

    @property
    def embedding_cache(self) -> Path:
        return (self.cache_dir or self.model_dir / "cache") / "embeddings"

    @property
    def media_cache(self) -> Path:
        return self.model_dir / "media"

    def to_dict(self) -> dict:
        """Plain JSON-able settings (for an RQ worker on another machine); secrets included, keep it private."""
        out = {}
        for key, value in self.__dict__.items():
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = [str(v) for v in value]
            out[key] = value
        return out

    @classmethod
    def from_dict(cls, data: dict) -> BackendConfig:
        values = dict(data)
        for key in ("model_dir", "cache_dir"):
            if values.get(key) is not None:
                values[key] = Path(values[key])
        values["media_roots"] = tuple(Path(p) for p in values.get("media_roots", ()))
        values["media_hosts"] = tuple(values.get("media_hosts", ()))
        return cls(**values)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> BackendConfig:
        env = dict(os.environ if environ is None else environ)
        values: dict = {}
        for key, name in ENV.items():
            raw = env.get(name)
            if raw in (None, ""):
                continue
            if key in ("model_dir", "cache_dir"):
                values[key] = Path(raw)
            elif key in ("threads", "train_every"):
                values[key] = _int(name, raw)
            elif key in ("segment_tolerance", "finetune_min_improvement", "segments_per_second"):
                values[key] = float(raw)
            elif key == "media_roots":
                values[key] = tuple(Path(p) for p in raw.split(os.pathsep) if p)
            elif key == "media_hosts":
                values[key] = tuple(h.strip() for h in raw.split(",") if h.strip())
            else:
                values[key] = raw
        # Label Studio's own local-files root is a natural media root when the backend shares its disk
        root = env.get("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT")
        if root and "media_roots" not in values:
            values["media_roots"] = (Path(root),)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
