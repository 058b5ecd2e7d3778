"""Detection in a window around the last face (``PipelineConfig.follow``) against whole-frame detection."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mtclar.model.embeddings import EmbeddingCache
from mtclar.model.encoders import DEFAULT_ENCODER, create_encoder
from mtclar.model.errors import ConfigError
from mtclar.model.face import Face, FacePipeline, FollowConfig, PipelineConfig, RetinaFaceDetector
from mtclar.model.face.follow import Window
from mtclar.model.video import FrameBatch, iter_frames, read_image

HEIGHT, WIDTH = 360, 640


class CountingDetector(RetinaFaceDetector):
    """The real detector, remembering the size of every frame it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[tuple[int, int]] = []

    def detect(self, frames: np.ndarray, scale: float | None = None) -> list[list[Face]]:
        self.sizes += [frames.shape[1:3]] * len(frames)
        return super().detect(frames, scale)


@pytest.fixture(scope="module")
def face_patch(stills) -> np.ndarray:
    """The face of single_face.jpg with some context, about 130 px tall."""
    image = read_image(stills / "single_face.jpg")
    patch = image[100:430, 160:410]
    return cv2.resize(patch, (patch.shape[1] * 2 // 5, patch.shape[0] * 2 // 5), interpolation=cv2.INTER_AREA)


def moving_face(patch: np.ndarray, positions: list[tuple[int, int] | None]) -> np.ndarray:
    """Frames of a grey background with ``patch`` at each top-left position (None: no face), clipped."""
    frames = np.full((len(positions), HEIGHT, WIDTH, 3), 110, dtype=np.uint8)
    ph, pw = patch.shape[:2]
    for frame, position in zip(frames, positions, strict=True):
        if position is None:
            continue
        x, y = position
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + pw, WIDTH), min(y + ph, HEIGHT)
        if x1 <= x0 or y1 <= y0:
            continue
        frame[y0:y1, x0:x1] = patch[y0 - y:y1 - y, x0 - x:x1 - x]
    return frames


def run(pipeline: FacePipeline, frames: np.ndarray, batch: int = 8) -> list[Face | None]:
    batches = [FrameBatch(np.arange(i, min(i + batch, len(frames))), frames[i:i + batch])
               for i in range(0, len(frames), batch)]
    return [face for tracked in pipeline.track(batches, 25.0, 112) for face in tracked.faces]


def following(crop: float = 2.0, full_every: int = 64) -> FacePipeline:
    return FacePipeline(PipelineConfig(follow=FollowConfig(crop=crop, full_every=full_every)),
                        detector=CountingDetector())


def assert_same_faces(full: list[Face | None], followed: list[Face | None], tolerance: float = 0.05) -> None:
    assert [f is None for f in full] == [f is None for f in followed]
    for a, b in zip(full, followed, strict=True):
        if a is not None:
            assert np.abs(a.box - b.box).max() <= tolerance * a.size
            assert np.linalg.norm(a.landmarks - b.landmarks, axis=1).max() <= tolerance * a.size


# -- the window -------------------------------------------------------------------------------------


def test_window_maps_its_faces_back_to_frame_pixels():
    face = Face(np.array([300, 100, 400, 220], np.float32), np.zeros((5, 2), np.float32) + [350, 160], 0.99)
    window = Window.around(face, crop=2.0, scale=0.5)
    assert window.side == 240 and window.out_side == 120
    assert (window.x0, window.y0) == (230, 40)
    inside = Face(np.array([35, 30, 85, 90], np.float32), np.zeros((5, 2), np.float32) + [60, 60], 0.9)
    mapped = window.to_frame(inside)
    np.testing.assert_allclose(mapped.box, [300, 100, 400, 220])
    np.testing.assert_allclose(mapped.landmarks, np.zeros((5, 2)) + [350, 160])


def test_window_outside_the_frame_is_black_and_the_inside_is_the_frame():
    frame = np.random.default_rng(0).integers(1, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    window = Window(x0=-50, y0=300, side=100, scale=1.0)
    cut = window.cut(frame)
    assert cut.shape == (100, 100, 3)
    assert not cut[:, :50].any() and not cut[60:].any()
    np.testing.assert_array_equal(cut[:60, 50:], frame[300:360, 0:50])


def test_a_face_on_a_window_side_inside_the_frame_is_cut_off_but_not_at_the_frame_edge():
    window = Window(x0=100, y0=0, side=200, scale=1.0)
    at_left = Face(np.array([101, 50, 180, 150], np.float32), np.zeros((5, 2), np.float32), 0.99)
    at_top = Face(np.array([150, 1, 230, 100], np.float32), np.zeros((5, 2), np.float32), 0.99)
    assert window.cut_off(at_left, HEIGHT, WIDTH, 0.05)
    assert not window.cut_off(at_top, HEIGHT, WIDTH, 0.05)  # the window's top is the frame's top


# -- config -----------------------------------------------------------------------------------------


def test_follow_config_round_trips_and_enters_the_cache_key(tmp_path):
    config = PipelineConfig(follow=FollowConfig(crop=3.0, full_every=32, edge=0.1))
    assert PipelineConfig.from_dict(config.to_dict()) == config
    assert PipelineConfig.from_dict(PipelineConfig().to_dict()) == PipelineConfig()
    # stored before follow existed: whole-frame detection, as it was computed
    stored = {k: v for k, v in config.to_dict().items() if k != "follow"}
    assert not PipelineConfig.from_dict(stored).follow.enabled
    with pytest.raises(ConfigError, match="pipeline.follow"):
        PipelineConfig.from_dict({**config.to_dict(), "follow": {"crop": 2.0, "every": 3}})
    cache, encoder = EmbeddingCache(tmp_path), create_encoder(DEFAULT_ENCODER)
    paths = {cache.path_for("video", encoder, FacePipeline(PipelineConfig(follow=FollowConfig(crop=c, full_every=n))))
             for c, n in ((0.0, 64), (2.5, 64), (3.0, 64), (3.0, 32))}
    assert len(paths) == 4


# -- tracking a face --------------------------------------------------------------------------------


def test_follows_a_moving_face_like_whole_frame_detection(face_patch):
    positions = [(40 + 6 * t, 60 + round(25 * np.sin(t / 6))) for t in range(48)]
    frames = moving_face(face_patch, positions)
    full = run(FacePipeline(PipelineConfig(follow=FollowConfig(crop=0.0))), frames)
    pipeline = following()
    followed = run(pipeline, frames)
    assert all(f is not None for f in full)
    assert_same_faces(full, followed)
    # only the first batch is detected on the whole frame
    assert pipeline.detector.sizes.count((HEIGHT, WIDTH)) == 8


def test_detects_the_whole_frame_again_every_full_every_frames(face_patch):
    frames = moving_face(face_patch, [(200, 100)] * 40)
    pipeline = following(full_every=16)
    run(pipeline, frames)
    whole = [i for i, size in enumerate(pipeline.detector.sizes) if size == (HEIGHT, WIDTH)]
    assert whole == [*range(0, 8), *range(24, 32)]


def test_falls_back_to_the_whole_frame_when_the_face_is_lost_or_jumps(face_patch):
    # still; gone for 4 frames; back a little further on; then fast to the right, out of the frame
    positions = [(100, 80)] * 10 + [None] * 4 + [(140, 90)] * 6 + [(140 + 25 * t, 90) for t in range(1, 24)]
    frames = moving_face(face_patch, positions)
    full = run(FacePipeline(PipelineConfig(follow=FollowConfig(crop=0.0))), frames)
    pipeline = following()
    followed = run(pipeline, frames)
    assert_same_faces(full, followed)
    assert followed[10] is None and followed[14] is not None
    assert len(pipeline.detector.sizes) > len(frames)  # windows that missed were detected again in full


@pytest.mark.slow
def test_follows_the_face_of_a_real_clip_like_whole_frame_detection(videos):
    frames = np.concatenate([b.frames for b in iter_frames(videos / "single_face.mp4", 32)])
    full = run(FacePipeline(PipelineConfig(follow=FollowConfig(crop=0.0))), frames, batch=16)
    pipeline = following()
    followed = run(pipeline, frames, batch=16)
    assert_same_faces(full, followed, tolerance=0.05)
    # only the first batch on the whole frame (72 frames < full_every after it), the rest in the window
    assert pipeline.detector.sizes.count((HEIGHT, WIDTH)) == 16
