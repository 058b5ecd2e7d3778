"""RQ side of background jobs: `mtclar worker` runs them where REDIS_URL points (several machines may)."""

from __future__ import annotations

from pathlib import Path

from .config import BackendConfig

_runtimes: dict[str, object] = {}


def run_job(project: int, config: dict) -> dict:
    """Executed by an RQ worker: the same fine-tune the thread runner does, against the shared store."""
    from .runtime import Runtime

    key = repr(sorted(config.items()))
    if key not in _runtimes:
        fields = {k: Path(v) if k in ("model_dir", "cache_dir") and v else v for k, v in config.items()}
        _runtimes[key] = Runtime(BackendConfig(**fields))
    runtime = _runtimes[key]
    return runtime.jobs.execute(project)  # type: ignore[attr-defined]
