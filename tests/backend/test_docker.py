"""The Docker files stay in step with the settings the backend reads and with the README."""

from pathlib import Path

import yaml

from mtclar.settings import ENV

REPO = Path(__file__).resolve().parents[2]
LABEL_STUDIO_OWN = {"LABEL_STUDIO_USERNAME", "LABEL_STUDIO_PASSWORD", "LABEL_STUDIO_USER_TOKEN",
                    "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN", "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED",
                    "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT", "ML_BLOCK_LOCAL_IP", "SSRF_PROTECTION_ENABLED",
                    "LATEST_VERSION_CHECK", "COLLECT_ANALYTICS"}


def test_compose_services_and_their_settings():
    compose = yaml.safe_load((REPO / "docker" / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"label-studio", "backend", "worker", "redis"}
    assert services["label-studio"]["image"] == "heartexlabs/label-studio:1.23.2"
    known = set(ENV.values())
    for name in ("backend", "worker"):
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile"
        unknown = set(services[name]["environment"]) - known
        assert not unknown, f"{name} sets variables the backend does not read: {unknown}"
        assert services[name]["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert services["worker"]["command"] == ["mtclar", "worker"]
    assert set(services["label-studio"]["environment"]) <= LABEL_STUDIO_OWN


def test_every_setting_is_documented():
    readme = (REPO / "README.md").read_text()
    missing = [name for name in ENV.values() if f"`{name}`" not in readme and f"`{name}`," not in readme
               and name not in readme]
    assert not missing, f"README does not document {missing}"


def test_dockerfile_serves_the_wsgi_app_with_the_pinned_requirements():
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    assert "pip install -r requirements.txt" in dockerfile and "_wsgi:app" in dockerfile
    requirements = (REPO / "requirements.txt").read_text()
    assert "torch==2.14.1" in requirements and "torchvision==0.29.1" in requirements
