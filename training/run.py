"""A whole training run from a config: processes, encoder, face crops, items, split, trainer."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from mtclar.model.encoders import create_encoder
from mtclar.model.encoders.base import FaceEncoder
from mtclar.model.errors import DataError
from mtclar.model.face.pipeline import FacePipeline, PipelineConfig

from . import distributed as dist_utils
from .config import TrainConfig
from .crops import CropCache, canvas_size
from .datasets import ItemSet, load_items, split_by_group
from .distributed import SINGLE_PROCESS, DistInfo
from .trainer import Trainer

log = logging.getLogger(__name__)


def build_encoder(config: TrainConfig) -> FaceEncoder:
    kwargs = {"weights": config.model.encoder_weights} if config.model.encoder_weights else {}
    return create_encoder(config.model.encoder, **kwargs)


def serving_pipeline(threads: int = 0) -> PipelineConfig:
    """The face pipeline settings the shipped checkpoint serves with (crops must match them): the defaults."""
    pipeline = PipelineConfig()
    return replace(pipeline, detector=replace(pipeline.detector, threads=threads))


def make_crop_cache(config: TrainConfig, encoder: FaceEncoder, cache_dir: str | Path, threads: int = 0) -> CropCache:
    pipeline = FacePipeline(serving_pipeline(threads))
    return CropCache(Path(cache_dir), pipeline, encoder.input_size,
                     canvas_size(encoder.input_size, config.augment.resize_ratio))


def load_split(config: TrainConfig, cache: CropCache, info: DistInfo | None = None, show_progress: bool = False
               ) -> tuple[ItemSet, ItemSet | None, list, list]:
    """Training and validation items; rank 0 makes the crops first, the others then read the cache."""
    info = info or DistInfo()
    if not config.data.train:
        raise DataError("no training data: give --data PATH (or data.train in the config)")

    def load() -> tuple[ItemSet, ItemSet | None]:
        train = load_items(config.data.train, cache, config.data.images_root, config.data.search,
                           show_progress and info.is_main)
        val = load_items(config.data.val, cache, config.data.images_root, config.data.search,
                         show_progress and info.is_main) if config.data.val else None
        return train, val

    if info.is_main:
        train, val = load()
        dist_utils.barrier(info)
    else:
        dist_utils.barrier(info)
        train, val = load()
    if val is not None:
        return train, val, train.items, val.items
    train_items, val_items = split_by_group(train.items, config.data.val_fraction, config.run.seed)
    return train, None, train_items, val_items


def run_training(config: TrainConfig, cache_dir: str | Path, resume: str | Path | None = None,
                 show_progress: bool = False, encoder: FaceEncoder | None = None,
                 info: DistInfo = SINGLE_PROCESS) -> dict[str, Any]:
    info, device = dist_utils.setup(config.run.device, config.run.threads, info)
    if not info.is_main:  # rank 0 reports (the others would only repeat it)
        logging.getLogger().setLevel(logging.ERROR)
    try:
        encoder = encoder or build_encoder(config)
        cache = make_crop_cache(config, encoder, cache_dir, config.run.threads)
        train, val, train_items, val_items = load_split(config, cache, info, show_progress)
        trained_on = {"data": train.summary(), "train_items": len(train_items), "val_items": len(val_items),
                      "val": val.summary() if val is not None else
                      f"{config.data.val_fraction:.0%} of the training groups (seed {config.run.seed})"}
        if info.is_main:
            log.info("training on %d items, validating on %d", len(train_items), len(val_items))
        trainer = Trainer(config, encoder, train_items, val_items, config.run.out, device, info, trained_on,
                          serving_pipeline(), show_progress)
        return trainer.fit(resume)
    finally:
        dist_utils.teardown()
