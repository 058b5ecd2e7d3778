"""Settings: read once from the environment, and written back for a child process (gunicorn workers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtclar.model.errors import ConfigError
from mtclar.settings import Settings


def test_a_child_process_gets_the_same_settings_back():
    settings = Settings.from_env({"MODEL_DIR": "/srv/m", "MTCLAR_MEDIA_ROOTS": "/a:/b", "MTCLAR_MEDIA_HOSTS": "h1,h2",
                                  "LABEL_STUDIO_URL": "http://ls:8080", "LABEL_STUDIO_API_KEY": "k",
                                  "MTCLAR_PREDICT_BUDGET_S": "7.5", "HOME": "/home/x"})
    overridden = settings.with_overrides(model_dir=Path("/other"), device=None)
    assert overridden.model_dir == Path("/other") and overridden.device == settings.device
    assert Settings.from_env(overridden.environment()) == overridden


def test_the_cache_defaults_to_the_users_cache_for_cli_and_server_alike():
    assert Settings.from_env({"HOME": "/home/x"}).cache_dir == Path("/home/x/.cache/mtclar")
    assert Settings.from_env({"XDG_CACHE_HOME": "/c", "HOME": "/h"}).cache_dir == Path("/c/mtclar")
    assert Settings.from_env({"MTCLAR_CACHE_DIR": "/e", "HOME": "/h"}).cache_dir == Path("/e")


@pytest.mark.parametrize("env, name", [({"MTCLAR_PREDICT_BUDGET_S": "0"}, "MTCLAR_PREDICT_BUDGET_S"),
                                       ({"WORLD_SIZE": "zero"}, "WORLD_SIZE"),
                                       ({"MTCLAR_EMBED_WORKERS": "-1"}, "MTCLAR_EMBED_WORKERS")])
def test_a_bad_value_names_its_variable(env, name):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env(env)
