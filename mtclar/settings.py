"""Settings: the environment read once, typed, by the process entry (``_wsgi.py`` or ``mtclar``) and passed down.

The only module that reads the environment. Every process builds its own: settings (and the secrets in them)
never travel through Redis. ``Settings()`` without the environment is the documented defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

from mtclar.model.errors import ConfigError
from mtclar.model.precision import PRECISIONS
from mtclar_backend.ls_api import origin

ENV = {
    "model_dir": "MODEL_DIR",
    "checkpoint": "MTCLAR_CHECKPOINT",
    "encoder_weights": "MTCLAR_ENCODER_WEIGHTS",
    "device": "MTCLAR_DEVICE",
    "precision": "MTCLAR_PRECISION",
    "batch_size": "MTCLAR_BATCH_SIZE",
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
    "max_body_mb": "MTCLAR_MAX_BODY_MB",
    "max_tasks": "MTCLAR_MAX_TASKS",
    "max_frame": "MTCLAR_MAX_FRAME",
    "model_slots": "MTCLAR_MODEL_SLOTS",
    "predict_budget_s": "MTCLAR_PREDICT_BUDGET_S",
    "embed_workers": "MTCLAR_EMBED_WORKERS",
    "suggest_k": "MTCLAR_SUGGEST_K",
    "host": "HOST",
    "port": "PORT",
    "workers": "WORKERS",
    "http_threads": "HTTP_THREADS",
    "log_level": "LOG_LEVEL",
}
# set by torchrun for each process it starts; read here so that nothing else reads the environment
TORCHRUN = {"world_size": "WORLD_SIZE", "rank": "RANK", "local_rank": "LOCAL_RANK",
            "local_world_size": "LOCAL_WORLD_SIZE"}
INTEGERS = ("threads", "batch_size", "train_every", "max_tasks", "max_frame", "model_slots", "port", "workers",
            "http_threads", "embed_workers", "suggest_k")
FLOATS = ("segment_tolerance", "finetune_min_improvement", "segments_per_second", "max_body_mb", "predict_budget_s")
MAX_SUGGEST_K = 50
SECRETS = ("label_studio_api_key", "basic_auth_pass")


@dataclass(frozen=True)
class Settings:
    model_dir: Path = Path("./mtclar-data")  # anchor store, project checkpoints, media cache
    checkpoint: str | None = None  # base model; None = the shipped default
    encoder_weights: str | None = None
    device: str = "auto"
    precision: str = "auto"  # the encoder on CUDA: fp16 (autocast) or fp32; auto = fp16 on CUDA, fp32 on CPU
    batch_size: int = 16  # frames decoded, detected and encoded per batch
    threads: int = 0
    cache_dir: Path | None = None  # embedding cache; from_env: MTCLAR_CACHE_DIR, else ~/.cache/mtclar (CLI and
    # server alike); a Settings built in code without one uses <model_dir>/cache
    label_studio_url: str | None = None
    label_studio_api_key: str | None = None
    basic_auth_user: str | None = None
    basic_auth_pass: str | None = None
    redis_url: str | None = None
    media_roots: tuple[Path, ...] = ()  # local folders task media may be read from directly
    media_hosts: tuple[str, ...] = ()  # hosts plain http(s) media may be fetched from, without credentials
    train_every: int = 0  # start a fine-tune after this many new annotations (0: only on request)
    segment_tolerance: float = 0.05  # max |value - segment value| when merging frames into segments
    segments_per_second: float = 1.0  # at most this many predicted segments per second of video (the
    # tolerance grows, up to 0.2, until they fit): one timeline row each in the editor
    # a fine-tuned model replaces the serving one when its held-out error (mean of V and A RMSE, leave-one-segment-out;
    # leave-one-video-out with 3+ videos)
    # is lower by at least this much; a negative value accepts any fine-tune (e.g. to exercise the loop)
    finetune_min_improvement: float = 0.005
    max_body_mb: float = 32.0  # larger request bodies get 413 before they are read
    max_tasks: int = 20_000  # tasks in one /predict (Label Studio sends every selected task at once)
    max_frame: int = 2_000_000  # largest frame number in a range or data.frame (~18 h at 30 fps)
    model_slots: int = 2  # requests doing model work at once; the others wait, /health never does
    # a /predict answers within about this many seconds (Label Studio gives it 100 and stores nothing on a
    # timeout): tasks whose video is still being embedded get no prediction now, and a new model version later
    predict_budget_s: float = 20.0
    embed_workers: int = 1  # videos embedded in the background at once (each takes a model slot: keep it
    # below model_slots, or labelling waits for an embedding to finish)
    suggest_k: int = 3  # frames to label next, marked "label me" in a prediction whose config has that label
    host: str = "0.0.0.0"  # mtclar serve
    port: int = 9090
    workers: int = 1  # gunicorn worker processes (each loads the model)
    http_threads: int = 8  # threads per worker, so webhooks and health answer during a long predict
    log_level: str = "INFO"
    world_size: int = 1  # torchrun's process layout (1: a single process)
    rank: int = 0
    local_rank: int = 0
    local_world_size: int = 1

    def __post_init__(self) -> None:
        if bool(self.basic_auth_user) != bool(self.basic_auth_pass):
            given, missing = ("BASIC_AUTH_USER", "BASIC_AUTH_PASS") if self.basic_auth_user else \
                ("BASIC_AUTH_PASS", "BASIC_AUTH_USER")
            raise ConfigError(f"{given} is set but {missing} is not: set both to require basic auth, or neither")
        if self.label_studio_url and origin(self.label_studio_url) is None:
            raise ConfigError(f"LABEL_STUDIO_URL={self.label_studio_url!r} is not an http(s) URL with a host")
        for key in ("threads", "train_every", "suggest_k"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{ENV.get(key) or TORCHRUN[key]}={getattr(self, key)} must be >= 0")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"MTCLAR_PRECISION={self.precision!r} is not one of {', '.join(PRECISIONS)}")
        for key in ("batch_size", "max_body_mb", "max_tasks", "max_frame", "model_slots", "segments_per_second",
                    "workers", "predict_budget_s", "embed_workers",
                    "http_threads", "world_size", "local_world_size"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{ENV.get(key) or TORCHRUN[key]}={getattr(self, key)} must be > 0")
        if not self.predict_budget_s < 3600:
            raise ConfigError(f"MTCLAR_PREDICT_BUDGET_S={self.predict_budget_s} must be under an hour "
                              "(Label Studio gives /predict 100 s)")
        if self.suggest_k > MAX_SUGGEST_K:
            raise ConfigError(f"MTCLAR_SUGGEST_K={self.suggest_k} must be at most {MAX_SUGGEST_K} (each suggestion "
                              "is a greedy search over the video)")
        if not 0 <= self.segment_tolerance <= 1:
            raise ConfigError(f"MTCLAR_SEGMENT_TOLERANCE={self.segment_tolerance} must lie in [0, 1]")

    def __repr__(self) -> str:  # never print a secret into a log
        shown = {f.name: ("***" if f.name in SECRETS and getattr(self, f.name) else getattr(self, f.name))
                 for f in fields(self)}
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def environment(self) -> dict[str, str]:
        """This process's environment with these settings written in: what makes ``from_env`` in a child
        process (a gunicorn worker) give them back."""
        env = dict(os.environ)
        env.setdefault("MALLOC_ARENA_MAX", "2")  # glibc: fewer per-thread heaps, less memory held by idle threads
        for key, name in ENV.items():
            value = getattr(self, key)
            if value is None:
                continue
            env[name] = os.pathsep.join(map(str, value)) if key == "media_roots" else \
                ",".join(value) if key == "media_hosts" else str(value)
        return env

    def with_overrides(self, **values) -> Settings:
        """These settings with the given values where they are not None (command-line options over the env)."""
        return replace(self, **{key: value for key, value in values.items() if value is not None})

    @property
    def embedding_cache(self) -> Path:
        return (self.cache_dir or self.model_dir / "cache") / "embeddings"

    @property
    def media_cache(self) -> Path:
        return self.model_dir / "media"

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> Settings:
        env = dict(os.environ if environ is None else environ)
        values: dict = {"cache_dir": default_cache_dir(env)}
        for key, name in {**ENV, **TORCHRUN}.items():
            raw = env.get(name)
            if raw in (None, ""):
                continue
            if key in ("model_dir", "cache_dir"):
                values[key] = Path(raw)
            elif key in INTEGERS or key in TORCHRUN:
                values[key] = _number(name, raw, int)
            elif key in FLOATS:
                values[key] = _number(name, raw, float)
            elif key == "media_roots":
                values[key] = tuple(Path(p) for p in raw.split(os.pathsep) if p)
            elif key == "media_hosts":
                values[key] = tuple(h.strip().lower() for h in raw.split(",") if h.strip())
            else:
                values[key] = raw
        # Label Studio's own local-files root is a natural media root when the backend shares its disk
        root = env.get("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT")
        if root and "media_roots" not in values:
            values["media_roots"] = (Path(root),)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def default_cache_dir(env: dict[str, str]) -> Path:
    xdg = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(env.get("MTCLAR_CACHE_DIR") or Path(xdg) / "mtclar")


def _number(name: str, raw: str, kind: type) -> int | float:
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a{' whole' if kind is int else ''} number") from None
    if kind is float and value != value:  # NaN
        raise ConfigError(f"{name}={raw!r} is not a number")
    return value
