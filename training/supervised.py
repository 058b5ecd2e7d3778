"""MT-CLAR+SL: a single-image head (expression classes and/or V/A) on the frozen embedding of a checkpoint.

The embeddings are computed once (eval transform: the serving crop), then an MLP
``256 -> 1024 -> 512 -> 256 -> 128 -> N`` trains on them: cross-entropy with class-balanced sampling
for classes (AffectNet's 8), ``w_mse * MSE + (1 - w_mse) * (1 - CCC)`` with ``w_mse = (epoch / E)^2`` for
V/A; Adam, StepLR. The result is the same checkpoint plus ``sl_head`` (``sl_trained`` true), so the
labeller can give a single image a label with no anchors (method ``sl``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler
from tqdm import tqdm

from mtclar.model.checkpoint import Checkpoint, state_with_prefix
from mtclar.model.config_io import json_safe
from mtclar.model.encoders.base import FaceEncoder
from mtclar.model.errors import DataError
from mtclar.model.files import utc_now
from mtclar.model.metrics import ccc as ccc_metric
from mtclar.model.siamese import SLConfig, SupervisedHead

from .config import AugmentConfig, SLTrainConfig, TrainConfig
from .datasets import FaceCrops, FaceItem, build_transform, label_arrays
from .fit import fit_step
from .losses import dynamic_mse_weight, mse_ccc_loss
from .sources import AFFECTNET_CLASSES

log = logging.getLogger(__name__)
N_CLASSES = len(AFFECTNET_CLASSES)


@torch.inference_mode()
def embed_items(encoder: FaceEncoder, items: list[FaceItem], augment: AugmentConfig, batch_size: int = 128,
                workers: int = 0, show_progress: bool = False) -> np.ndarray:
    """(N, D) embeddings of the items' serving crops (canvas -> centre crop)."""
    encoder = encoder.eval()
    crops = FaceCrops(items, build_transform(encoder.input_size, augment, train=False))
    loader = DataLoader(crops, batch_size=batch_size, num_workers=workers)
    out = [encoder(encoder.normalize(x)).float().cpu().numpy()
           for x in tqdm(loader, desc="embeddings", unit="batch", disable=not show_progress, leave=False)]
    return np.concatenate(out) if out else np.zeros((0, encoder.embed_dim), dtype=np.float32)


def _usable(target: str, classes: np.ndarray, va: np.ndarray) -> np.ndarray:
    has_class, has_va = classes >= 0, np.isfinite(va).all(axis=1)
    if target == "classes":
        return has_class
    if target == "va":
        return has_va
    return has_class | has_va


def sl_metrics(head: SupervisedHead, embeddings: np.ndarray, classes: np.ndarray, va: np.ndarray) -> dict[str, float]:
    head.eval()
    with torch.inference_mode():
        out = head(torch.as_tensor(embeddings, dtype=torch.float32))
    metrics: dict[str, float] = {}
    if "class_logits" in out:
        known = classes >= 0
        pred = out["class_logits"].argmax(1).numpy()
        metrics["class_acc"] = float(np.mean(pred[known] == classes[known])) if known.any() else math.nan
    if "valence" in out:
        known = np.isfinite(va).all(axis=1)
        for k, name in enumerate(("valence", "arousal")):
            pred = out[name].numpy()[known]
            true = va[known, k]
            metrics[f"{name}_rmse"] = float(np.sqrt(np.mean((pred - true) ** 2))) if known.any() else math.nan
            metrics[f"{name}_ccc"] = ccc_metric(pred, true) if known.sum() >= 2 else math.nan
    return metrics


