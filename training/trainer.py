"""The MT-CLAR training loop: pairs resampled every epoch, one ``_step(batch, stage)`` for both stages,
Adam + ReduceLROnPlateau on the validation loss, best/final checkpoints, resume, DDP under torchrun.

Epochs are 0-based inside (the dynamic MSE weight is ``(epoch / E)^2``) and 1-based in logs and names.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from mtclar.model.checkpoint import Checkpoint, state_with_prefix
from mtclar.model.config_io import json_safe
from mtclar.model.encoders.base import FaceEncoder
from mtclar.model.errors import CheckpointError, DataError
from mtclar.model.face.pipeline import PipelineConfig
from mtclar.model.fewshot import LabelerConfig
from mtclar.model.metrics import ccc as ccc_metric
from mtclar.model.siamese import MTCLAR, PairHeads

from . import distributed as dist_utils
from .config import TrainConfig
from .datasets import FaceCrops, FaceItem, PairDataset, build_transform, label_arrays
from .distributed import DistInfo
from .encoder_modes import configure_encoder
from .fit import fit_step
from .losses import VAL_MSE_WEIGHT, VAL_TASK_WEIGHTS, dynamic_mse_weight, pair_losses, random_task_weights, total_loss
from .pairs import ClassPairSampler, VAPairSampler
from .run_files import JsonLog, load_state, publish, save_state, write_config

log = logging.getLogger(__name__)
LOSS_NAMES = ("loss", "similarity", "valence", "arousal", "embedding")


def similarity_mode(items: list[FaceItem], requested: str) -> str:
    """``class`` when asked, or (auto) when every item has a class; else ``va``."""
    if requested != "auto":
        return requested
    return "class" if items and all(i.expression >= 0 for i in items) else "va"


def make_sampler(items: list[FaceItem], mode: str, threshold: float) -> ClassPairSampler | VAPairSampler:
    classes, va = label_arrays(items)
    try:
        if mode == "class":
            return ClassPairSampler(classes)
        return VAPairSampler(va, threshold)
    except ValueError as error:
        raise DataError(f"cannot make {mode} pairs from {len(items)} items: {error}") from None


def pair_metrics(similar_pred: np.ndarray, similar_true: np.ndarray, delta_pred: np.ndarray,
                 delta_true: np.ndarray) -> dict[str, float]:
    """Similarity accuracy; RMSE and CCC of the V/A differences (pairs with known V/A only)."""
    out = {"similarity_acc": float(np.mean(similar_pred == similar_true)) if len(similar_true) else math.nan}
    for k, name in enumerate(("valence", "arousal")):
        if len(delta_true) >= 2:
            out[f"delta_{name}_rmse"] = float(np.sqrt(np.mean((delta_pred[:, k] - delta_true[:, k]) ** 2)))
            out[f"delta_{name}_ccc"] = ccc_metric(delta_pred[:, k], delta_true[:, k])
        else:
            out[f"delta_{name}_rmse"] = out[f"delta_{name}_ccc"] = math.nan
    return out


@dataclass
class EpochResult:
    losses: dict[str, float]
    metrics: dict[str, float]
    pairs: int
    seconds: float

    def record(self, epoch: int, stage: str, lr: float) -> dict[str, Any]:
        return {"epoch": epoch + 1, "stage": stage, **{k: round(v, 6) for k, v in self.losses.items()},
                **{k: round(v, 6) for k, v in self.metrics.items()}, "pairs": self.pairs,
                "seconds": round(self.seconds, 3), "pairs_per_s": round(self.pairs / max(self.seconds, 1e-9), 2),
                "lr": lr}


class Trainer:
    """``fit()`` trains; ``_step`` is the one forward + loss used by training and validation."""

    def __init__(self, config: TrainConfig, encoder: FaceEncoder, train_items: list[FaceItem],
                 val_items: list[FaceItem], run_dir: str | Path, device: torch.device | str = "cpu",
                 info: DistInfo | None = None, trained_on: dict | None = None, pipeline: PipelineConfig | None = None,
                 show_progress: bool = False):
        info = info or DistInfo()
        self.config, self.info, self.device = config, info, torch.device(device)
        self.run_dir = Path(run_dir)
        self.show_progress = show_progress and info.is_main
        self.trained_on = trained_on or {}
        self.pipeline = pipeline or PipelineConfig()
        if not train_items:
            raise DataError("no training items")
        if not val_items:
            log.warning("no separate validation data: validating on the training items (eval transform)")
            val_items = train_items
        self.mode = similarity_mode(train_items + val_items, config.data.similarity)
        self.train_sampler = make_sampler(train_items, self.mode, config.data.va_threshold)
        try:
            self.val_sampler = make_sampler(val_items, self.mode, config.data.va_threshold)
        except DataError as error:
            log.warning("validation data unusable (%s): validating on the training items (eval transform)", error)
            val_items, self.val_sampler = train_items, self.train_sampler
        self.train_items, self.val_items = train_items, val_items
        self.seed = config.run.seed
        self._seed_everything(self.seed + info.rank)

        self.base_weights_id = encoder.weights_id
        self.trainable_encoder = configure_encoder(encoder, config.model.encoder_mode, config.model.partial_blocks)
        heads = PairHeads(replace(config.model.heads, embed_dim=encoder.embed_dim))
        self.model = MTCLAR(encoder, heads).to(self.device)
        self.encoder, self.heads = self.model.encoder, self.model.heads
        self.net: nn.Module = self.model
        if info.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=config.optim.lr, weight_decay=config.optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode="min", factor=config.optim.plateau_factor, patience=config.optim.plateau_patience)
        self.task_rng = torch.Generator().manual_seed(self.seed)

        size = encoder.input_size
        _, train_va = label_arrays(train_items)
        _, self.val_va = label_arrays(val_items)
        self.train_va = train_va
        self.train_crops = FaceCrops(train_items, build_transform(size, config.augment, train=True))
        self.val_crops = FaceCrops(val_items, build_transform(size, config.augment, train=False))
        val_pairs = self.val_sampler.sample(len(val_items), np.random.default_rng([self.seed, 1_000_003]))
        self.val_data = PairDataset(self.val_crops, val_pairs, self.val_va)

        self.epoch = 0
        self.best_loss = math.inf
        self.best_name: str | None = None
        self.log = JsonLog(self.run_dir)
        encoder_name = encoder.name
        data_stem = Path(config.data.train).stem if config.data.train else "data"
        self.name_root = config.run.name or f"mtclar-{encoder_name}-{data_stem}"

    # -- setup helpers ---------------------------------------------------------------------------------

    @staticmethod
    def _seed_everything(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def _loader(self, dataset: PairDataset, train: bool) -> DataLoader:
        sampler = None
        if self.info.distributed:
            sampler = DistributedSampler(dataset, num_replicas=self.info.world_size, rank=self.info.rank,
                                         shuffle=False, drop_last=False)
        return DataLoader(dataset, batch_size=self.config.optim.batch_size, sampler=sampler, shuffle=False,
                          num_workers=self.config.run.workers, pin_memory=self.device.type == "cuda",
                          drop_last=False)

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, S, S) -> the encoder's normalised float input."""
        return self.encoder.normalize(x)

    # -- the step --------------------------------------------------------------------------------------

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> tuple[torch.Tensor, dict[str, torch.Tensor],
                                                                        dict[str, torch.Tensor]]:
        """Forward a batch of pairs and compute the losses. Training: random convex task weights and the
        dynamic MSE/CCC split; validation: 0.25 each and 0.5/0.5."""
        training = stage == "train"
        out = self.net(self._prep(batch["x1"]), self._prep(batch["x2"]))
        similar = batch["similar"].to(self.device)
        delta = batch["delta"].to(self.device)
        known = batch["known"].to(self.device)
        mse_weight = dynamic_mse_weight(self.epoch, self.config.optim.epochs) if training else VAL_MSE_WEIGHT
        parts = pair_losses(out, delta, similar, mse_weight, known)
        weights = random_task_weights(self.task_rng) if training else VAL_TASK_WEIGHTS
        return total_loss(parts, weights), parts, out

    def _set_mode(self, training: bool) -> None:
        self.model.train(training)
        if not self.trainable_encoder:
            self.encoder.eval()  # frozen: BatchNorm statistics (EmoNet) stay as loaded

    def _run(self, dataset: PairDataset, stage: str) -> EpochResult:
        training = stage == "train"
        self._set_mode(training)
        loader = self._loader(dataset, training)
        sums = dict.fromkeys(LOSS_NAMES, 0.0)
        count = 0
        sim_pred, sim_true, d_pred, d_true = [], [], [], []
        start = time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {self.epoch + 1}/{self.config.optim.epochs} {stage}", unit="batch",
                   disable=not self.show_progress, leave=False)
        with torch.set_grad_enabled(training):
            for batch in bar:
                n = len(batch["similar"])
                if training and n < 2:
                    continue  # BatchNorm cannot train on a single pair
                loss, parts, out = self._step(batch, stage)
                if training:
                    fit_step(self.optimizer, loss)
                values = {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()}}
                for k, v in values.items():
                    sums[k] += v * n
                count += n
                sim_pred.append(out["similarity_logits"].argmax(1).detach().cpu().numpy())
                sim_true.append(batch["similar"].numpy())
                known = batch["known"].numpy()
                pred = torch.stack([out["delta_valence"], out["delta_arousal"]], 1).detach().cpu().numpy()
                d_pred.append(pred[known])
                d_true.append(batch["delta"].numpy()[known])
                bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()})
        seconds = time.perf_counter() - start
        local = {"sums": sums, "count": count, "sim_pred": _cat(sim_pred), "sim_true": _cat(sim_true),
                 "d_pred": _cat(d_pred, 2), "d_true": _cat(d_true, 2), "seconds": seconds}
        parts_all = dist_utils.gather(self.info, local)
        total = sum(p["count"] for p in parts_all)
        losses = {k: sum(p["sums"][k] for p in parts_all) / max(total, 1) for k in LOSS_NAMES}
        metrics = pair_metrics(np.concatenate([p["sim_pred"] for p in parts_all]),
                               np.concatenate([p["sim_true"] for p in parts_all]),
                               np.concatenate([p["d_pred"] for p in parts_all]),
                               np.concatenate([p["d_true"] for p in parts_all]))
        return EpochResult(losses, metrics, total, max(p["seconds"] for p in parts_all))

    # -- the loop --------------------------------------------------------------------------------------

    def fit(self, resume: str | Path | None = None) -> dict[str, Any]:
        config = self.config
        start_epoch = 0
        if resume is not None:
            start_epoch = self.load_training_state(resume)
        if self.info.is_main:
            write_config(config.to_dict(), self.run_dir)
        history: list[dict] = []
        last_val: EpochResult | None = None
        for epoch in range(start_epoch, config.optim.epochs):
            self.epoch = epoch
            pairs = self.train_sampler.sample(len(self.train_items), np.random.default_rng([self.seed, epoch]))
            train = self._run(PairDataset(self.train_crops, pairs, self.train_va), "train")
            val = self._run(self.val_data, "val")
            last_val = val
            self.scheduler.step(val.losses["loss"])
            lr = self.optimizer.param_groups[0]["lr"]
            records = [train.record(epoch, "train", lr), val.record(epoch, "val", lr)]
            improved = val.losses["loss"] < self.best_loss
            if improved:
                self.best_loss = val.losses["loss"]
            if self.info.is_main:
                for record in records:
                    self.log.write(record)
                if improved:
                    self.best_name = self._publish(epoch, val, train, "best")
                if epoch == config.optim.epochs - 1:
                    self._publish(epoch, val, train, "final")
                save_state(self.training_state(epoch), self.run_dir)
                log.info("epoch %d/%d: train loss %.4f, val loss %.4f, sim acc %.3f, dV rmse %.3f, dA rmse %.3f, "
                         "%.1f pairs/s", epoch + 1, config.optim.epochs, train.losses["loss"], val.losses["loss"],
                         val.metrics["similarity_acc"], val.metrics["delta_valence_rmse"],
                         val.metrics["delta_arousal_rmse"], records[0]["pairs_per_s"])
            history += records
            dist_utils.barrier(self.info)
        return {"run_dir": str(self.run_dir), "epochs": config.optim.epochs, "best_val_loss": self.best_loss,
                "best": self.best_name, "history": history,
                "last_val": last_val.losses if last_val is not None else None}

    # -- checkpoints and state -------------------------------------------------------------------------

    def checkpoint(self, epoch: int, val: EpochResult | None = None, train: EpochResult | None = None) -> Checkpoint:
        encoder_trained = bool(self.trainable_encoder)
        state = {k: v.detach().cpu().clone() for k, v in state_with_prefix(self.heads, "heads.").items()}
        if encoder_trained:
            state.update({k: v.detach().cpu().clone() for k, v in state_with_prefix(self.encoder, "encoder.").items()})
        labeler = LabelerConfig(method="auto", strategy=self.config.model.strategy)
        metrics: dict[str, Any] = {"epoch": epoch + 1}
        if val is not None:
            metrics["val"] = {**val.losses, **val.metrics}
        if train is not None:
            metrics["train"] = {**train.losses, **train.metrics}
        return Checkpoint(
            name=f"{self.name_root}-e{epoch + 1:03d}",
            encoder={**self.encoder.config.to_dict(), "weights_id": self.base_weights_id,
                     "weights_in_checkpoint": encoder_trained},
            labeler=labeler, heads=self.heads.config, heads_trained=True, pipeline=self.pipeline.to_dict(),
            trained_on={"kind": "mtclar-train", **self.trained_on, "similarity": self.mode,
                        "va_threshold": self.config.data.va_threshold, "encoder_mode": self.config.model.encoder_mode,
                        "encoder_trained": self.trainable_encoder, "epochs_run": epoch + 1,
                        "seed": self.seed, "world_size": self.info.world_size, "config": self.config.to_dict()},
            metrics=json_safe(metrics), state=state,
        )

    def _publish(self, epoch: int, val: EpochResult, train: EpochResult, alias: str) -> str:
        checkpoint = self.checkpoint(epoch, val, train)
        publish(checkpoint, self.run_dir, alias)
        return checkpoint.name

    def training_state(self, epoch: int) -> dict[str, Any]:
        model_state = state_with_prefix(self.heads, "heads.")
        if self.trainable_encoder:
            model_state.update(state_with_prefix(self.encoder, "encoder."))
        return {
            "epoch": epoch, "model": {k: v.detach().cpu().clone() for k, v in model_state.items()},
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "best_loss": self.best_loss, "best_name": self.best_name,
            "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                    "task": self.task_rng.get_state()},
            "config": self.config.to_dict(), "encoder": self.encoder.name, "world_size": self.info.world_size,
        }

    def load_training_state(self, path: str | Path) -> int:
        """Restore a state written by ``training_state``; return the epoch to continue from."""
        state = load_state(path)
        saved = state["config"]
        if state.get("encoder") != self.encoder.name:
            raise CheckpointError(f"{path}: trained with encoder {state.get('encoder')!r}, not {self.encoder.name!r}")
        for key in ("heads",):
            if saved["model"][key] != self.config.to_dict()["model"][key]:
                raise CheckpointError(f"{path}: model.{key} differs from the current config: {saved['model'][key]}")
        if saved["model"]["encoder_mode"] != self.config.model.encoder_mode:
            raise CheckpointError(f"{path}: trained with encoder_mode {saved['model']['encoder_mode']!r}, "
                                  f"not {self.config.model.encoder_mode!r}")
        heads = {k[len("heads."):]: v for k, v in state["model"].items() if k.startswith("heads.")}
        self.heads.load_state_dict(heads)
        encoder = {k[len("encoder."):]: v for k, v in state["model"].items() if k.startswith("encoder.")}
        if encoder:
            self.encoder.load_state_dict(encoder)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.best_loss, self.best_name = state["best_loss"], state["best_name"]
        rng = state["rng"]
        if state.get("world_size", 1) == self.info.world_size and self.info.is_main:
            random.setstate(rng["python"])
            np.random.set_state(rng["numpy"])
            torch.set_rng_state(rng["torch"])
            if rng.get("cuda") is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])
        else:  # other ranks (or another world size): a fresh, still deterministic stream per rank and epoch
            self._seed_everything(self.seed + 7919 * (state["epoch"] + 1) + self.info.rank)
        self.task_rng.set_state(rng["task"])
        done = int(state["epoch"]) + 1
        if self.info.is_main:  # epochs logged after the saved state are run again: drop their lines
            kept = [r for r in self.log.read() if r.get("epoch", 0) <= done]
            self.log.path.write_text("".join(_json_line(r) for r in kept))
        log.info("resumed from %s after epoch %d", path, done)
        return done


def _cat(parts: list[np.ndarray], width: int = 0) -> np.ndarray:
    if parts:
        return np.concatenate(parts)
    return np.zeros((0, width)) if width else np.zeros(0)



def _json_line(record: dict) -> str:
    import json

    return json.dumps(record, allow_nan=True) + "\n"
