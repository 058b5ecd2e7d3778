"""Seconds of each local step of `mtclar export` for one video task (no Label Studio: a synthetic annotation).

    python benchmarks/export.py VIDEO... [--annotators 2] [--out DIR]

Per video: counting the decoded frames (what makes the export frame-exact), building the rows from two
annotations (a 10-frame region every 100 frames each) and a prediction (a segment every 50 frames), writing the
CSV, and writing the AFEW-VA layout (a PNG per decoded frame). Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mtclar.afewva_export import write_afewva  # noqa: E402
from mtclar.model.video import probe_video  # noqa: E402
from mtclar.outputs import write_csv  # noqa: E402
from mtclar_backend.export_rows import COLUMNS, parse_task, task_rows  # noqa: E402
from mtclar_backend.label_configs import VIDEO  # noqa: E402
from mtclar_backend.ls_format import parse_label_config, timeline_region, video_prediction  # noqa: E402
from mtclar_backend.segments import Segment  # noqa: E402


def synthetic_task(setup, n_frames: int, annotators: int) -> dict:
    annotations = [{"id": k, "completed_by": k, "result": [
        item for start in range(0, n_frames, 100)
        for item in timeline_region(setup, f"r{k}-{start}", start + 1, min(start + 10, n_frames), 0.1 * k, 0.2)]}
        for k in range(1, annotators + 1)]
    return {"id": 1, "data": {"video": "/data/upload/1/x.mp4"}, "annotations": annotations}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="+", type=Path)
    parser.add_argument("--annotators", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: a temporary folder)")
    args = parser.parse_args()
    setup = parse_label_config(VIDEO)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        for video in args.videos:
            start = time.perf_counter()
            info = probe_video(video)
            probe_s = time.perf_counter() - start
            n = info.n_frames
            task = parse_task(synthetic_task(setup, n, args.annotators))
            segments = [Segment(s, min(s + 49, n - 1), 0.3, 0.1, 0.5) for s in range(0, n, 50)]
            prediction = video_prediction(setup, segments, [], 0.5, "bench")
            start = time.perf_counter()
            rows = task_rows(setup, task, prediction, n, info.fps, 2_000_000)
            rows_s = time.perf_counter() - start
            start = time.perf_counter()
            write_csv(out / f"{video.stem}.csv", [r.as_dict() for r in rows], COLUMNS)
            csv_s = time.perf_counter() - start
            start = time.perf_counter()
            folder = write_afewva(out / "afew-va", video.stem, video, n, rows)
            afewva_s = time.perf_counter() - start
            size = sum(p.stat().st_size for p in folder.iterdir())
            results.append({"video": video.name, "frames": n, "size": f"{info.width}x{info.height}", "rows": len(rows),
                            "probe_s": round(probe_s, 3), "rows_s": round(rows_s, 3), "csv_s": round(csv_s, 3),
                            "afewva_s": round(afewva_s, 2), "afewva_frames_per_s": round(n / afewva_s, 1),
                            "afewva_kb_per_frame": round(size / n / 1024, 1)})
    header = list(results[0])
    print(" | ".join(header))
    for r in results:
        print(" | ".join(str(r[k]) for k in header))
    print(json.dumps({"benchmark": "export", "results": results}))


if __name__ == "__main__":
    main()