def train_supervised_head(embeddings: np.ndarray, classes: np.ndarray, va: np.ndarray, config: SLTrainConfig,
                          seed: int = 0, val: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                          on_epoch: Callable[[dict[str, Any]], None] | None = None,
                          show_progress: bool = False) -> tuple[SupervisedHead, list[dict[str, Any]]]:
    """Train the SL head on fixed embeddings (N, D), classes (N,) (-1 unknown) and V/A (N, 2) (NaN unknown)."""
    use = _usable(config.target, classes, va)
    if use.sum() < 2:
        raise DataError(f"MT-CLAR+SL ({config.target}) needs at least 2 items with "
                        f"{'a class' if config.target == 'classes' else 'V/A' if config.target == 'va' else 'labels'}"
                        f"; got {int(use.sum())}")
    emb = torch.as_tensor(embeddings[use], dtype=torch.float32)
    cls = torch.as_tensor(classes[use], dtype=torch.long)
    targets = torch.as_tensor(np.nan_to_num(va[use], nan=0.0), dtype=torch.float32)
    has_va = torch.as_tensor(np.isfinite(va[use]).all(axis=1))
    want_classes, want_va = config.target in ("classes", "both"), config.target in ("va", "both")
    head_config = SLConfig(embed_dim=emb.shape[1], hidden=tuple(config.hidden), dropout=config.dropout,
                           n_classes=N_CLASSES if want_classes else 0, regress_va=want_va)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = SupervisedHead(head_config)
        optimizer = torch.optim.Adam(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
        weights = torch.ones(len(emb), dtype=torch.double)
        if want_classes and config.balanced:
            known = cls >= 0
            counts = torch.bincount(cls[known], minlength=N_CLASSES).double()
            weights[known] = 1.0 / counts[cls[known]]
            weights[~known] = weights[known].mean() if known.any() else 1.0
        history: list[dict[str, Any]] = []
        for epoch in range(config.epochs):
            started = time.perf_counter()
            head.train()
            sampler = WeightedRandomSampler(weights, num_samples=len(emb), replacement=True, generator=generator)
            order = torch.tensor(list(sampler))
            mse_weight = dynamic_mse_weight(epoch, config.epochs)
            total, seen = 0.0, 0
            for start in range(0, len(order), config.batch_size):
                batch = order[start:start + config.batch_size]
                if len(batch) < 2:
                    continue
                out = head(emb[batch])
                loss = emb.new_zeros(())
                if want_classes:
                    known = cls[batch] >= 0
                    if known.any():
                        loss = loss + torch.nn.functional.cross_entropy(out["class_logits"][known], cls[batch][known])
                if want_va:
                    mask = has_va[batch]
                    loss = loss + mse_ccc_loss(out["valence"], targets[batch, 0], mse_weight, mask)
                    loss = loss + mse_ccc_loss(out["arousal"], targets[batch, 1], mse_weight, mask)
                total += fit_step(optimizer, loss) * len(batch)
                seen += len(batch)
            scheduler.step()
            record: dict[str, Any] = {"epoch": epoch + 1, "stage": "train", "loss": total / max(seen, 1),
                                      "lr": optimizer.param_groups[0]["lr"],
                                      "seconds": round(time.perf_counter() - started, 3)}
            if val is not None:
                record.update({f"val_{k}": v for k, v in sl_metrics(head, *val).items()})
            history.append(record)
            if on_epoch is not None:
                on_epoch(record)
            if show_progress:
                log.info("SL epoch %d/%d: %s", epoch + 1, config.epochs, record)
    return head.eval(), history


def attach_sl_head(checkpoint: Checkpoint, head: SupervisedHead, trained_on: dict, metrics: dict,
                   name: str | None = None) -> Checkpoint:
    """A copy of ``checkpoint`` with the SL head (replacing any earlier one)."""
    state = {k: v for k, v in checkpoint.state.items() if not k.startswith("sl_head.")}
    state.update({k: v.detach().cpu().clone() for k, v in state_with_prefix(head, "sl_head.").items()})
    created = utc_now()
    return replace(checkpoint, name=name or f"{checkpoint.name}-sl", sl_head=head.config, sl_trained=True,
                   state=state, created=created, trained_on={**checkpoint.trained_on, "sl_head": trained_on},
                   metrics={**checkpoint.metrics, "sl_head": metrics})


def run_supervised(config: TrainConfig, checkpoint: Checkpoint, cache_dir: str | Path, out: str | Path,
                   encoder_weights: str | None = None, device: str = "cpu", name: str | None = None,
                   show_progress: bool = False) -> tuple[Checkpoint, list[dict[str, Any]]]:
    """Crops -> frozen embeddings of ``checkpoint``'s encoder -> SL head -> ``out`` (a checkpoint folder)."""
    from mtclar.model.labeling import VideoLabeler

    from .crops import CropCache, canvas_size
    from .datasets import load_items, split_by_group

    if not config.data.train:
        raise DataError("no training data: give --data PATH")
    labeler = VideoLabeler(checkpoint, encoder_weights=encoder_weights, device=device)
    encoder = labeler.encoder
    cache = CropCache(Path(cache_dir), labeler.pipeline, encoder.input_size,
                      canvas_size(encoder.input_size, config.augment.resize_ratio))
    train = load_items(config.data.train, cache, config.data.images_root, config.data.search, show_progress)
    if config.data.val:
        val_set = load_items(config.data.val, cache, config.data.images_root, config.data.search, show_progress)
        train_items, val_items = train.items, val_set.items
    else:
        train_items, val_items = split_by_group(train.items, config.data.val_fraction, config.run.seed)
    workers = min(config.run.workers, 2)
    train_emb = embed_items(encoder, train_items, config.augment, workers=workers, show_progress=show_progress)
    classes, va = label_arrays(train_items)
    val = None
    if val_items:
        val_classes, val_va = label_arrays(val_items)
        val = (embed_items(encoder, val_items, config.augment, workers=workers), val_classes, val_va)
    head, history = train_supervised_head(train_emb, classes, va, config.sl, config.run.seed, val,
                                          show_progress=show_progress)
    metrics = {"train": sl_metrics(head, train_emb, classes, va), "val": sl_metrics(head, *val) if val else None,
               "epochs": config.sl.epochs}
    trained_on = {"data": train.summary(), "train_items": len(train_items), "val_items": len(val_items),
                  "target": config.sl.target, "classes": list(AFFECTNET_CLASSES) if config.sl.target != "va" else [],
                  "config": {**config.to_dict()["sl"]}, "seed": config.run.seed}
    result = attach_sl_head(checkpoint, head, trained_on, json_safe(metrics), name)
    result.save(out)
    return result, history

