"""Load on a real `mtclar serve` (gunicorn, loopback): concurrent clients, errors, latency of /predict and of
/health (probed all along), server RSS before and after.

    python benchmarks/load.py [--clients 50] [--requests 4] [--cold-clients 16] [--port 9391]

Scenario "warm": N clients x R predictions of a video whose embeddings are cached.
Scenario "cold": M clients at once asking for a video nobody embedded yet.
A prober asks /health every 50 ms throughout; Label Studio gives it 1 s. Bounded in count and time; the
server is stopped at the end. Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.processes import children, rss_mb  # noqa: E402
from mtclar_backend.label_configs import VIDEO  # noqa: E402
from mtclar_backend.ls_format import parse_label_config, timeline_region  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
CONFIG = """<View>
  <Video name="video" value="$video" frameRate="$fps" timelineHeight="120"/>
  <TimelineLabels name="segment" toName="video"><Label value="VA"/></TimelineLabels>
  <Number name="valence" toName="video" perRegion="true" min="-1" max="1" step="0.01" slider="true"/>
  <Number name="arousal" toName="video" perRegion="true" min="-1" max="1" step="0.01" slider="true"/>
</View>"""


region = partial(timeline_region, parse_label_config(VIDEO))  # (id, start, end, valence, arousal)


def task(task_id: int, video: str, n_frames: int) -> dict:
    result = region("a", 1, 3, -0.2, 0.1) + region("b", n_frames - 3, n_frames, 0.4, 0.3)
    return {"id": task_id, "data": {"video": f"/data/local-files/?d=videos/{video}"},
            "annotations": [{"id": task_id * 10, "result": result}]}


def server_rss(master: int) -> tuple[float, float]:
    return rss_mb(master), sum(rss_mb(p) for p in children(master))


class Prober(threading.Thread):
    """GET /health every ``every`` seconds until stopped; records latencies and failures."""

    def __init__(self, base: str, every: float = 0.05):
        super().__init__(daemon=True)
        self.base, self.every = base, every
        self.latencies: list[float] = []
        self.errors = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while not self.stop.wait(self.every):
                started = time.perf_counter()
                try:
                    ok = client.get(f"{self.base}/health").status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.latencies.append(time.perf_counter() - started)
                self.errors += not ok


def scenario(base: str, name: str, jobs: list[dict], clients: int, deadline_s: float) -> dict:
    prober = Prober(base)
    prober.start()
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client_run(my_jobs: list[dict]) -> None:
        with httpx.Client(timeout=deadline_s) as client:
            for body in my_jobs:
                started = time.perf_counter()
                try:
                    response = client.post(f"{base}/predict", json=body)
                    ok = response.status_code == 200 and len(response.json()["results"]) == len(body["tasks"]) \
                        and all(r["result"] for r in response.json()["results"])
                    problem = None if ok else f"HTTP {response.status_code}: {response.text[:120]}"
                except httpx.HTTPError as error:
                    problem = f"{type(error).__name__}: {error}"
                with lock:
                    latencies.append(time.perf_counter() - started)
                    if problem:
                        errors.append(problem)

    per_client = [jobs[i::clients] for i in range(clients)]
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client_run, per_client))
    wall = time.perf_counter() - started
    prober.stop.set()
    prober.join()
    health = np.array(prober.latencies or [np.nan])
    predict = np.array(latencies or [np.nan])
    return {"scenario": name, "clients": clients, "requests": len(jobs), "errors": len(errors),
            "error_examples": errors[:3], "wall_s": round(wall, 2),
            "predict_p50_s": round(float(np.percentile(predict, 50)), 3),
            "predict_p99_s": round(float(np.percentile(predict, 99)), 3),
            "health_n": len(prober.latencies), "health_errors": prober.errors,
            "health_p50_s": round(float(np.percentile(health, 50)), 4),
            "health_p99_s": round(float(np.percentile(health, 99)), 4),
            "health_max_s": round(float(np.max(health)), 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=4, help="predictions per warm client")
    parser.add_argument("--cold-clients", type=int, default=16)
    parser.add_argument("--port", type=int, default=9391)
    parser.add_argument("--timeout", type=float, default=300.0, help="per request, seconds")
    args = parser.parse_args()
    if not (1 <= args.clients <= 200 and 1 <= args.requests <= 20 and 1 <= args.cold_clients <= 64):
        parser.error("keep the load bounded: clients <= 200, requests <= 20, cold clients <= 64")

    work = Path(tempfile.mkdtemp(prefix="mtclar-load-"))
    env = {**os.environ, "MODEL_DIR": str(work / "model"), "MTCLAR_CACHE_DIR": str(work / "cache"),
           "MTCLAR_MEDIA_ROOTS": str(SHARED), "PORT": str(args.port), "LOG_LEVEL": "WARNING"}
    env.pop("LABEL_STUDIO_URL", None)
    mtclar = Path(sys.executable).with_name("mtclar")
    with open(work / "server.log", "w") as log:
        server = subprocess.Popen([str(mtclar), "serve", "--host", "127.0.0.1", "--port", str(args.port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise SystemExit(f"the server did not come up; see {work / 'server.log'}")
        rss_before = server_rss(server.pid)
        warm_task = task(1, "single_face.mp4", 72)
        httpx.post(f"{base}/predict", json={"tasks": [warm_task], "project": "1.1", "label_config": CONFIG},
                   timeout=args.timeout).raise_for_status()  # embeds the warm video once
        warm_jobs = [{"tasks": [task(100 + i, "single_face.mp4", 72)], "project": f"{1 + i % 5}.1",
                      "label_config": CONFIG} for i in range(args.clients * args.requests)]
        rows = [scenario(base, "warm", warm_jobs, args.clients, args.timeout)]
        cold_jobs = [{"tasks": [task(1000 + i, "WolfgangLanger_Pexels.mp4", 472)], "project": "9.1",
                      "label_config": CONFIG} for i in range(args.cold_clients)]
        rows.append(scenario(base, "cold", cold_jobs, args.cold_clients, args.timeout))
        rss_after = server_rss(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)

    header = ("scenario", "clients", "requests", "errors", "wall_s", "predict_p50_s", "predict_p99_s", "health_n",
              "health_errors", "health_p50_s", "health_p99_s", "health_max_s")
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(str(row[k]) for k in header))
        for example in row["error_examples"]:
            print(f"  error: {example}")
    print(f"RSS MB: master {rss_before[0]:.0f} -> {rss_after[0]:.0f}, worker {rss_before[1]:.0f} -> "
          f"{rss_after[1]:.0f}")
    print(json.dumps({"benchmark": "load", "rows": rows, "rss_mb": {"master_before": rss_before[0],
                      "worker_before": rss_before[1], "master_after": rss_after[0], "worker_after": rss_after[1]}}))
    return 0 if all(r["errors"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
