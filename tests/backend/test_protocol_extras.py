"""/versions and /job_status, the two calls Label Studio 1.23.2 makes beside the classic protocol."""

from __future__ import annotations

import pytest

from mtclar.model.files import utc_now
from mtclar.settings import Settings
from mtclar_backend.app import create_app
from mtclar_backend.runtime import Runtime


@pytest.fixture
def client_and_runtime(tmp_path, shared_dir):
    runtime = Runtime(Settings(model_dir=tmp_path / "model", cache_dir=tmp_path / "cache",
                               media_roots=(shared_dir / "data",)))
    return create_app(runtime).test_client(), runtime


def test_versions_lists_the_base_model_then_the_projects_kept_fine_tunes(client_and_runtime, tmp_path):
    client, runtime = client_and_runtime
    base = runtime.base.model_version
    assert client.get("/versions").get_json() == {"versions": [base]}
    for project, name in ((3, f"{base}-ft1"), (3, f"{base}-ft2"), (4, f"{base}-ft1")):
        folder = tmp_path / "model" / "projects" / str(project) / "checkpoints" / name
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
    body = client.get("/versions?project=3").get_json()
    assert body["versions"] == [base, f"{base}-ft1", f"{base}-ft2"] and body["model_version"].startswith(base)
    assert client.get("/versions").get_json()["versions"] == [base, f"{base}-ft1", f"{base}-ft2"]


def test_job_status_follows_the_job_a_train_webhook_answered_with(client_and_runtime):
    client, runtime = client_and_runtime
    runtime.store.set_state(5, "training", {"status": "running", "job": "5-abc", "progress": 0.4,
                                            "started": utc_now(), "heartbeat": utc_now()})
    body = client.post("/job_status", json={"job": "5-abc"}).get_json()
    assert body["job_status"] == "started" and body["progress"] == 0.4
    runtime.store.set_state(5, "training", {"status": "done", "job": "5-abc", "kept_new": False})
    assert client.post("/job_status", json={"job": "5-abc"}).get_json()["job_status"] == "finished"
    runtime.store.set_state(5, "training", {"status": "failed", "job": "5-abc", "message": "x"})
    assert client.post("/job_status", json={"job": "5-abc"}).get_json()["job_status"] == "failed"


@pytest.mark.parametrize("job", ["5-older", "nope", "99-abc"])
def test_an_unknown_or_replaced_job_is_gone(client_and_runtime, job):
    client, runtime = client_and_runtime
    runtime.store.set_state(5, "training", {"status": "done", "job": "5-abc"})
    response = client.post("/job_status", json={"job": job})
    assert response.status_code == 410 and "unknown" in response.get_json()["message"]


@pytest.mark.parametrize("body", [{}, {"job": ""}, {"job": 5}, {"job": "x" * 500}])
def test_a_malformed_job_status_request_is_a_400_naming_the_field(client_and_runtime, body):
    client, _ = client_and_runtime
    response = client.post("/job_status", json=body)
    assert response.status_code == 400 and "job" in response.get_json()["message"]
