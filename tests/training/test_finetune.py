"""The project fine-tune API the backend's ``fit`` calls."""

from dataclasses import replace

import numpy as np
import pytest

import mtclar.training.finetune as finetune_module
from mtclar.model.checkpoint import load_checkpoint
from mtclar.model.errors import AnchorError
from mtclar.model.fewshot import LabelerConfig
from mtclar.model.labeling import VideoLabeler
from mtclar.training.finetune import FinetuneConfig, FinetuneResult, ProjectVideo, finetune_project, make_folds

pytestmark = pytest.mark.slow  # decodes real clips and trains heads

FAST = FinetuneConfig(steps=40, strategies=("kernel", "nearest-preceding"))


@pytest.fixture(scope="module")
def project(embedder, videos):
    single = embedder.embed_video(videos / "single_face.mp4")
    mixed = embedder.embed_video(videos / "face_noface.mov")
    return single, mixed


@pytest.fixture(scope="module")
def base():
    return load_checkpoint(None)


def test_too_few_anchors_with_a_face_raise_anchor_error(project, base):
    single, mixed = project
    with pytest.raises(AnchorError, match="at least 3 labelled frames with a face; got 2"):
        finetune_project(base, [ProjectVideo("single_face", single, {0: (0.0, 0.0), 30: (0.6, 0.4)})], (), FAST)
    # anchors on the cartoon part of face_noface have no face: they do not count
    cartoon = {100: (0.1, 0.1), 120: (0.2, 0.2), 140: (0.3, 0.3), 10: (0.0, 0.0)}
    with pytest.raises(AnchorError, match="got 1"):
        finetune_project(base, [ProjectVideo("face_noface", mixed, cartoon)], (), FAST)
    with pytest.raises(AnchorError, match="outside"):
        finetune_project(base, [ProjectVideo("single_face", single, {0: (0.0, 1.5), 3: (0, 0), 6: (0, 0)})], (), FAST)


def test_folds_partition_the_anchors_and_held_out_anchors_are_never_trained_on(project, base, monkeypatch,
                                                                               dev_anchors):
    single, mixed = project
    videos = [ProjectVideo("single_face", single, dev_anchors("single_face", 2)),
              ProjectVideo("face_noface", mixed, dev_anchors("face_noface", 3))]
    seen: list[set] = []
    train_heads = finetune_module.train_heads

    def spy(videos_, anchors, config, embed_dim, seed):
        seen.append({(a.video, a.frame) for a in anchors})
        return train_heads(videos_, anchors, config, embed_dim, seed)

    monkeypatch.setattr(finetune_module, "train_heads", spy)
    result = finetune_project(base, videos, (), replace(FAST, min_improvement=-1.0))
    collected = finetune_module.collect_anchors(videos, FAST.jitter_frames)
    folds = make_folds(collected, 5, FAST.seed)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(collected)))
    assert len(seen) == len(folds) + 1  # one fit per fold, then the final one on every anchor
    for held, trained in zip(folds, seen, strict=False):
        held_keys = {(collected[i].video, collected[i].frame) for i in held}
        assert not held_keys & trained
        assert len(held_keys) + len(trained) == len(collected)
    assert seen[-1] == {(a.video, a.frame) for a in collected}
    assert result.before["n"] == result.after["n"] == len(collected)


def test_returns_the_base_when_the_new_heads_do_not_win(project, base, dev_anchors, embedder):
    single, _ = project
    videos = [ProjectVideo("single_face", single, dev_anchors("single_face"))]
    classes = embedder.encoder.config.expression_classes
    with pytest.raises(ValueError, match="7 expression probabilities"):
        finetune_project(base, videos, ("neutral",), FAST)
    result = finetune_project(base, videos, classes, replace(FAST, steps=1, min_improvement=0.0))
    assert isinstance(result, FinetuneResult)
    assert not result.kept_new and result.checkpoint is base
    assert result.after["mean_rmse"] > result.before["mean_rmse"]  # one step: untrained heads lose
    result = finetune_project(base, videos, (), replace(FAST, min_improvement=10.0))
    assert not result.kept_new and result.checkpoint is base
    assert result.before["method"] == "kernel" and result.after["method"] == "mtclar"
    for metrics in (result.before, result.after):
        assert set(metrics["valence"]) == {"rmse", "pcc", "ccc", "sagr"} and metrics["n"] == 24
    table = result.table()
    assert "before" in table and "after" in table and "keeps the BASE model" in table


