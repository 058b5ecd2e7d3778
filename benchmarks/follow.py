"""Detecting in a window around the last face (``pipeline.follow``) against whole-frame detection of every
batch: how far the per-frame embeddings move, against their own frame-to-frame jitter.

    python benchmarks/follow.py [--split dev|heldout|all] [--crop 2 2.5 3] [--full-every 64]

Per clip of benchmarks/data/labels/split.csv (tune on ``dev`` only) and per setting: frames with a face in
either run that disagree; mean landmark distance (fraction of the face size); mean cosine distance between
the two runs' embeddings of a frame (``d(emb)``) and mean |difference| of the expression probabilities
(``d(prob)``), beside the embedding jitter of each run (mean cosine distance between consecutive frames with a
face, ``jit``); and the pipeline's frames/s (detect + track + align, decoded frames in memory).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mtclar.model.embeddings import VideoEmbedder, VideoEmbeddings  # noqa: E402
from mtclar.model.encoders import DEFAULT_ENCODER, create_encoder  # noqa: E402
from mtclar.model.face import FacePipeline, FollowConfig, PipelineConfig  # noqa: E402
from mtclar.model.video import FrameBatch, iter_frames, read_header  # noqa: E402

CLIPS = Path.home() / ".cache" / "mtclar" / "clips"


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return 1 - np.sum(a * b, axis=1)


def jitter(emb: VideoEmbeddings) -> float:
    both = emb.has_face[1:] & emb.has_face[:-1]
    return float(np.mean(cosine_distance(emb.embeddings[1:][both], emb.embeddings[:-1][both])))


def compare(full: VideoEmbeddings, other: VideoEmbeddings) -> dict:
    both = full.has_face & other.has_face
    size = np.maximum(full.boxes[both, 2] - full.boxes[both, 0], full.boxes[both, 3] - full.boxes[both, 1])
    landmarks = np.linalg.norm(full.landmarks[both] - other.landmarks[both], axis=2).mean(axis=1) / size
    return {"face_disagree": int(np.sum(full.has_face != other.has_face)), "frames": int(full.n_frames),
            "landmark": float(landmarks.mean()),
            "d_emb": float(cosine_distance(full.embeddings[both], other.embeddings[both]).mean()),
            "d_prob": float(np.abs(full.expression_probs[both] - other.expression_probs[both]).mean()),
            "jit_full": jitter(full), "jit": jitter(other)}


def pipeline_fps(pipeline: FacePipeline, path: Path, crop_size: int, repeats: int) -> float:
    batches = [FrameBatch(b.indices, b.frames) for b in iter_frames(path, 16)]
    fps = read_header(path).fps
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in pipeline.track(batches, fps, crop_size):
            pass
        best = min(best, time.perf_counter() - start)
    return sum(len(b.indices) for b in batches) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=CLIPS)
    parser.add_argument("--split", choices=("dev", "heldout", "all"), default="dev")
    parser.add_argument("--crop", type=float, nargs="+", default=[2.0, 2.5, 3.0])
    parser.add_argument("--full-every", type=int, default=FollowConfig().full_every)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    with (ROOT / "benchmarks" / "data" / "labels" / "split.csv").open(newline="") as f:
        names = [r["video"] for r in csv.DictReader(f) if args.split in ("all", r["set"])]
    encoder = create_encoder(DEFAULT_ENCODER, device="cpu")
    base = PipelineConfig(follow=FollowConfig(crop=0.0))
    settings = {"full": base} | {f"crop {c:g}": replace(base, follow=FollowConfig(crop=c, full_every=args.full_every))
                                 for c in args.crop}
    pipelines = {name: FacePipeline(config) for name, config in settings.items()}
    rows = []
    for clip in names:
        path = args.clips / f"{clip}.mp4"
        runs = {name: VideoEmbedder(p, encoder).embed_video(path) for name, p in pipelines.items()}
        speed = {name: pipeline_fps(p, path, encoder.input_size, args.repeats) for name, p in pipelines.items()}
        for name in settings:
            row = {"clip": clip, "setting": name, **compare(runs["full"], runs[name]), "fps": speed[name]}
            rows.append(row)
    header = ["clip", "setting", "frames", "face_disagree", "landmark", "d_emb", "d_prob", "jit_full", "jit", "fps"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        cells = [f"{row[k]:.4f}" if isinstance(row[k], float) and k != "fps" else
                 (f"{row[k]:.0f}" if k == "fps" else str(row[k])) for k in header]
        print("| " + " | ".join(cells) + " |")
    for name in settings:
        mine = [r for r in rows if r["setting"] == name]
        frames = sum(r["frames"] for r in mine)
        mean = {k: float(np.average([r[k] for r in mine], weights=[r["frames"] for r in mine]))
                for k in ("landmark", "d_emb", "d_prob", "jit_full", "jit")}
        fps = frames / sum(r["frames"] / r["fps"] for r in mine)
        print(f"{name}: frames {frames}, face disagree {sum(r['face_disagree'] for r in mine)}, "
              + ", ".join(f"{k} {v:.4f}" for k, v in mean.items()) + f", pipeline {fps:.0f} frames/s")
    print(json.dumps({"benchmark": "follow", "split": args.split, "rows": rows}))


if __name__ == "__main__":
    main()
