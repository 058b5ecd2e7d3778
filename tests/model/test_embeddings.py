import numpy as np
import pytest

from mtclar.model.embeddings import EmbeddingCache, VideoEmbedder, VideoEmbeddings
from mtclar.model.video import content_id


@pytest.mark.slow
def test_video_embeddings_are_cached_and_reused(face_pipeline, encoder, videos, tmp_path, monkeypatch):
    cache = EmbeddingCache(tmp_path)
    embedder = VideoEmbedder(face_pipeline, encoder, cache)
    progress = []
    first = embedder.embed_video(videos / "face_noface.mov", on_progress=lambda done, total: progress.append(done))
    assert progress[-1] == 169
    assert first.embeddings.shape == (169, 256) and first.expression_probs.shape == (169, 7)
    assert np.isfinite(first.embeddings[first.has_face]).all()
    assert np.isnan(first.embeddings[~first.has_face]).all()
    np.testing.assert_allclose(first.expression_probs[first.has_face].sum(axis=1), 1, atol=1e-5)
    assert first.time_s[24] == pytest.approx(24 / first.info.fps)
    files = list(tmp_path.rglob("*.npz"))
    assert len(files) == 1 and first.info.content_id in files[0].name

    def decode_again(*args, **kwargs):
        raise AssertionError("a cached video was decoded again")

    monkeypatch.setattr(face_pipeline, "track_opened", decode_again)
    monkeypatch.setattr("mtclar.model.embeddings.open_video", decode_again)  # not even opened
    second = VideoEmbedder(face_pipeline, encoder, cache).embed_video(videos / "face_noface.mov")
    np.testing.assert_array_equal(second.embeddings, first.embeddings)
    assert second.info == first.info


def test_a_broken_cache_entry_is_recomputed(face_pipeline, encoder, videos, tmp_path):
    cache = EmbeddingCache(tmp_path)
    embedder = VideoEmbedder(face_pipeline, encoder, cache)
    path = cache.path_for(content_id(videos / "no_face.mp4"), encoder, face_pipeline)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not an npz")
    result = embedder.embed_video(videos / "no_face.mp4")
    assert result.n_frames == 95 and not result.has_face.any()
    assert VideoEmbeddings.load(path).n_frames == 95


def test_still_image_embedding(embedder, stills):
    embedding, probs = embedder.embed_image(stills / "0-f15-hao-ph.jpg")
    assert embedding.shape == (256,) and np.isfinite(embedding).all()
    assert embedder.encoder.config.expression_classes[int(probs.argmax())] == "happy"


def test_rows_grow_past_the_declared_count_and_trim_to_the_decoded_frames():
    from types import SimpleNamespace

    from mtclar.model.embeddings import _Rows

    def face(i):
        return SimpleNamespace(score=0.9, box=np.full(4, i, np.float32), landmarks=np.full((5, 2), i, np.float32))

    rows = _Rows(expected=4, dim=3, n_classes=2)
    rows.write(np.array([0, 1, 2]), [face(0), None, face(2)], np.ones((2, 3)), np.ones((2, 2)))
    rows.write(np.array([7, 9]), [face(7), face(9)], np.full((2, 3), 2.0), np.zeros((2, 2)))  # more than declared
    out = rows.arrays()
    assert len(out["has_face"]) == 10
    assert out["has_face"].tolist() == [True, False, True, False, False, False, False, True, False, True]
    assert np.isnan(out["embeddings"][[1, 3, 8]]).all() and out["embeddings"][9].tolist() == [2.0, 2.0, 2.0]
    assert out["boxes"][7].tolist() == [7.0] * 4

    fewer = _Rows(expected=100, dim=3, n_classes=0)  # a container that declares more frames than decode
    fewer.write(np.array([0, 1]), [face(0), face(1)], np.ones((2, 3)), np.ones((2, 0)))
    assert {key: len(a) for key, a in fewer.arrays().items()} == dict.fromkeys(out, 2)


def test_rows_allocate_for_the_frames_that_decode_not_a_declared_count():
    from mtclar.model.embeddings import _Rows

    rows = _Rows(expected=10**9, dim=256, n_classes=7)  # a hostile header: ~1 TB if believed
    assert len(rows.arrays()["embeddings"]) == 0
    assert rows._arrays["embeddings"].nbytes <= _Rows.FIRST_ALLOCATION * 256 * 4

