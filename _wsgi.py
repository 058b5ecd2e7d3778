"""WSGI entry point: `gunicorn _wsgi:app` (settings from the environment; see README)."""

import logging
import os

from mtclar_backend.app import create_app_from_env

logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
app = create_app_from_env()
