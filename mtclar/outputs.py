"""Per-video label files: CSV, JSON (same rows + run metadata) and a PNG of the curves."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from mtclar.model.embeddings import VideoEmbeddings
from mtclar.model.fewshot import FrameLabels

COLUMNS = ("frame", "time_s", "valence", "arousal", "score", "face", "source")


def label_rows(video: VideoEmbeddings, labels: FrameLabels) -> list[dict]:
    rows = []
    for frame in range(video.n_frames):
        known = labels.source[frame] != "no_face"
        rows.append({
            "frame": frame,
            "time_s": round(float(video.time_s[frame]), 4),
            "valence": round(float(labels.valence[frame]), 4) if known else None,
            "arousal": round(float(labels.arousal[frame]), 4) if known else None,
            "score": round(float(labels.score[frame]), 4) if known else None,
            "face": bool(video.has_face[frame]),
            "source": str(labels.source[frame]),
            "predictor": str(labels.predictor[frame]),
        })
    return rows


def write_csv(path: Path, rows: list[dict], columns: tuple[str, ...] = COLUMNS) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row[k] is None else row[k]) for k in columns})


def write_json(path: Path, rows: list[dict], metadata: dict) -> None:
    path.write_text(json.dumps({"metadata": metadata, "frames": rows}, indent=1, allow_nan=False) + "\n")


def plot_curves(path: Path, video: VideoEmbeddings, labels: FrameLabels, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = video.time_s
    anchor = labels.source == "anchor"
    fig, axes = plt.subplots(2, 1, figsize=(11, 5.5), sharex=True, constrained_layout=True)
    for ax, name, values in ((axes[0], "valence", labels.valence), (axes[1], "arousal", labels.arousal)):
        band = np.where(np.isfinite(labels.uncertainty), labels.uncertainty, np.nan)
        ax.fill_between(t, np.clip(values - band, -1, 1), np.clip(values + band, -1, 1), color="tab:blue",
                        alpha=0.18, linewidth=0, label="uncertainty")
        ax.plot(t, values, color="tab:blue", linewidth=1.3, label="predicted")
        ax.scatter(t[anchor], values[anchor], color="tab:red", zorder=3, s=22, label="anchor (labelled)")
        no_face = ~video.has_face
        if no_face.any():
            ax.fill_between(t, -1, 1, where=no_face, color="0.85", alpha=0.6, linewidth=0, step="mid",
                            label="no face")
        ax.set_ylim(-1.05, 1.05)
        ax.axhline(0, color="0.6", linewidth=0.6)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=8, ncol=4)
    axes[1].set_xlabel("time (s)")
    axes[0].set_title(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