def test_kept_checkpoint_loads_and_labels_through_the_video_labeler(project, base, tmp_path, embedder, dev_anchors):
    single, mixed = project
    videos_ = [ProjectVideo("single_face", single, dev_anchors("single_face", 2)),
               ProjectVideo("face_noface", mixed, dev_anchors("face_noface", 2))]
    stages = []
    result = finetune_project(base, videos_, embedder.encoder.config.expression_classes,
                              replace(FAST, min_improvement=-1.0), lambda stage, fraction: stages.append(fraction))
    assert result.kept_new and result.checkpoint.name == "mtclar-faceapi-floor-4-ft1"
    assert stages[0] == 0.0 and stages[-1] == 1.0 and stages == sorted(stages)
    checkpoint = result.checkpoint
    assert checkpoint.heads_trained and checkpoint.heads.hidden == FAST.hidden
    assert checkpoint.labeler.method == "mtclar" and checkpoint.labeler.strategy == result.after["strategy"]
    assert checkpoint.trained_on["kind"] == "project-finetune" and checkpoint.trained_on["base"] == base.name
    assert checkpoint.trained_on["videos"]["single_face"]["anchors_with_face"] == 12
    assert checkpoint.metrics["validation"]["after"]["mean_rmse"] == pytest.approx(result.after["mean_rmse"])

    loaded = load_checkpoint(checkpoint.save(tmp_path / "ft"))
    labeler = VideoLabeler(loaded, encoder=embedder.encoder)
    assert labeler.labeler.method == "mtclar" and labeler.model_version == "mtclar-faceapi-floor-4-ft1"
    labels = labeler.label(single, {0: (0.0, 0.0), 36: (0.65, 0.4)})
    assert set(labels.predictor[single.has_face]) == {"anchor", "mtclar"}
    assert np.isfinite(labels.values[single.has_face]).all()

    again = finetune_project(loaded, videos_, (), replace(FAST, min_improvement=-1.0))
    assert again.checkpoint.name == "mtclar-faceapi-floor-4-ft2"
    assert again.before["method"] == "kernel" and "fine-tuned on this project's anchors" in again.before["note"]
    assert LabelerConfig.from_dict(again.checkpoint.trained_on["base_labeler"]) == base.labeler
    named = finetune_project(base, videos_, (), replace(FAST, min_improvement=-1.0), new_name="project-7-v3")
    assert named.checkpoint.name == "project-7-v3"


def test_scoring_on_the_needed_rows_only_gives_the_same_predictions(project, base, embedder, dev_anchors):
    single, mixed = project
    videos = [ProjectVideo("single_face", single, dev_anchors("single_face", 2)),
              ProjectVideo("face_noface", mixed, dev_anchors("face_noface", 3))]
    classes = embedder.encoder.config.expression_classes
    features = [finetune_module.FrameFeatures.of(v.embeddings, classes) for v in videos]
    collected = finetune_module.collect_anchors(videos, 0)
    held = make_folds(collected, 4, 0)[1]
    heads = finetune_module.train_heads(videos, collected, FAST, 256, 0)
    labelers = {"kernel": finetune_module.FewShotLabeler(base.labeler),
                "mtclar": finetune_module.FewShotLabeler(replace(base.labeler, method="mtclar"), heads, True)}
    for method, labeler in labelers.items():
        strategies = ("kernel", "time", "floor")  # the floor always sees the whole video
        fast = finetune_module._heldout(labeler, features, videos, collected, held, method, strategies)
        full = finetune_module._heldout(labeler, features, videos, collected, held, method, strategies,
                                        subset=False)
        for strategy in strategies:
            np.testing.assert_allclose(fast[strategy][0], full[strategy][0], atol=1e-6)
            assert fast[strategy][2] == full[strategy][2]
