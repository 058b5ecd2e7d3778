"""The Docker files stay in step with the settings the backend reads and with the README."""

import re
from pathlib import Path

import torch
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
    assert set(services) == {"label-studio", "backend", "backend-gpu", "worker", "redis"}
    assert services["label-studio"]["image"] == "heartexlabs/label-studio:1.23.2"
    known = set(ENV.values())
    for name in ("backend", "worker", "backend-gpu"):
        assert services[name]["build"]["dockerfile"] == ("docker/Dockerfile.gpu" if "gpu" in name else
                                                         "docker/Dockerfile")
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


def test_the_gpu_service_reserves_an_nvidia_gpu_under_its_own_profile():
    services = yaml.safe_load((REPO / "docker" / "docker-compose.yml").read_text())["services"]
    gpu = services["backend-gpu"]
    assert gpu["profiles"] == ["gpu"]  # a plain `docker compose up` stays CPU-only
    assert [name for name, service in services.items() if "profiles" in service] == ["backend-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert gpu["environment"]["MTCLAR_DEVICE"] == "cuda" and gpu["environment"]["MTCLAR_PRECISION"] in ("fp16", "fp32")
    published = {port.split(":")[0] for name in ("backend", "backend-gpu") for port in services[name]["ports"]}
    assert len(published) == 2, "both backends can run at once"
    assert gpu["volumes"] == services["backend"]["volumes"]  # the fine-tunes of the (CPU) worker serve on the GPU


def _pip_installs(dockerfile: str) -> list[str]:
    joined = dockerfile.replace("\\\n", " ")
    return [m.group(1).split("#")[0].strip() for m in re.finditer(r"pip install ([^&\n]*)", joined)]


def test_the_gpu_dockerfile_pins_its_cuda_torch_and_onnxruntime_gpu():
    dockerfile = (REPO / "docker" / "Dockerfile.gpu").read_text()
    base = re.search(r"^FROM nvidia/cuda:(\d+)\.(\d+)\.\d+-cudnn-runtime-ubuntu\d+\.\d+$", dockerfile, re.M)
    assert base, "a CUDA runtime image with cuDNN (ONNX Runtime's CUDA provider needs cuDNN 9)"
    if torch.version.cuda:  # the pinned PyPI wheel's CUDA: the base image must carry the same major version
        assert base.group(1) == torch.version.cuda.split(".")[0]
    installs = _pip_installs(dockerfile)
    assert installs[0] == "-r requirements.txt" and installs[1] == "-r requirements-gpu.txt", installs
    assert installs[2] == "--no-deps -e ."
    assert all("torch" not in line for line in installs), "torch comes pinned from requirements.txt only"
    # onnxruntime goes before onnxruntime-gpu comes: both own the `onnxruntime` module
    assert dockerfile.index("pip uninstall -y onnxruntime") < dockerfile.index("pip install -r requirements-gpu.txt")
    gpu_requirements = [line for line in (REPO / "docker" / "requirements-gpu.txt").read_text().splitlines()
                        if line.strip() and not line.startswith("#")]
    assert gpu_requirements == ["onnxruntime-gpu==1.31.1"]
    requirements = (REPO / "requirements.txt").read_text()
    assert "onnxruntime-gpu" not in requirements and "torch==2.14.1" in requirements
    assert "COPY requirements.txt docker/requirements-gpu.txt ./" in dockerfile
    assert "MTCLAR_DEVICE=cuda" in dockerfile and "_wsgi:app" in dockerfile and "USER 1000" in dockerfile
