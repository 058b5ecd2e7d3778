"""/health answers while every HTTP thread is busy with predictions (a real `mtclar serve` on loopback)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from .conftest import region


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_health_does_not_queue_behind_predictions(tmp_path, shared_dir):
    from mtclar_backend.label_configs import VIDEO

    port = free_port()
    env = {**os.environ, "MODEL_DIR": str(tmp_path / "m"), "MTCLAR_CACHE_DIR": str(tmp_path / "c"),
           "MTCLAR_MEDIA_ROOTS": str(shared_dir / "data"), "HTTP_THREADS": "2", "MTCLAR_MODEL_SLOTS": "1"}
    mtclar = Path(sys.executable).with_name("mtclar")
    server = subprocess.Popen([str(mtclar), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            assert server.poll() is None, f"mtclar serve exited with code {server.returncode}"
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        finished: list[float] = []

        def cold_predict(i: int) -> None:  # every request embeds the 472-frame clip or waits for it
            task = {"id": i, "data": {"video": "/data/local-files/?d=videos/WolfgangLanger_Pexels.mp4"},
                    "annotations": [{"id": 100 + i, "result": region("a", 1, 3, 0.1, 0.1)}]}
            httpx.post(f"{base}/predict", json={"tasks": [task], "project": "1.1", "label_config": VIDEO},
                       timeout=300)
            finished.append(time.perf_counter())

        clients = [threading.Thread(target=cold_predict, args=(i,)) for i in range(6)]  # 3x the HTTP threads
        for client in clients:
            client.start()
        time.sleep(0.5)
        answered = []
        for _ in range(5):
            started = time.perf_counter()
            assert httpx.get(f"{base}/health", timeout=10).status_code == 200
            answered.append((started, time.perf_counter()))
            time.sleep(0.2)
        for client in clients:
            client.join(300)
        assert len(finished) == 6
        # every health check was answered while predictions were still waiting for the threads
        assert all(done < min(finished) for _, done in answered), (answered, finished)
    finally:
        server.terminate()
        server.wait(30)
