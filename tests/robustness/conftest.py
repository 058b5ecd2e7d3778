from __future__ import annotations

import sqlite3
from functools import partial
from pathlib import Path

import pytest

from mtclar.settings import Settings
from mtclar_backend.app import create_app
from mtclar_backend.label_configs import FRAME, VIDEO
from mtclar_backend.ls_format import parse_label_config, timeline_region  # noqa: E402
from mtclar_backend.runtime import Runtime

WOLFGANG_URL = "/data/local-files/?d=videos/WolfgangLanger_Pexels.mp4"
SINGLE_URL = "/data/local-files/?d=videos/single_face.mp4"
NO_FACE_URL = "/data/local-files/?d=videos/no_face.mp4"


region = partial(timeline_region, parse_label_config(VIDEO))  # (id, start, end, valence, arousal)


def frame_result(v, a):
    return [{"id": "v", "from_name": "valence", "to_name": "frame", "type": "number", "value": {"number": v}},
            {"id": "a", "from_name": "arousal", "to_name": "frame", "type": "number", "value": {"number": a}}]


def snapshot(runtime: Runtime) -> list[str]:
    """Everything the SQLite store holds, as SQL."""
    with sqlite3.connect(Path(runtime.config.model_dir) / "anchors.sqlite3") as db:
        return list(db.iterdump())


@pytest.fixture(scope="session")
def robust_runtime(tmp_path_factory, shared_dir) -> Runtime:
    root = tmp_path_factory.mktemp("robust")
    return Runtime(Settings(model_dir=root / "model", cache_dir=root / "cache", media_roots=(shared_dir / "data",),
                                 max_body_mb=2.0, max_tasks=50, max_frame=100_000))


@pytest.fixture(scope="session")
def robust_client(robust_runtime):
    client = create_app(robust_runtime).test_client()
    # project 1: video mode with one annotated task; project 2: frame mode
    assert client.post("/setup", json={"project": "1.1", "schema": VIDEO}).status_code == 200
    assert client.post("/setup", json={"project": "2.1", "schema": FRAME}).status_code == 200
    hook = {"action": "ANNOTATION_CREATED", "project": {"id": 1, "label_config": VIDEO},
            "task": {"id": 10, "data": {"video": SINGLE_URL}},
            "annotation": {"id": 100, "result": region("a", 1, 5, -0.2, 0.1) + region("b", 60, 64, 0.5, 0.3)}}
    assert client.post("/webhook", json=hook).status_code == 201
    return client


@pytest.fixture(scope="session")
def configs() -> dict:
    return {"video": VIDEO, "frame": FRAME}
