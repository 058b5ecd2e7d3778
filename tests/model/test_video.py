from pathlib import Path

import numpy as np
import pytest

from mtclar.model.errors import MediaError
from mtclar.model.video import content_id, iter_frames, probe_video, read_frame, read_header


def test_probe_counts_decoded_frames(videos):
    info = probe_video(videos / "WolfgangLanger_Pexels.mp4")
    assert info.n_frames == 472
    assert info.fps == pytest.approx(23.976, abs=1e-3)
    assert (info.width, info.height) == (640, 360)
    assert len(info.content_id) == 64


def test_frames_are_rgb_in_decode_order(videos):
    batches = list(iter_frames(videos / "single_face.mp4", batch_size=32))
    indices = np.concatenate([b.indices for b in batches])
    assert indices.tolist() == list(range(72))
    assert batches[0].frames.shape == (32, 360, 640, 3) and batches[0].frames.dtype == np.uint8
    assert batches[-1].frames.shape[0] == 72 - 64
    # the same frame through the seeking reader
    np.testing.assert_array_equal(read_frame(videos / "single_face.mp4", 40), batches[1].frames[8])


def test_container_frame_count_is_not_trusted(videos):
    # no_face.mp4 declares 98 frames but 95 decode
    assert read_header(videos / "no_face.mp4").declared_frames == 98
    assert probe_video(videos / "no_face.mp4").n_frames == 95


def test_content_id_follows_bytes(tmp_path, videos):
    copy = tmp_path / "copy.mp4"
    copy.write_bytes((videos / "single_face.mp4").read_bytes())
    assert content_id(copy) == content_id(videos / "single_face.mp4")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.mp4", "video not found"),
        (lambda d: _write(d / "empty.mp4", b""), "empty"),
        (lambda d: _write(d / "notes.mp4", b"this is a text file, not a video\n" * 100), "cannot open"),
        (lambda d: d, "not a file"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(MediaError, match=message):
        probe_video(path)
    with pytest.raises(MediaError, match=message):
        list(iter_frames(path))


def test_image_is_not_a_video(stills):
    with pytest.raises(MediaError, match="is an image, not a video"):
        probe_video(stills / "single_face.jpg")


def test_corrupt_video_body(tmp_path, videos):
    data = bytearray((videos / "single_face.mp4").read_bytes())
    data[: len(data) // 2] = bytes(len(data) // 2)  # zero the header and half the stream
    path = _write(tmp_path / "corrupt.mp4", bytes(data))
    with pytest.raises(MediaError, match=str(path.name)):
        probe_video(path)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
