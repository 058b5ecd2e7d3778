from __future__ import annotations

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
