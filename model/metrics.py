"""RMSE, PCC, CCC (population sd), SAGR and accuracy; pooled over frames and averaged per video."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

DIMENSIONS = ("valence", "arousal")


def _pair(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, true = np.asarray(pred, dtype=np.float64).ravel(), np.asarray(true, dtype=np.float64).ravel()
    if pred.shape != true.shape:
        raise ValueError(f"prediction and truth differ in length: {pred.shape[0]} vs {true.shape[0]}")
    if pred.size == 0:
        raise ValueError("no frames to score")
    return pred, true


def rmse(pred: np.ndarray, true: np.ndarray) -> float:
    pred, true = _pair(pred, true)
    return float(np.sqrt(np.mean((pred - true) ** 2)))


def pcc(pred: np.ndarray, true: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant (undefined)."""
    pred, true = _pair(pred, true)
    dp, dt = pred - pred.mean(), true - true.mean()
    denominator = np.sqrt((dp**2).sum() * (dt**2).sum())
    return float((dp * dt).sum() / denominator) if denominator > 0 else float("nan")


def ccc(pred: np.ndarray, true: np.ndarray) -> float:
    """Lin's concordance: 2 cov / (var_p + var_t + (mean_p - mean_t)^2), population moments."""
    pred, true = _pair(pred, true)
    covariance = np.mean((pred - pred.mean()) * (true - true.mean()))
    denominator = pred.var() + true.var() + (pred.mean() - true.mean()) ** 2
    if denominator == 0:  # both constant and equal: perfect agreement
        return 1.0
    return float(2 * covariance / denominator)


def sagr(pred: np.ndarray, true: np.ndarray) -> float:
    """Share of frames where sign(pred) == sign(true) (0 is its own sign)."""
    pred, true = _pair(pred, true)
    return float(np.mean(np.sign(pred) == np.sign(true)))


def accuracy(pred: np.ndarray, true: np.ndarray) -> float:
    pred, true = _pair(pred, true)
    return float(np.mean(pred == true))


def regression_metrics(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    return {"rmse": rmse(pred, true), "pcc": pcc(pred, true), "ccc": ccc(pred, true), "sagr": sagr(pred, true)}


def va_metrics(pred: Mapping[str, np.ndarray], true: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """``{"valence": {...}, "arousal": {...}}`` pooled over all frames given."""
    return {dim: regression_metrics(pred[dim], true[dim]) for dim in DIMENSIONS}


def per_video_mean(per_video: Mapping[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Mean of each metric over videos (NaN-skipping: a constant-label video has no PCC)."""
    videos = list(per_video.values())
    if not videos:
        raise ValueError("no videos to average")
    out: dict[str, dict[str, float]] = {}
    for dim in DIMENSIONS:
        out[dim] = {}
        for metric in videos[0][dim]:
            values = np.array([v[dim][metric] for v in videos], dtype=np.float64)
            out[dim][metric] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    return out


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    def ranks(v: np.ndarray) -> np.ndarray:
        # ties share their average rank (a constant input has no defined correlation)
        _, inverse, counts = np.unique(np.asarray(v, dtype=np.float64), return_inverse=True, return_counts=True)
        inverse = inverse.ravel()
        starts = np.cumsum(counts) - counts
        return (starts + (counts - 1) / 2)[inverse]

    return pcc(ranks(x), ranks(y)) if len(x) > 2 else float("nan")
