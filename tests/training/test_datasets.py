import logging

import numpy as np
import pytest
import torch

from mtclar.model.video import read_image
from mtclar.training.config import AugmentConfig
from mtclar.training.crops import CropCache, CropReader, canvas_size
from mtclar.training.datasets import FaceCrops, PairDataset, build_transform, label_arrays, load_items


def test_centre_of_the_cached_canvas_is_the_serving_crop(smoke_items, face_pipeline, stills):
    _, _, cache = smoke_items
    assert cache.canvas == canvas_size(112, 288 / 256) == 126
    ref = cache.image(stills / "0-f15-hao-ph.jpg")
    canvas = CropReader()(ref)
    assert canvas.shape == (126, 126, 3)
    _, serving = face_pipeline.face_in_image(read_image(stills / "0-f15-hao-ph.jpg"), 112)
    centre = canvas[7:119, 7:119].astype(int)
    assert np.abs(centre - serving.astype(int)).mean() < 2.0  # same geometry, up to resampling


def test_items_drop_faceless_rows_with_a_logged_count_and_reuse_the_cache(smoke_data, smoke_items, caplog,
                                                                          monkeypatch):
    train, val, cache = smoke_items
    assert len(train.items) == 30 and val.dropped_no_face == 2 and len(val.items) == 12
    summary = train.summary()
    assert summary["classes"] == {"anger": 1, "disgust": 1, "happy": 21, "neutral": 6, "surprise": 1}
    assert summary["with_va"] == 24 and summary["groups"] == 7

    def no_detection(*args, **kwargs):
        raise AssertionError("a cached image or video was detected again")

    monkeypatch.setattr(cache.pipeline, "face_in_image", no_detection)
    monkeypatch.setattr(cache.pipeline, "track_video", no_detection)
    with caplog.at_level(logging.WARNING):
        again = load_items(smoke_data["val"], cache, search=(str(smoke_data["videos"]),))
    assert [i.key for i in again.items] == [i.key for i in val.items]
    assert "dropped 2 of 14 labelled images/frames with no face found" in caplog.text


@pytest.mark.slow
def test_video_cache_grows_when_more_frames_are_asked_for(tmp_path, face_pipeline, videos):
    cache = CropCache(tmp_path, face_pipeline, 112, 126)
    first = cache.video([0, 10], videos / "single_face.mp4")
    assert sorted(first) == [0, 10]
    more = cache.video([10, 20, 30], videos / "single_face.mp4")
    assert sorted(more) == [10, 20, 30]
    reader = CropReader()
    np.testing.assert_array_equal(reader(first[10]), reader(more[10]))
    assert cache.video([0, 20], videos / "single_face.mp4").keys() == {0, 20}
    assert cache.video([5], videos / "no_face.mp4") == {}


def test_transforms_scale_the_paper_recipe_to_the_encoder():
    train = build_transform(112, AugmentConfig(), train=True)
    evaluate = build_transform(112, AugmentConfig(), train=False)
    image = torch.randint(0, 255, (3, 126, 126), dtype=torch.uint8)
    torch.manual_seed(0)
    a, b = train(image), train(image)
    assert a.shape == b.shape == (3, 112, 112) and a.dtype == torch.uint8
    assert not torch.equal(a, b)  # random affine / flip / crop
    torch.testing.assert_close(evaluate(image), image[:, 7:119, 7:119])
    names = [type(t).__name__ for t in train.transforms]
    assert names == ["Resize", "RandomAffine", "RandomHorizontalFlip", "RandomCrop"]
    affine = train.transforms[1]
    assert affine.degrees == [-20.0, 20.0] and affine.translate == (0.2, 0.2) and affine.scale == (0.8, 1.2)
    assert build_transform(256, AugmentConfig(), train=True).transforms[0].size == [288, 288]


def test_pair_dataset_items(smoke_items):
    train, _, _ = smoke_items
    classes, va = label_arrays(train.items)
    crops = FaceCrops(train.items, build_transform(112, AugmentConfig(), train=False))
    last = len(train.items) - 1  # video frames come first, stills last
    pairs = np.array([[last, last - 1, 0], [20, 3, 1]])
    data = PairDataset(crops, pairs, va)
    first, second = data[0], data[1]
    assert first["x1"].shape == (3, 112, 112) and first["similar"] == 0
    assert not first["known"]  # stills have no V/A
    assert second["known"] and second["delta"].tolist() == pytest.approx((va[20] - va[3]).tolist())


def test_afewva_and_affectnet_sources(tmp_path, face_pipeline, shared_dir, stills):
    cache = CropCache(tmp_path / "crops", face_pipeline, 112, 126)
    afewva = load_items(shared_dir / "data" / "afewva-sample", cache)
    assert len(afewva.items) == 6 and {i.group for i in afewva.items} == {"001"}
    assert {(i.valence, i.arousal) for i in afewva.items} == {(0.0, 0.5)}  # [-10, 10] / 10
    assert afewva.items[0].key == "001#0" and all(i.expression == -1 for i in afewva.items)

    (tmp_path / "images").mkdir()
    for name in ("0-f1-su-ph.jpg", "45-m7-di-ph.jpg"):
        (tmp_path / "images" / name).write_bytes((stills / name).read_bytes())
    csv_path = tmp_path / "training.csv"
    csv_path.write_text("subDirectory_filePath,expression,valence,arousal\n"
                        "images/0-f1-su-ph.jpg,3,0.2,0.8\n"
                        "images/45-m7-di-ph.jpg,5,-0.6,0.3\n"
                        "images/0-f1-su-ph.jpg,9,0,0\n")  # class 9 (uncertain) is dropped by the reader
    affectnet = load_items(csv_path, cache)
    assert [(i.expression, i.valence) for i in affectnet.items] == [(3, 0.2), (5, -0.6)]
