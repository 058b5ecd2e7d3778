"""WSGI entry point: `gunicorn _wsgi:app` (settings from the environment; see README)."""

import logging

from mtclar.settings import Settings
from mtclar_backend.app import create_app
from mtclar_backend.runtime import Runtime

settings = Settings.from_env()
logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
app = create_app(Runtime(settings))
