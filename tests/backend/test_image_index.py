import os

import numpy as np

from mtclar.model.embeddings import VideoEmbeddings
from mtclar.model.video import VideoInfo
from mtclar_backend.image_index import ImageIndex, _size


def one_image(value: float, dim: int = 8) -> VideoEmbeddings:
    return VideoEmbeddings(info=VideoInfo("x", 1, 1.0, 4, 4, "id"), has_face=np.ones(1, bool),
                           face_score=np.ones(1, np.float32), boxes=np.zeros((1, 4), np.float32),
                           landmarks=np.zeros((1, 5, 2), np.float32),
                           embeddings=np.full((1, dim), value, np.float32), expression_probs=np.zeros((1, 7)),
                           encoder="e", weights_id="w")


def test_least_recently_used_images_go_first_beyond_the_byte_bound(tmp_path):
    paths = [tmp_path / f"{i}.png" for i in range(4)]
    for path in paths:
        path.write_bytes(b"image")
    index = ImageIndex(max_bytes=3 * _size(one_image(0)))
    for i, path in enumerate(paths[:3]):
        index.put(path, one_image(i))
    assert index.get(paths[0]) is not None  # now the most recently used
    index.put(paths[3], one_image(3))
    assert index.get(paths[1]) is None  # evicted: the least recently used
    assert [index.get(p).embeddings[0, 0] for p in (paths[0], paths[2], paths[3])] == [0, 2, 3]
    assert index.stats()["images"] == 3


def test_a_replaced_or_missing_file_misses(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(b"first")
    index = ImageIndex(max_bytes=2**20)
    index.put(path, one_image(1))
    assert index.get(path) is not None
    path.write_bytes(b"second, longer")
    assert index.get(path) is None
    os.utime(path, ns=(1, 1))
    index.put(path, one_image(2))
    path.write_bytes(b"second, LONGER")  # same size, new modification time
    assert index.get(path) is None
    path.unlink()
    assert index.get(path) is None
    index.put(path, one_image(3))  # a missing file: its old entry goes, nothing is held
    assert index.stats()["images"] == 0


def test_an_entry_larger_than_the_bound_is_not_held(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(b"x")
    index = ImageIndex(max_bytes=100)
    index.put(path, one_image(1))
    assert index.get(path) is None and index.stats()["mb"] == 0
