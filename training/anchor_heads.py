"""Anchor pairs and pair heads for the project fine-tune (see ``training.finetune``): the anchors with a
face, their K folds, and heads trained on ordered anchor pairs of cached embeddings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mtclar.model.correction import segment_ids
from mtclar.model.errors import AnchorError
from mtclar.model.fewshot import FloorConfig, check_anchors
from mtclar.model.siamese import HeadConfig, PairHeads

from .finetune_config import FinetuneConfig, ProjectVideo
from .fit import fit_step
from .losses import dynamic_mse_weight, pair_losses

SEGMENT_GAP_S = FloorConfig().segment_gap_s  # the labeller's segment: the same unit is held out here
BLOCK_S = 2.0  # longer runs of anchors are held out in blocks of this length


@dataclass
class AnchorSample:
    """One anchor with a face: its video (index), frame, label and the frames that may stand for it."""

    video: int
    frame: int
    value: np.ndarray  # (2,)
    rows: np.ndarray  # frames whose embedding may stand for this anchor (itself first)
    time_s: float = 0.0  # its time in the video: anchors closer than the segment gap are held out together


def collect_anchors(videos: list[ProjectVideo], jitter: int) -> list[AnchorSample]:
    anchors = []
    for v, video in enumerate(videos):
        frames, values = check_anchors(video.anchors, video.embeddings.n_frames, f"{video.name}: ")
        has_face = video.embeddings.has_face
        taken = set(frames.tolist())
        for frame, value in zip(frames, values, strict=True):
            if not has_face[frame]:
                continue
            near = [f for f in range(frame - jitter, frame + jitter + 1)
                    if f != frame and 0 <= f < len(has_face) and has_face[f] and f not in taken]
            anchors.append(AnchorSample(v, int(frame), value, np.array([frame, *near], dtype=int),
                                         float(video.embeddings.time_s[frame])))
    return anchors


def make_folds(anchors: list[AnchorSample], k: int, seed: int,
               segment_gap_s: float = SEGMENT_GAP_S) -> list[np.ndarray]:
    """Anchor indices per fold, whole segments at a time: a segment (a run of a video's anchors no more than
    ``segment_gap_s`` apart, e.g. every frame of a labelled span) is never split between training and held-out,
    so a held-out anchor's neighbour is never in training (runs longer than ``BLOCK_S`` are held out in blocks of
    that length: only the anchors at a block's edges have a neighbour in training). Segments are shuffled
    within each video and dealt round robin (continuing across videos); at most as many folds as segments."""
    rng = np.random.default_rng([seed, 11])
    segments: list[list[int]] = []
    for v in sorted({a.video for a in anchors}):
        members = sorted((i for i, a in enumerate(anchors) if a.video == v), key=lambda i: anchors[i].time_s)
        times = np.array([anchors[i].time_s for i in members])
        ids = segment_ids(times, segment_gap_s)
        # a long labelled run is cut into blocks of BLOCK_S, so a densely labelled video still has folds
        first = np.flatnonzero(np.r_[True, np.diff(ids) > 0])  # ids are sorted: where each segment begins
        starts = times[first][ids]
        blocks = np.floor((times - starts) / BLOCK_S).astype(int)
        _, ids = np.unique(np.stack([ids, blocks], axis=1), axis=0, return_inverse=True)
        ids = ids.reshape(-1)
        video_segments = [[m for m, s in zip(members, ids, strict=True) if s == n]
                          for n in range(int(ids.max()) + 1)]
        segments += [video_segments[j] for j in rng.permutation(len(video_segments))]
    folds: list[list[int]] = [[] for _ in range(min(k, len(segments)))]
    for position, segment in enumerate(segments):
        folds[position % len(folds)].extend(segment)
    return [np.array(sorted(f), dtype=int) for f in folds]


def train_heads(videos: list[ProjectVideo], anchors: list[AnchorSample], config: FinetuneConfig, embed_dim: int,
                seed: int) -> PairHeads:
    """Pair heads trained on ordered pairs of ``anchors`` (see the module doc). CPU, seconds."""
    rows = sorted({(a.video, int(r)) for a in anchors for r in a.rows})
    index = {key: i for i, key in enumerate(rows)}
    table = torch.as_tensor(np.stack([videos[v].embeddings.embeddings[r] for v, r in rows]), dtype=torch.float32)
    width = max(len(a.rows) for a in anchors)
    candidates = torch.zeros((len(anchors), width), dtype=torch.long)
    counts = torch.tensor([len(a.rows) for a in anchors], dtype=torch.long)
    for i, a in enumerate(anchors):
        candidates[i, :len(a.rows)] = torch.tensor([index[(a.video, int(r))] for r in a.rows])
    values = torch.as_tensor(np.stack([a.value for a in anchors]), dtype=torch.float32)
    video_of = torch.tensor([a.video for a in anchors])
    first, second = torch.meshgrid(torch.arange(len(anchors)), torch.arange(len(anchors)), indexing="ij")
    first, second = first.reshape(-1), second.reshape(-1)
    keep = torch.ones_like(first, dtype=torch.bool)
    if not config.self_pairs:
        keep &= first != second
    if not config.cross_video:
        keep &= video_of[first] == video_of[second]
    first, second = first[keep], second[keep]
    if len(first) < 2:
        raise AnchorError(f"only {len(first)} training pair(s) from {len(anchors)} anchors: label more frames")

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        heads = PairHeads(HeadConfig(embed_dim=embed_dim, fusion=config.fusion, hidden=tuple(config.hidden),
                                     dropout=config.dropout))
        optimizer = torch.optim.AdamW(heads.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        heads.train()
        n_pairs = len(first)
        for step in range(config.steps):
            if n_pairs <= config.batch_size:
                pick = torch.randperm(n_pairs)
            else:
                pick = torch.randint(0, n_pairs, (config.batch_size,))
            i, j = first[pick], second[pick]
            ri = candidates[i, (torch.rand(len(i)) * counts[i]).long()]
            rj = candidates[j, (torch.rand(len(j)) * counts[j]).long()]
            out = heads(table[ri], table[rj])
            delta = values[i] - values[j]
            similar = (delta.norm(dim=1) < config.va_threshold).long()
            mse_weight = dynamic_mse_weight(step, config.steps) if config.loss == "mse+ccc" else 1.0
            parts = pair_losses(out, delta, similar, mse_weight)
            fit_step(optimizer, parts["valence"] + parts["arousal"] + config.similarity_weight * parts["similarity"])
    return heads.eval()
