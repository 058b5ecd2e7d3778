import numpy as np
import pytest

from mtclar.model.face import AlignConfig, Face, PersonTracker, TrackerConfig, align_face
from mtclar.model.face.align import similarity_transform
from mtclar.model.video import read_image


def _face(x: float, y: float, size: float, score: float = 0.99) -> Face:
    box = np.array([x, y, x + size, y + size], dtype=np.float32)
    landmarks = np.array([[x + 0.3 * size, y + 0.4 * size]] * 5, dtype=np.float32)
    return Face(box, landmarks, score)


def _has_face(pipeline, path) -> np.ndarray:
    return np.concatenate([b.has_face for b in pipeline.track_video(path, crop_size=112, batch_size=16)])


# -- tracking ----------------------------------------------------------------------------------------


def test_tracker_starts_with_the_largest_face_and_follows_it():
    tracker = PersonTracker(fps=25)
    big, small = _face(100, 100, 80), _face(400, 100, 40)
    assert tracker.update(0, [small, big]) is big
    # the other face grows larger, but the tracked one stays closest
    moved, grown = _face(108, 102, 78), _face(380, 90, 120)
    assert tracker.update(1, [grown, moved]) is moved


def test_tracker_reports_none_when_only_someone_else_is_visible():
    tracker = PersonTracker(fps=25, config=TrackerConfig(max_gap_s=1.0))
    tracker.update(0, [_face(100, 100, 80)])
    stranger = _face(450, 100, 80)
    assert tracker.update(1, [stranger]) is None
    assert tracker.update(2, []) is None
    # after the gap the largest visible face is taken again
    assert tracker.update(40, [stranger]) is stranger


def test_tracker_rejects_a_face_of_very_different_size_at_the_same_place():
    tracker = PersonTracker(fps=25)
    tracker.update(0, [_face(100, 100, 80)])
    assert tracker.update(1, [_face(110, 110, 20)]) is None


# -- alignment ---------------------------------------------------------------------------------------


def test_alignment_maps_landmarks_onto_the_template():
    config = AlignConfig(zoom=0.9)
    template = config.template(112)
    angle = np.deg2rad(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = (template - 56) @ rotation.T * 2.5 + [300, 200]
    matrix = similarity_transform(landmarks, template)
    mapped = landmarks @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(mapped, template, atol=1e-3)
    frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    assert align_face(frame, landmarks, 112, config).shape == (112, 112, 3)


# -- real clips --------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["WolfgangLanger_Pexels.mp4", "single_face.mp4"])
def test_face_found_on_almost_every_frame(face_pipeline, videos, name):
    has_face = _has_face(face_pipeline, videos / name)
    assert has_face.mean() >= 0.95, f"{name}: face on {has_face.mean():.1%} of frames"


@pytest.mark.slow
def test_no_face_video_has_no_face(face_pipeline, videos):
    has_face = _has_face(face_pipeline, videos / "no_face.mp4")
    assert len(has_face) == 95 and not has_face.any()


@pytest.mark.slow
def test_only_the_real_face_part_gets_crops(face_pipeline, videos):
    # frames 0-71 film a man; from frame 72 on a black frame, then a cartoon title with no real face
    batches = list(face_pipeline.track_video(videos / "face_noface.mov", crop_size=112, batch_size=16))
    has_face = np.concatenate([b.has_face for b in batches])
    assert len(has_face) == 169
    assert has_face[:72].mean() >= 0.95
    assert not has_face[72:].any()
    assert sum(len(b.crops) for b in batches) == has_face.sum()
    assert all(b.crops.shape[1:] == (112, 112, 3) for b in batches)


def test_still_with_several_faces_gives_the_largest(face_pipeline, stills):
    image = read_image(stills / "multi_face.jpg")
    faces = face_pipeline.detector.detect(image[None])[0]
    assert len(faces) >= 3
    face, crop = face_pipeline.face_in_image(image, 112)
    assert face.area == max(f.area for f in faces)
    assert crop.shape == (112, 112, 3)


def test_image_without_a_face(face_pipeline):
    face, crop = face_pipeline.face_in_image(np.full((240, 320, 3), 127, dtype=np.uint8), 112)
    assert face is None and crop is None
