"""Frames/s of each stage of the face pipeline and end to end, measured in one run.

    python benchmarks/throughput.py [--video PATH] [--batch-sizes 1 8 16 32] [--threads N] [--device cpu|cuda|auto]
        [--precisions fp32 fp16] [--follow-crop 0 2]

Prints a table (and a JSON line), per batch size: decode only; detection alone at full scale (long side
640); detection + tracking + alignment as the pipeline runs them (after the first sighting frames are
downscaled so that the face is about 96 px tall); the encoder alone on aligned crops; end to end (decode
-> detect -> track -> align -> encode, no cache); and the ratios end-to-end/decode and end-to-end/encoder.
On CUDA one row per precision (fp32, fp16 autocast) and batch size; the detector column names the ONNX Runtime
provider that served. ``--device cuda`` where torch sees no CUDA exits with one line and code 2.
With ``--follow-crop`` each batch size gets a row per value of the pipeline's ``follow.crop`` (0: every batch
detected on the whole frame; 2: in a window two face sizes wide around the last face), measured in turn, with
``track share``: the part of the end-to-end time that detection + tracking + alignment take.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mtclar.model.device import PRECISIONS, resolve_device, resolve_precision  # noqa: E402
from mtclar.model.embeddings import VideoEmbedder, encode_crops  # noqa: E402
from mtclar.model.encoders import DEFAULT_ENCODER, create_encoder  # noqa: E402
from mtclar.model.face import DetectorConfig, FacePipeline, FollowConfig, PipelineConfig  # noqa: E402
from mtclar.model.video import FrameBatch, iter_frames, read_header  # noqa: E402

DEFAULT_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "WolfgangLanger_Pexels.mp4"


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 16, 32])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--encoder", default=DEFAULT_ENCODER)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS[1:], default=None,
                        help="encoder precisions, one row each (default: fp32 fp16 on CUDA, fp32 on CPU)")
    parser.add_argument("--repeats", type=int, default=2, help="best of N for each measurement")
    parser.add_argument("--follow-crop", type=float, nargs="+", default=None,
                        help="rows for these follow.crop values (default: the pipeline's default only)")
    args = parser.parse_args()

    device = resolve_device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"throughput.py: --device {args.device}: torch sees no CUDA device here (torch {torch.__version__}, "
              f"CUDA build {torch.version.cuda})", file=sys.stderr)
        raise SystemExit(2)
    # fp16 applies to CUDA only (it resolves to fp32 on CPU): one row per precision that really differs
    precisions = list(dict.fromkeys(resolve_precision(p, device) for p in args.precisions or ["fp32", "fp16"]))
    torch.set_num_threads(args.threads)
    encoder = create_encoder(args.encoder, device=device)
    pipeline = FacePipeline(PipelineConfig(detector=DetectorConfig(threads=args.threads)), device=str(device))
    detector = pipeline.detector.provider.removesuffix("ExecutionProvider")
    crops_to_follow = args.follow_crop if args.follow_crop is not None else [pipeline.config.follow.crop]
    pipelines = {crop: FacePipeline(PipelineConfig(detector=DetectorConfig(threads=args.threads),
                                                   follow=FollowConfig(crop=crop)), detector=pipeline.detector)
                 for crop in crops_to_follow}
    frames = np.concatenate([b.frames for b in iter_frames(args.video, 32)])
    n = len(frames)
    video_fps = read_header(args.video).fps
    crops = np.concatenate([b.crops for b in pipeline.track_video(args.video, encoder.input_size, 32)])
    # warm-up: first ONNX / torch calls allocate
    pipeline.detector.detect(frames[:2])
    for precision in precisions:
        encode_crops(encoder, crops[:2], precision=precision)

    def best(fn) -> float:
        return min(timed(fn)[0] for _ in range(args.repeats))

    rows = []
    for batch in args.batch_sizes:
        decode = best(lambda b=batch: sum(len(x.indices) for x in iter_frames(args.video, b)))
        detect = best(lambda b=batch: [pipeline.detector.detect(frames[i:i + b]) for i in range(0, n, b)])
        in_memory = [FrameBatch(np.arange(i, min(i + batch, n)), frames[i:i + batch]) for i in range(0, n, batch)]
        for precision in precisions:
            encode = best(lambda b=batch, p=precision: encode_crops(encoder, crops, b, p))
            # the settings take turns, so that a change in the machine's load hits them alike
            track: dict[float, float] = dict.fromkeys(pipelines, np.inf)
            end_to_end: dict[float, float] = dict.fromkeys(pipelines, np.inf)
            for _ in range(args.repeats):
                for crop, followed in pipelines.items():
                    seconds, _ = timed(lambda m=in_memory, f=followed: list(f.track(m, video_fps, encoder.input_size)))
                    track[crop] = min(track[crop], seconds)
                    embedder = VideoEmbedder(followed, encoder, cache=None, batch_size=batch, precision=precision)
                    end_to_end[crop] = min(end_to_end[crop], timed(lambda e=embedder: e.embed_video(args.video))[0])
            for crop in pipelines:
                fps = {"decode": n / decode, "detect": n / detect, "track": n / track[crop],
                       "encode": len(crops) / encode, "end_to_end": n / end_to_end[crop]}
                rows.append({"batch": batch, "precision": precision, "detector": detector, "follow": crop,
                             **{k: round(v, 1) for k, v in fps.items()},
                             "e2e/decode": round(fps["end_to_end"] / fps["decode"], 3),
                             "e2e/encoder": round(fps["end_to_end"] / fps["encode"], 3),
                             "track share": round(fps["end_to_end"] / fps["track"], 3)})

    gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    print(f"video: {args.video.name}, {n} frames, {len(crops)} faces; encoder {encoder.name} on {device}{gpu}, "
          f"detector on {', '.join(pipeline.detector.providers)}; "
          f"{args.threads} threads; {platform.processor() or platform.machine()}, torch {torch.__version__}")
    header = ["batch", "precision", "detector", "follow", "decode f/s", "detect@640 f/s", "detect+align f/s",
              "encoder f/s", "end-to-end f/s", "e2e/decode", "e2e/encoder", "track share"]
    keys = ["batch", "precision", "detector", "follow", "decode", "detect", "track", "encode", "end_to_end",
            "e2e/decode", "e2e/encoder", "track share"]
    widths = [max(len(h), 8) for h in header]
    print(" | ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(str(row[k]).rjust(w) for k, w in zip(keys, widths, strict=True)))
    print(json.dumps({"benchmark": "throughput", "video": args.video.name, "frames": n, "threads": args.threads,
                      "device": str(device), "detector_providers": pipeline.detector.providers, "rows": rows}))


if __name__ == "__main__":
    main()
