"""Basic auth: misconfiguration stops start-up, any characters work, liveness needs no password."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest

from mtclar.model.errors import ConfigError
from mtclar.settings import Settings
from mtclar_backend.app import create_app
from mtclar_backend.runtime import Runtime


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize(("env", "message"), [
    ({"BASIC_AUTH_PASS": "x"}, "BASIC_AUTH_PASS is set but BASIC_AUTH_USER is not"),
    ({"BASIC_AUTH_USER": "x"}, "BASIC_AUTH_USER is set but BASIC_AUTH_PASS is not"),
    ({"LABEL_STUDIO_URL": "ftp://ls"}, "LABEL_STUDIO_URL"),
    ({"MTCLAR_MAX_TASKS": "many"}, "MTCLAR_MAX_TASKS"),
    ({"MTCLAR_MODEL_SLOTS": "0"}, "MTCLAR_MODEL_SLOTS"),
])
def test_misconfiguration_stops_start_up_naming_the_setting(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_serve_refuses_to_start_with_half_of_basic_auth(tmp_path):
    run = subprocess.run([sys.executable, "-m", "mtclar.cli", "serve", "--model-dir", str(tmp_path)],
                         env={"BASIC_AUTH_PASS": "only-a-password", "PATH": "/usr/bin:/bin"}, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2 and "BASIC_AUTH_USER" in run.stderr and "Traceback" not in run.stderr


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("auth")
    runtime = Runtime(Settings(model_dir=root / "m", cache_dir=root / "c", basic_auth_user="lab-ü",
                                    basic_auth_pass="pässwörd-✓"))
    return create_app(runtime).test_client()


def test_non_ascii_credentials_work_and_never_500(client):
    assert client.get("/metrics", headers=basic("lab-ü", "pässwörd-✓")).status_code == 200
    assert client.get("/metrics", headers=basic("lab-ü", "wrong")).status_code == 401
    assert client.get("/metrics", headers=basic("ünknown", "pässwörd-✓")).status_code == 401
    latin1 = {"Authorization": "Basic " + base64.b64encode("lab-ü:pässwörd".encode("latin-1")).decode()}
    assert client.get("/metrics", headers=latin1).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Basic !!!not-base64"}).status_code == 401


def test_liveness_is_public_and_the_rest_is_not(client):
    assert client.get("/health").status_code == 200  # the Docker HEALTHCHECK sends no credentials
    assert client.get("/").status_code == 200
    for path in ("/health?project=1", "/metrics"):
        assert client.get(path).status_code == 401
    assert client.post("/predict", json={"tasks": []}).status_code == 401
    assert client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 1}}).status_code == 401
