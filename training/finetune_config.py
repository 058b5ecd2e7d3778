"""What a project fine-tune takes: the project's videos (embeddings + anchors) and its settings."""

from __future__ import annotations

from dataclasses import dataclass

from mtclar.model.embeddings import VideoEmbeddings
from mtclar.model.errors import ConfigError
from mtclar.model.fewshot import STRATEGIES

from .pairs import VA_THRESHOLD


@dataclass
class ProjectVideo:
    name: str
    embeddings: VideoEmbeddings
    anchors: dict[int, tuple[float, float]]  # frame -> (valence, arousal) in [-1, 1]


@dataclass(frozen=True)
class FinetuneConfig:
    hidden: tuple[int, ...] = (256, 64)
    dropout: float = 0.2
    fusion: str = "concat"  # the only fusion that can tell the sign of a difference
    steps: int = 300  # optimiser steps per fit (a fold or the final model)
    batch_size: int = 256  # pairs per step (all pairs when there are fewer)
    lr: float = 3e-3
    weight_decay: float = 1e-3
    loss: str = "mse+ccc"  # "mse+ccc": the paper's (epoch/E)^2 MSE + (1 - CCC) schedule over steps; "mse"
    similarity_weight: float = 0.2  # the similarity head (V/A distance < va_threshold) also trains
    va_threshold: float = VA_THRESHOLD
    jitter_frames: int = 0  # > 0: a pair side may be a frame this close to its anchor (same label)
    self_pairs: bool = True  # (i, i) pairs with delta 0
    cross_video: bool = True  # pairs of anchors of different videos
    folds: int = 5  # leave-one-segment-out folds (fewer when there are fewer segments)
    min_videos_to_hold_out: int = 3  # with this many labelled videos, validate leave-one-video-out
    min_anchors: int = 3  # anchors with a face, over all videos
    min_improvement: float = 0.005  # the new heads must lower mean(V RMSE, A RMSE) by at least this
    strategies: tuple[str, ...] = STRATEGIES
    seed: int = 0
    # torch CPU threads while fine-tuning (0: leave as is). Heads this small gain nothing from a second thread,
    # and OpenMP threads that wait for each other on a busy 2-core machine made a fit 10x slower (measured).
    threads: int = 1

    def __post_init__(self) -> None:
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown or not self.strategies:
            raise ConfigError(f"unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}")
        if self.loss not in ("mse+ccc", "mse"):
            raise ConfigError(f"unknown loss {self.loss!r}; choose mse+ccc or mse")
        if self.fusion != "concat":
            raise ConfigError("fine-tuning needs fusion 'concat': |e1 - e2| and e1 * e2 cannot tell which frame "
                             "has the higher label")
        if self.folds < 2 or self.steps < 1 or self.min_anchors < 2:
            raise ConfigError("folds must be >= 2, steps >= 1 and min_anchors >= 2")
