"""The fine-tune's validation folds hold out whole segments (no real video needed)."""

from __future__ import annotations

import numpy as np

from mtclar.training.anchor_heads import AnchorSample, make_folds
from mtclar.training.finetune import validation_folds
from mtclar.training.finetune_config import FinetuneConfig


def _span_anchors(spans: list[tuple[int, int]], fps: float = 25.0) -> list[AnchorSample]:
    """Anchors as segment labels make them: every frame of each labelled span, all with the span's value."""
    return [AnchorSample(0, frame, np.array([0.1 * s, 0.0]), np.array([frame]), frame / fps)
            for s, (start, end) in enumerate(spans) for frame in range(start, end + 1)]


def test_validation_holds_out_whole_segments():
    spans = [(0, 9), (50, 59), (100, 109), (150, 159), (200, 209), (250, 259)]
    anchors = _span_anchors(spans)
    folds = make_folds(anchors, 5, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(anchors)))  # a partition
    span_of = {i: next(s for s, (a, b) in enumerate(spans) if a <= anchors[i].frame <= b) for i in range(len(anchors))}
    for held in folds:
        held_spans = {span_of[int(i)] for i in held}
        trained = [i for i in range(len(anchors)) if i not in set(held.tolist())]
        # no frame of a held-out span stays in training (a frame-level K-fold leaves its neighbours in)
        assert not held_spans & {span_of[i] for i in trained}


def test_one_labelled_span_cannot_be_validated():
    anchors = _span_anchors([(0, 9)])
    assert len(make_folds(anchors, 5, seed=0)) == 1


def _videos_anchors(n_videos: int) -> list[AnchorSample]:
    return [AnchorSample(v, frame, np.zeros(2), np.array([frame]), frame / 25.0)
            for v in range(n_videos) for start in (0, 100, 200) for frame in range(start, start + 5)]


def test_three_labelled_videos_are_validated_leave_one_video_out():
    anchors = _videos_anchors(3)
    kind, folds = validation_folds(anchors, FinetuneConfig())
    assert kind == "leave-one-video-out" and len(folds) == 3
    for train, held_sets in folds:
        held = np.concatenate(held_sets)
        (video,) = {anchors[i].video for i in held}  # one video held out ...
        assert sorted(held.tolist()) == [i for i, a in enumerate(anchors) if a.video == video]  # ... all of it
        assert not {anchors[i].video for i in train} & {video}  # the heads never see it
        assert len(held_sets) == 3  # each of its segments predicted from its other segments
        assert all(len({anchors[i].frame // 100 for i in s}) == 1 for s in held_sets)


def test_fewer_videos_are_validated_leave_one_segment_out():
    anchors = _videos_anchors(2)
    kind, folds = validation_folds(anchors, FinetuneConfig())
    assert kind == "leave-one-segment-out"
    for train, (held,) in folds:
        assert sorted([*train.tolist(), *held.tolist()]) == list(range(len(anchors)))
