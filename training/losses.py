"""MT-CLAR's losses, as pure functions of tensors.

- similarity: cross-entropy on the 2 similarity logits (1 = similar);
- valence / arousal difference: ``w_mse * MSE + w_ccc * (1 - CCC)`` with ``w_mse = (epoch / E)^2`` and
  ``w_ccc = 1 - w_mse`` (CCC-heavy early, MSE-heavy late), over the pairs whose V/A is known;
- embedding: cosine-embedding loss (margin 0.25) on the two raw embeddings, target +1 similar / -1 not;
- total: a random convex combination ``a*L_dv + b*L_sim + c*L_da + d*L_emb``, weights drawn U(0, 1) fresh
  every training batch and normalised to sum 1; validation uses 0.25 each and a 0.5/0.5 MSE/CCC split.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F

#: order of the task weights (a, b, c, d)
TASKS = ("valence", "similarity", "arousal", "embedding")
VAL_TASK_WEIGHTS = (0.25, 0.25, 0.25, 0.25)
VAL_MSE_WEIGHT = 0.5
EMBEDDING_MARGIN = 0.25


def similarity_loss(logits: torch.Tensor, similar: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of (P, 2) logits against 0/1 targets (P,)."""
    return F.cross_entropy(logits, similar.long())


def ccc(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Lin's concordance correlation with population moments: 2 cov / (var_p + var_t + (mean_p - mean_t)^2)."""
    mean_p, mean_t = pred.mean(), target.mean()
    covariance = ((pred - mean_p) * (target - mean_t)).mean()
    denominator = pred.var(unbiased=False) + target.var(unbiased=False) + (mean_p - mean_t) ** 2
    return 2 * covariance / (denominator + eps)


def dynamic_mse_weight(epoch: int, epochs: int) -> float:
    """``(epoch / epochs)^2`` for a 0-based epoch: 0 at the start (all CCC), near 1 at the end (all MSE)."""
    if epochs <= 0:
        raise ValueError(f"epochs must be positive, got {epochs}")
    return min(max(epoch / epochs, 0.0), 1.0) ** 2


def mse_ccc_loss(pred: torch.Tensor, target: torch.Tensor, mse_weight: float,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """``mse_weight * MSE + (1 - mse_weight) * (1 - CCC)`` over the entries where ``mask`` is true.

    With fewer than 2 entries the CCC term is dropped (it is undefined); with none the loss is 0 (still
    connected to ``pred`` so that backward works).
    """
    if mask is not None:
        pred, target = pred[mask], target[mask]
    if pred.numel() == 0:
        return pred.sum() * 0.0
    mse = F.mse_loss(pred, target)
    if pred.numel() < 2:
        return mse_weight * mse
    return mse_weight * mse + (1.0 - mse_weight) * (1.0 - ccc(pred, target))


def pair_losses(out: Mapping[str, torch.Tensor], delta: torch.Tensor, similar: torch.Tensor, mse_weight: float,
                known: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """MT-CLAR's per-task losses for a batch of pairs: same/different expression (cross-entropy), the V and A
    differences (MSE + CCC, ``known`` masks pairs without V/A), and, when the outputs carry both embeddings,
    the cosine embedding loss."""
    parts = {
        "similarity": similarity_loss(out["similarity_logits"], similar),
        "valence": mse_ccc_loss(out["delta_valence"], delta[:, 0], mse_weight, known),
        "arousal": mse_ccc_loss(out["delta_arousal"], delta[:, 1], mse_weight, known),
    }
    if "embedding1" in out and "embedding2" in out:
        parts["embedding"] = cosine_embedding_loss(out["embedding1"], out["embedding2"], similar)
    return parts


def cosine_embedding_loss(e1: torch.Tensor, e2: torch.Tensor, similar: torch.Tensor,
                          margin: float = EMBEDDING_MARGIN) -> torch.Tensor:
    """Mean of ``1 - cos`` for similar pairs and ``max(0, cos - margin)`` for the others."""
    return F.cosine_embedding_loss(e1, e2, similar.float() * 2 - 1, margin=margin)


def random_task_weights(generator: torch.Generator | None = None) -> torch.Tensor:
    """(4,) weights for TASKS drawn U(0, 1) and normalised to sum 1: a random convex combination."""
    weights = torch.rand(4, generator=generator, dtype=torch.float64)
    weights = weights.clamp_min(1e-12)
    return (weights / weights.sum()).float()


def total_loss(parts: Mapping[str, torch.Tensor], weights: torch.Tensor | tuple[float, ...]) -> torch.Tensor:
    """``a*L_dv + b*L_sim + c*L_da + d*L_emb`` with weights in TASKS order."""
    return sum(float(w) * parts[name] for w, name in zip(weights, TASKS, strict=True))  # type: ignore[return-value]
