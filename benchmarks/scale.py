"""Scale: a real Label Studio, a dozen one-minute videos and one ten-minute video, *Retrieve predictions* for all.

    python benchmarks/scale.py [--clips 12] [--minutes 1] [--long-minutes 10] [--budget 20] [--frame-tasks 10000]

For each scenario: the clips are made from the shipped face clips (looped from different offsets, so no two
share embeddings), imported into a fresh Label Studio project, labelled with 3 segments each through the API,
and the backend (`mtclar serve`, gunicorn, cold embedding cache) is connected; then *Retrieve predictions*
runs for every task, again and again, until every task holds a non-empty prediction of the backend's current
model version. Prints the time until then, the longest /predict, and the RSS of the gunicorn master and its
worker (peak while it ran, and at rest afterwards), as a table and a JSON line.

``--frame-tasks N``: N frame-mode tasks (one image each, 2 of them labelled) in one /predict straight to the
backend (Label Studio sends every selected task in one request): how long each request takes and how many
requests until every task has its prediction.

One hour of video: ``--clips 0 --long-minutes 60 --timeout 7200`` (90,000 frames at 25 fps); the worker's RSS
peak is the streaming embedding's.
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
from pathlib import Path

import cv2
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.processes import children, pss_mb, rss_mb  # noqa: E402
from mtclar_backend.importer import Importer, plan_items  # noqa: E402
from mtclar_backend.label_configs import VIDEO  # noqa: E402
from mtclar_backend.ls_api import LabelStudioAPI  # noqa: E402
from mtclar_backend.ls_format import parse_label_config, timeline_region  # noqa: E402
from tests.e2e.label_studio import LabelStudioClient, LabelStudioServer, free_port  # noqa: E402

SOURCES = ROOT.parent / "shared" / "data" / "videos"
SOURCE_CLIPS = ("single_face.mp4", "WolfgangLanger_Pexels.mp4", "face_noface.mov")
FPS, SIZE = 25.0, (640, 360)
SETUP = parse_label_config(VIDEO)


def source_frames() -> list:
    frames = []
    for name in SOURCE_CLIPS:
        capture = cv2.VideoCapture(str(SOURCES / name))
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.resize(frame, SIZE))
        capture.release()
    return frames


def make_clip(path: Path, frames: list, n_frames: int, offset: int) -> Path:
    """``n_frames`` of the source frames from ``offset`` on, looped (cached by name)."""
    if path.is_file():
        return path
    part = path.with_suffix(".part.mp4")
    writer = cv2.VideoWriter(str(part), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    for i in range(n_frames):
        writer.write(frames[(offset + i) % len(frames)])
    writer.release()
    part.rename(path)
    return path


class Backend:
    def __init__(self, media_root: Path, ls_url: str | None, token: str | None, work: Path, budget: float):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "MODEL_DIR": str(work / "model"), "MTCLAR_CACHE_DIR": str(work / "cache"),
               "MTCLAR_MEDIA_ROOTS": str(media_root), "MTCLAR_PREDICT_BUDGET_S": str(budget), "LOG_LEVEL": "WARNING",
               **({"LABEL_STUDIO_URL": ls_url, "LABEL_STUDIO_API_KEY": token} if ls_url and token else {})}
        self.log = open(work / "backend.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen([sys.executable, "-m", "mtclar.cli", "serve", "--host", "127.0.0.1",
                                         "--port", str(self.port)], env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.5)
        raise RuntimeError(f"the backend did not start; see {work / 'backend.log'}")

    def rss(self) -> tuple[float, float]:
        """(gunicorn master, its workers) RSS in MB; `mtclar serve` runs gunicorn in its own process."""
        return rss_mb(self.process.pid), sum(rss_mb(p) for p in children(self.process.pid))

    def pss(self) -> float:
        """Master + workers, PSS in MB (what the whole server holds)."""
        return pss_mb(self.process.pid) + sum(pss_mb(p) for p in children(self.process.pid))

    def get(self, path: str, **params) -> dict:
        return httpx.get(f"{self.url}{path}", params=params, timeout=10).json()

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(30)
        self.log.close()


class MemoryPeak(threading.Thread):
    def __init__(self, backend: Backend):
        super().__init__(daemon=True)
        self.backend, self.master, self.worker = backend, 0.0, 0.0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            master, worker = self.backend.rss()
            self.master, self.worker = max(self.master, master), max(self.worker, worker)


def scenario(name: str, server: LabelStudioServer, client: LabelStudioClient, clips: list[Path], budget: float,
             work: Path, timeout: float) -> dict:
    project = client.create_project(f"scale {name}", VIDEO)["id"]
    importer = Importer(LabelStudioAPI(server.url, server.token), project, "video")
    items = plan_items(clips, "video")
    tasks = importer.create_tasks(items, importer.urls_local(items, server.document_root))
    for task, item in zip(tasks, items, strict=True):
        n = int(cv2.VideoCapture(str(item.path)).get(cv2.CAP_PROP_FRAME_COUNT))
        result = []
        for k, start in enumerate((1, n // 2, n - 10)):
            result += timeline_region(SETUP, f"s{k}", start, start + 5, 0.3 * (k - 1), 0.2 * k - 0.1)
        client.create_annotation(task, result)
    backend = Backend(server.document_root, server.url, server.token, work, budget)
    peak = MemoryPeak(backend)
    peak.start()
    started = time.monotonic()
    client.connect_ml_backend(project, backend.url)  # /setup: the backfill queues every video
    rounds, longest_retrieve = 0, 0.0
    while True:
        rounds += 1
        t0 = time.monotonic()
        client.retrieve_predictions(project)
        longest_retrieve = max(longest_retrieve, time.monotonic() - t0)
        version = backend.get("/health", project=project)["model_version"]
        done = sum(any(p["model_version"] == version and p["result"] for p in task.get("predictions") or [])
                   for task in client.list_tasks(project))
        print(f"  {name}: round {rounds}, {done}/{len(tasks)} tasks with a current prediction, "
              f"{time.monotonic() - started:.0f} s", flush=True)
        if done == len(tasks):
            break
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"{name}: not every task had a prediction after {timeout:.0f} s")
        time.sleep(5)
    all_predicted = time.monotonic() - started
    metrics = backend.get("/metrics")
    peak.stopped.set()
    time.sleep(5)
    rest_master, rest_worker = backend.rss()
    rest_pss = backend.pss()
    backend.stop()
    frames = sum(int(cv2.VideoCapture(str(p)).get(cv2.CAP_PROP_FRAME_COUNT)) for p in clips)
    return {"scenario": name, "tasks": len(tasks), "frames": frames, "all_predicted_s": round(all_predicted, 1),
            "retrieve_rounds": rounds, "longest_retrieve_s": round(longest_retrieve, 1),
            "longest_predict_s": metrics["predict_latency"].get("video", {}).get("max_s"),
            "budget_s": budget, "master_peak_mb": round(peak.master), "worker_peak_mb": round(peak.worker),
            "master_rest_mb": round(rest_master), "worker_rest_mb": round(rest_worker),
            "server_rest_pss_mb": round(rest_pss)}


def frame_tasks(n: int, frames: list, work: Path, budget: float, timeout: float) -> dict:
    """N frame tasks in one /predict, repeated until every task has a prediction."""
    from mtclar_backend.label_configs import FRAME

    folder = work / "media" / "frames"
    folder.mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(folder / f"{i:06d}.jpg"), frames[(7 * i) % len(frames)])
    backend = Backend(work / "media", None, None, work, budget)  # no Label Studio: /predict straight
    number = ({"valence": 0.2, "arousal": -0.1}, {"valence": -0.3, "arousal": 0.4})

    def task(i: int) -> dict:
        out = {"id": 100000 + i, "data": {"image": f"/data/local-files/?d=frames/{i:06d}.jpg", "video_id": "clip",
                                          "frame": i}}
        if i in (0, n - 1):
            values = number[i > 0]
            out["annotations"] = [{"id": 500000 + i, "result": [
                {"id": f"n{k}", "from_name": k, "to_name": "frame", "type": "number", "value": {"number": v}}
                for k, v in values.items()]}]
        return out

    body = {"tasks": [task(i) for i in range(n)], "project": "77.1700000000", "label_config": FRAME}
    peak = MemoryPeak(backend)
    peak.start()
    started, latencies, settled = time.monotonic(), [], False
    while True:
        t0 = time.monotonic()
        results = httpx.post(f"{backend.url}/predict", json=body, timeout=120).json()["results"]
        latencies.append(time.monotonic() - t0)
        done = sum(bool(r["result"]) for r in results)
        queue = backend.get("/metrics")["embedding"]
        print(f"  {n} frame tasks: request {len(latencies)} took {latencies[-1]:.1f} s, {done}/{n} predicted, "
              f"{queue.get('in_flight', 0)} images in the queue", flush=True)
        if settled:  # the queue was empty before this request: what is still empty has no face
            break
        settled = queue.get("in_flight", 0) == 0 and len(latencies) > 1
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"not every frame task had a prediction after {timeout:.0f} s")
        time.sleep(2)
    peak.stopped.set()
    backend.stop()
    return {"scenario": f"{n} frame tasks, one /predict ({done} with a face predicted)", "tasks": n, "frames": n,
            "all_predicted_s": round(time.monotonic() - started, 1), "retrieve_rounds": len(latencies),
            "longest_retrieve_s": round(max(latencies), 1), "longest_predict_s": round(max(latencies), 1),
            "budget_s": budget, "master_peak_mb": round(peak.master), "worker_peak_mb": round(peak.worker),
            "master_rest_mb": float("nan"), "worker_rest_mb": float("nan"), "server_rest_pss_mb": float("nan")}


def video_scenarios(args: argparse.Namespace, frames: list) -> list[dict]:
    cache = Path.home() / ".cache" / "mtclar" / "scale"
    cache.mkdir(parents=True, exist_ok=True)
    short = [make_clip(cache / f"clip{i:02d}_{args.minutes:g}min.mp4", frames, int(args.minutes * 60 * FPS),
                       i * 97) for i in range(args.clips)]
    long = make_clip(cache / f"long_{args.long_minutes:g}min.mp4", frames, int(args.long_minutes * 60 * FPS), 13) \
        if args.long_minutes > 0 else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="mtclar-scale-") as tmp:
        work = Path(tmp)
        with LabelStudioServer(work / "documents", data_dir=work / "ls-data", log_path=work / "ls.log") as server:
            client = LabelStudioClient(server.url, server.token)
            folder = server.document_root / "scale"
            folder.mkdir(parents=True, exist_ok=True)
            linked = [folder / p.name for p in short]
            for source, target in zip(short, linked, strict=True):
                shutil.copy2(source, target)  # the backend reads media only inside its roots
            scenarios = [(f"{args.clips} x {args.minutes:g} min", linked)] if linked else []
            if long is not None:
                shutil.copy2(long, folder / long.name)
                scenarios.append((f"1 x {args.long_minutes:g} min", [folder / long.name]))
            for k, (name, clips) in enumerate(scenarios):
                (work / f"backend{k}").mkdir()
                rows.append(scenario(name, server, client, clips, args.budget, work / f"backend{k}", args.timeout))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--long-minutes", type=float, default=10.0, help="0: skip the long clip")
    parser.add_argument("--budget", type=float, default=20.0, help="MTCLAR_PREDICT_BUDGET_S")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--frame-tasks", type=int, default=0, help="N frame tasks in one /predict (0: skip)")
    parser.add_argument("--only-frames", action="store_true", help="skip the Label Studio video scenarios")
    args = parser.parse_args()

    frames = source_frames()
    rows = []
    if args.frame_tasks:
        with tempfile.TemporaryDirectory(prefix="mtclar-scale-frames-") as tmp:
            rows.append(frame_tasks(args.frame_tasks, frames, Path(tmp), args.budget, args.timeout))
    if not args.only_frames:
        rows += video_scenarios(args, frames)

    print("\n| scenario | tasks | frames | all tasks predicted | Retrieve rounds | longest Retrieve | longest /predict "
          "| master RSS peak / rest | worker RSS peak / rest | server PSS at rest |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scenario']} | {r['tasks']} | {r['frames']} | {r['all_predicted_s']} s | {r['retrieve_rounds']} "
              f"| {r['longest_retrieve_s']} s | {r['longest_predict_s']} s (budget {r['budget_s']:g}) "
              f"| {r['master_peak_mb']} / {r['master_rest_mb']} MB "
              f"| {r['worker_peak_mb']} / {r['worker_rest_mb']} MB | {r['server_rest_pss_mb']} MB |")
    print(json.dumps({"scale": rows}))


if __name__ == "__main__":
    main()
