"""Serving latency of the ML backend over HTTP (a real gunicorn server), cold and warm.

    python benchmarks/serving.py [--video PATH] [--concurrency 4]

Starts `mtclar serve` on a free port with an empty model dir and embedding cache, then measures:
/predict of a whole-video task (cold: nothing cached; warm: embeddings cached), the time from a new
anchor (webhook) to refreshed predictions, /predict of a frame task (cold, warm), warm whole-video
requests in parallel, and the server's resident memory. Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import cv2
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.processes import rss_mb  # noqa: E402
from mtclar_backend.label_configs import FRAME, VIDEO  # noqa: E402
from mtclar_backend.ls_format import parse_label_config, timeline_region  # noqa: E402

DEFAULT_VIDEO = ROOT.parent / "shared" / "data" / "videos" / "WolfgangLanger_Pexels.mp4"


region = partial(timeline_region, parse_label_config(VIDEO))  # (id, start, end, valence, arousal)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mtclar-serving-"))
    media = work / "media"
    (media / "frames").mkdir(parents=True)
    shutil.copy(args.video, media / args.video.name)
    capture = cv2.VideoCapture(str(args.video))
    for i in range(3):
        ok, frame = capture.read()
        cv2.imwrite(str(media / "frames" / f"{i:05d}.png"), frame)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MODEL_DIR": str(work / "model"), "MTCLAR_CACHE_DIR": str(work / "cache"),
           "MTCLAR_MEDIA_ROOTS": str(media)}
    server = subprocess.Popen([sys.executable, "-m", "mtclar.cli", "serve", "--host", "127.0.0.1", "--port",
                               str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=url, timeout=600)
    try:
        start = time.perf_counter()
        while True:
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.perf_counter() - start > 120:
                raise SystemExit("the backend did not start")
            time.sleep(0.2)
        startup = time.perf_counter() - start
        rows: list[tuple[str, float, str]] = [("server start-up (model loaded)", startup, "")]
        task = {"id": 1, "data": {"video": f"/data/local-files/?d={args.video.name}", "fps": 23.976}}
        annotation = {"id": 1, "result": region("a", 1, 3, -0.4, -0.2) + region("b", 200, 202, 0.2, 0.3)}
        client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 1, "label_config": VIDEO},
                                      "task": task, "annotation": annotation}).raise_for_status()

        def predict(tasks, config=VIDEO) -> float:
            t = time.perf_counter()
            response = client.post("/predict", json={"tasks": tasks, "project": "1.1", "label_config": config})
            response.raise_for_status()
            return time.perf_counter() - t

        n_frames = int(cv2.VideoCapture(str(args.video)).get(cv2.CAP_PROP_FRAME_COUNT))
        rows.append((f"/predict whole video ({n_frames} frames), cold", predict([task]), "decode+detect+encode"))
        warm = [predict([task]) for _ in range(args.repeats)]
        rows.append(("/predict whole video, warm (median)", statistics.median(warm), f"n={len(warm)}"))
        refresh = []
        for i in range(args.repeats):
            t = time.perf_counter()
            more = {"id": 1, "result": annotation["result"] + region("c", 400 + i, 402 + i, 0.7, 0.5)}
            client.post("/webhook", json={"action": "ANNOTATION_UPDATED", "project": {"id": 1, "label_config": VIDEO},
                                          "task": task, "annotation": more}).raise_for_status()
            predict([task])
            refresh.append(time.perf_counter() - t)
        rows.append(("new anchor -> refreshed predictions (median)", statistics.median(refresh), "webhook + predict"))
        frame_task = {"id": 2, "data": {"image": "/data/local-files/?d=frames/00001.png", "video_id": "v", "frame": 1}}
        anchor_task = {"id": 3, "data": {"image": "/data/local-files/?d=frames/00000.png", "video_id": "v", "frame": 0}}
        result = [{"id": k, "from_name": k, "to_name": "frame", "type": "number", "value": {"number": 0.1}}
                  for k in ("valence", "arousal")]
        client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 2, "label_config": FRAME},
                                      "task": anchor_task, "annotation": {"id": 9, "result": result}})

        def predict_frame() -> float:
            t = time.perf_counter()
            client.post("/predict", json={"tasks": [frame_task], "project": "2.1", "label_config": FRAME}
                        ).raise_for_status()
            return time.perf_counter() - t

        rows.append(("/predict frame task, cold", predict_frame(), "detect+encode 1 image"))
        rows.append(("/predict frame task, warm (median)", statistics.median(predict_frame() for _ in range(5)), ""))
        with ThreadPoolExecutor(args.concurrency) as pool:
            t = time.perf_counter()
            latencies = list(pool.map(lambda _: predict([task]), range(args.concurrency * 2)))
            wall = time.perf_counter() - t
        rows.append((f"{args.concurrency} parallel warm video requests: median latency", statistics.median(latencies),
                     f"{len(latencies) / wall:.1f} req/s"))
        memory = rss_mb(server.pid, with_children=True)
    finally:
        client.close()
        server.terminate()
        server.wait(30)
        shutil.rmtree(work, ignore_errors=True)

    width = max(len(r[0]) for r in rows)
    print(f"backend: gunicorn gthread, 1 worker; {os.cpu_count()} CPUs; video {args.video.name}")
    print(f"{'measurement'.ljust(width)} | seconds | note")
    print(f"{'-' * width}-+---------+------")
    for name, seconds, note in rows:
        print(f"{name.ljust(width)} | {seconds:7.3f} | {note}")
    print(f"{'server RSS after the run (MB)'.ljust(width)} | {memory:7.0f} |")
    print(json.dumps({"benchmark": "serving", "rows": [{"name": n, "seconds": round(s, 4)} for n, s, _ in rows],
                      "rss_mb": round(memory)}))


if __name__ == "__main__":
    main()
