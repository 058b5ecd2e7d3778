"""Recent /predict latencies, summarised on /metrics."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np


class LatencyStats:
    def __init__(self, keep: int = 200):
        self._recent: deque[tuple[str, int, float]] = deque(maxlen=keep)  # (mode, frames or tasks, seconds)
        self._lock = threading.Lock()

    def record(self, mode: str, items: int, seconds: float) -> None:
        with self._lock:
            self._recent.append((mode, items, seconds))

    def summary(self) -> dict:
        with self._lock:
            recent = list(self._recent)
        out = {}
        for mode in sorted({m for m, _, _ in recent}):
            values = np.array([s for m, _, s in recent if m == mode])
            out[mode] = {"count": len(values), "mean_s": round(float(values.mean()), 4),
                         "p95_s": round(float(np.percentile(values, 95)), 4), "max_s": round(float(values.max()), 4)}
        return out
