from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
VIDEOS = SHARED / "data" / "videos"
STILLS = SHARED / "data" / "stills"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"the shared data folder is missing: expected {SHARED} beside the repository")
    return SHARED


@pytest.fixture(scope="session")
def videos(shared_dir: Path) -> Path:
    return shared_dir / "data" / "videos"


@pytest.fixture(scope="session")
def stills(shared_dir: Path) -> Path:
    return shared_dir / "data" / "stills"


@pytest.fixture(scope="session")
def face_pipeline():
    from mtclar.model.face import FacePipeline

    return FacePipeline()


@pytest.fixture(scope="session")
def encoder():
    from mtclar.model.encoders import create_encoder

    return create_encoder("faceapi-expression")


@pytest.fixture(scope="session")
def embedder(face_pipeline, encoder, tmp_path_factory):
    from mtclar.model.embeddings import EmbeddingCache, VideoEmbedder

    return VideoEmbedder(face_pipeline, encoder, EmbeddingCache(tmp_path_factory.mktemp("embedding-cache")))


@pytest.fixture(scope="session")
def start_redis(tmp_path_factory) -> Iterator[Callable[[], str]]:
    """Starts a real redis-server on loopback per call and gives its URL (CI installs Debian's redis-server);
    every server stops at the end of the session."""
    binary = shutil.which("redis-server")
    processes: list[subprocess.Popen] = []

    def start() -> str:
        if binary is None:
            if os.environ.get("MTCLAR_REQUIRE_E2E") == "1":
                pytest.fail("redis-server is not installed (apt-get install redis-server)")
            pytest.skip("redis-server is not installed")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        processes.append(subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(tmp_path_factory.mktemp("redis"))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        import redis

        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return f"redis://127.0.0.1:{port}/0"
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    yield start
    for process in processes:
        process.terminate()
        process.wait(10)

