"""RQ side of the backend's background jobs: `mtclar worker` runs them where REDIS_URL points (several
machines may).

A fine-tune job carries only the project id; an embedding job the kind of media and the task's media
reference. The worker builds its own settings from its own environment (the CLI entry calls ``configure``)
and keeps one runtime, with its loaded model, between jobs.
"""

from __future__ import annotations

from mtclar.settings import Settings

_settings: Settings | None = None
_runtime = None


def configure(settings: Settings) -> None:
    global _settings, _runtime
    _settings, _runtime = settings, None


def _the_runtime():
    global _runtime
    from .runtime import Runtime

    if _settings is None:
        raise RuntimeError("the RQ worker was not configured: start it with `mtclar worker`")
    if _runtime is None:
        _runtime = Runtime(_settings)
    return _runtime


def run_job(project: int) -> dict:
    """Executed by an RQ worker: the same fine-tune the thread runner does, against the shared store."""
    return _the_runtime().jobs.execute(project)


def embed_job(kind: str, media: dict) -> dict:
    """Executed by an RQ worker: embed one task's media into the shared cache (``RQEmbeddingQueue.run``)."""
    from .ls_format import TaskMedia

    return _the_runtime().embeddings.run(kind, TaskMedia(**media))
