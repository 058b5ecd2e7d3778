"""WSGI entry point: `gunicorn _wsgi:app` (settings from the environment; see README)."""

from mtclar_backend.wsgi import app

__all__ = ["app"]
