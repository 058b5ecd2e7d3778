"""Options shared by the commands that run the model; their defaults come from the settings."""

from __future__ import annotations

import argparse
from pathlib import Path

from mtclar.model.precision import PRECISIONS
from mtclar.settings import Settings


def add_video_anchor_options(parser: argparse.ArgumentParser) -> None:
    """The videos and their labelled frames (``mtclar label``, ``mtclar finetune``)."""
    parser.add_argument("videos", nargs="+", type=Path, metavar="VIDEO")
    parser.add_argument("--anchors", type=Path, required=True,
                        help="CSV with columns video,frame,valence,arousal (video = file stem, frame 0-based), or a "
                             "CSV of `mtclar export` (its human rows, for the video of the CSV's stem)")


def add_model_options(parser: argparse.ArgumentParser, settings: Settings) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--checkpoint", default=settings.checkpoint,
                       help="checkpoint folder (default: the shipped cold-start model)")
    group.add_argument("--encoder-weights", default=settings.encoder_weights,
                       help="encoder weights file, for encoders we may not ship (emonet: emonet_8.pth)")
    group.add_argument("--device", default=settings.device, help="cpu, cuda, cuda:1 or auto")
    group.add_argument("--precision", choices=PRECISIONS, default=settings.precision,
                       help="the encoder on CUDA: fp16 (autocast) or fp32; auto = fp16 on CUDA, fp32 on CPU "
                            "(default: %(default)s; MTCLAR_PRECISION)")
    group.add_argument("--threads", type=int, default=None, help="CPU threads for torch and ONNX Runtime")
    group.add_argument("--batch-size", type=_positive, default=settings.batch_size,
                       help="frames per batch (default: %(default)s; MTCLAR_BATCH_SIZE)")
    group.add_argument("--cache-dir", type=Path, default=settings.cache_dir,
                       help="embedding cache (default: %(default)s; MTCLAR_CACHE_DIR)")
    group.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")


def add_queue_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queue", default=None, metavar="REDIS_URL",
                        help="embed the videos on `mtclar worker` processes (one RQ job per video) at this Redis, "
                             "e.g. redis://host:6379/0; workers must see the videos and --cache-dir at the same "
                             "paths")


def make_labeler(args: argparse.Namespace):
    from mtclar.dataset_jobs import ModelOptions, build_labeler

    return build_labeler(ModelOptions.of(args))


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw} is not a positive whole number")
    return value


def read_videos_and_anchors(videos: list[Path], anchors: Path) -> tuple[dict[str, Path], dict]:
    """Videos by file stem and the anchor rows per stem, every row checked against every file's header before
    any work (no decoding: each video is decoded once, by the embedding; ``check_decoded_frames`` then checks
    the rows against the frames that really decode)."""
    from mtclar.model.errors import AnchorError
    from mtclar.model.video import read_header
    from mtclar.training.sources import check_anchor_rows, read_anchor_csv

    stems: dict[str, Path] = {}
    for video in videos:
        if video.stem in stems:
            raise AnchorError(f"two videos share the stem {video.stem!r} ({stems[video.stem]}, {video}): "
                              "anchors.csv could not tell them apart")
        stems[video.stem] = video
    rows = read_anchor_csv(anchors)
    declared = {stem: read_header(path).declared_frames for stem, path in stems.items()}
    check_anchor_rows(anchors, rows, {stem: n if n > 0 else 2**62 for stem, n in declared.items()})
    return stems, rows


def check_decoded_frames(anchors: Path, rows: dict, stem: str, n_frames: int) -> None:
    from mtclar.training.sources import check_anchor_rows

    check_anchor_rows(anchors, {stem: rows.get(stem, [])}, {stem: n_frames})
