"""RQ side of background jobs: `mtclar worker` runs them where REDIS_URL points (several machines may)."""

from __future__ import annotations

import json

from .config import BackendConfig

_runtimes: dict[str, object] = {}


def run_job(project: int, config: dict) -> dict:
    """Executed by an RQ worker: the same fine-tune the thread runner does, against the shared store."""
    from .runtime import Runtime

    key = json.dumps(config, sort_keys=True)
    if key not in _runtimes:  # a worker keeps its loaded model between jobs
        _runtimes[key] = Runtime(BackendConfig.from_dict(config))
    runtime = _runtimes[key]
    return runtime.jobs.execute(project)  # type: ignore[attr-defined]
