"""The one optimisation step every training loop here takes (pairs, the SL head, a project's anchor heads)."""

from __future__ import annotations

import torch


def fit_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> float:
    """Backpropagate ``loss`` and update; returns its value."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())
