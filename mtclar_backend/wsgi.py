"""The WSGI app built from the environment: `gunicorn mtclar_backend.wsgi:app` (what `mtclar serve` and
`_wsgi.py` run). Importing it builds the settings once and loads the model, so only workers import it."""

import logging

from mtclar.settings import Settings
from mtclar_backend.app import create_app
from mtclar_backend.runtime import Runtime

settings = Settings.from_env()
logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
app = create_app(Runtime(settings))
