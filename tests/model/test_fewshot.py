"""FewShotLabeler on hand-built frame features (4-d embeddings): every value below is checked by hand."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mtclar.model.baselines import hold_last_anchor, linear_interpolation
from mtclar.model.errors import AnchorError, CheckpointError
from mtclar.model.fewshot import (
    FewShotLabeler,
    FrameFeatures,
    KernelConfig,
    LabelerConfig,
    check_anchors,
)
from mtclar.model.siamese import HeadConfig, PairHeads, SLConfig, SupervisedHead

# temperature 1 and time scale 1 s keep the softmax weights easy to write down
HAND = KernelConfig(similarity_temperature=1.0, time_scale_s=1.0, prior_weight=(0.0, 0.0), novelty_weight=1.0,
                    time_weight=0.1, score_scale=0.2)
E = math.e
ROOT_HALF = 1 / math.sqrt(2)


def features(embeddings, times=None, has_face=None, probs=None, classes=()) -> FrameFeatures:
    embeddings = np.asarray(embeddings, dtype=np.float64)
    n = len(embeddings)
    has_face = np.ones(n, dtype=bool) if has_face is None else np.asarray(has_face, dtype=bool)
    embeddings = np.where(has_face[:, None], embeddings, np.nan)
    times = np.arange(n, dtype=np.float64) if times is None else np.asarray(times, dtype=np.float64)
    return FrameFeatures(embeddings, has_face, times, None if probs is None else np.asarray(probs, float),
                         tuple(classes))


def labeler(strategy="kernel", method="auto", kernel=HAND, **kwargs) -> FewShotLabeler:
    return FewShotLabeler(LabelerConfig(method=method, strategy=strategy, kernel=kernel), **kwargs)


# Six frames, one per second. Anchors: row 1 (A) and row 4 (B); queries 0 (before every anchor), 2, 3, 5.
#   row  embedding      cos to A, B     dt = t_q - t_a (A, B)
#   0    [1, 0, 0, 0]   1, 0            -1, -4
#   2    [1, 0, 0, 0]   1, 0             1, -2
#   3    [1, 1, 0, 0]   1/√2, 1/√2       2, -1
#   5    [0, 1, 0, 0]   0, 1             4,  1
TWO = features([[1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0]])
A, B = np.array([0.2, -0.4]), np.array([0.6, 0.0])
TWO_ANCHORS = {1: tuple(A), 4: tuple(B)}
QUERIES = [0, 2, 3, 5]


def mix(weight_a: float) -> np.ndarray:
    return weight_a * A + (1 - weight_a) * B


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# weight of A = softmax over two logits = sigmoid(logit_A - logit_B), per query row 0, 2, 3, 5
STRATEGY_WEIGHTS = {
    # 1/A each
    "mean": [0.5, 0.5, 0.5, 0.5],
    # 0: before every anchor -> the first (A); 2, 3: A precedes; 5: B is the closest preceding
    "nearest-preceding": [1.0, 1.0, 1.0, 0.0],
    # cos / 1: (1 - 0), (1 - 0), (1/√2 - 1/√2), (0 - 1)
    "similarity": [sigmoid(1), sigmoid(1), 0.5, sigmoid(-1)],
    # -|dt| / 1: (-1 + 4), (-1 + 2), (-2 + 1), (-4 + 1)
    "time": [sigmoid(3), sigmoid(1), sigmoid(-1), sigmoid(-3)],
    # cos - |dt|: (1 - 1) - (0 - 4) = 4; (1 - 1) - (0 - 2) = 2; (1/√2 - 2) - (1/√2 - 1) = -1; (0 - 4) - (1 - 1) = -4
    "kernel": [sigmoid(4), sigmoid(2), sigmoid(-1), sigmoid(-4)],
}


@pytest.mark.parametrize("strategy", sorted(STRATEGY_WEIGHTS))
def test_strategies_by_hand(strategy):
    out = labeler(strategy).label(TWO, TWO_ANCHORS, method="kernel")
    expected = np.stack([mix(w) for w in STRATEGY_WEIGHTS[strategy]])
    np.testing.assert_allclose(out.values[QUERIES], expected, atol=1e-12)
    assert list(out.source[QUERIES]) == ["predicted"] * 4
    assert list(out.predictor[QUERIES]) == ["kernel"] * 4


def test_strategy_is_taken_from_the_config_unless_given():
    lab = labeler("mean")
    np.testing.assert_allclose(lab.label(TWO, TWO_ANCHORS).values[3], mix(0.5))
    np.testing.assert_allclose(lab.label(TWO, TWO_ANCHORS, strategy="time").values[3], mix(sigmoid(-1)))


def test_anchors_keep_their_values_score_one_uncertainty_zero():
    out = labeler().label(TWO, TWO_ANCHORS)
    np.testing.assert_array_equal(out.values[[1, 4]], np.stack([A, B]))
    assert list(out.source[[1, 4]]) == ["anchor", "anchor"]
    assert list(out.predictor[[1, 4]]) == ["anchor", "anchor"]
    np.testing.assert_array_equal(out.uncertainty[[1, 4]], [0.0, 0.0])
    np.testing.assert_array_equal(out.score[[1, 4]], [1.0, 1.0])


def test_uncertainty_and_score_by_hand():
    out = labeler().label(TWO, TWO_ANCHORS, method="kernel")
    # row 3: kernel weight of A w = sigmoid(-1); estimates A and B differ by 0.4 in both dims:
    # spread = sqrt(w (1 - w)) * 0.4 (weighted sd, averaged over V and A)
    w = sigmoid(-1)
    spread = 0.4 * math.sqrt(w * (1 - w))
    novelty = 1 - ROOT_HALF  # 1 - max cosine similarity
    remoteness = 1 - math.exp(-1 / 1.0)  # nearest anchor 1 s away
    u = spread + 1.0 * novelty + 0.1 * remoteness
    assert out.uncertainty[3] == pytest.approx(u)
    assert out.score[3] == pytest.approx(math.exp(-u / 0.2))
    # row 2: same embedding as A -> novelty 0; w = sigmoid(2); nearest anchor 1 s away
    w2 = sigmoid(2)
    assert out.uncertainty[2] == pytest.approx(0.4 * math.sqrt(w2 * (1 - w2)) + 0.1 * remoteness)
    valid = np.isfinite(out.score)
    assert ((out.score[valid] > 0) & (out.score[valid] <= 1)).all()


def test_uncertainty_grows_when_anchor_estimates_disagree():
    agree = labeler().label(TWO, {1: tuple(A), 4: tuple(A)}, method="kernel")
    disagree = labeler().label(TWO, TWO_ANCHORS, method="kernel")
    # same geometry, so only the spread differs (zero when both anchors say the same)
    assert agree.uncertainty[3] == pytest.approx((1 - ROOT_HALF) + 0.1 * (1 - math.exp(-1)))
    assert disagree.uncertainty[3] > agree.uncertainty[3]
    assert disagree.score[3] < agree.score[3]


def test_uncertainty_grows_far_from_every_anchor_in_embedding_space():
    near = features([[1, 0, 0, 0], [1, 0, 0, 0]])
    far = features([[1, 0, 0, 0], [0, 0, 1, 0]])
    anchors = {0: (0.1, 0.1)}
    u_near = labeler().label(near, anchors).uncertainty[1]
    u_far = labeler().label(far, anchors).uncertainty[1]
    # one anchor: no spread; 1 s away: 0.1 * (1 - e^-1) each; novelty 0 vs 1 - cos 90° = 1
    assert u_near == pytest.approx(0.1 * (1 - 1 / E))
    assert u_far == pytest.approx(1.0 + 0.1 * (1 - 1 / E))


CLASSES = ("neutral", "happy", "sad")  # circumplex (0, 0), (0.8, 0.5), (-0.6, -0.4)


def test_kernel_class_prior_residual_by_hand():
    probs = [[1, 0, 0], [0, 1, 0], [0.5, 0, 0.5]]
    frames = features([[1, 0, 0, 0]] * 3, probs=probs, classes=CLASSES)
    lab = labeler(kernel=KernelConfig(prior_weight=(0.5, 0.2)))
    out = lab.label(frames, {0: (0.1, 0.2)}, method="kernel")
    # row 1: prior (0.8, 0.5) - anchor's (0, 0) -> (0.1 + 0.5 * 0.8, 0.2 + 0.2 * 0.5) = (0.5, 0.3)
    np.testing.assert_allclose(out.values[1], [0.5, 0.3])
    # row 2: prior 0.5 * (0, 0) + 0.5 * (-0.6, -0.4) = (-0.3, -0.2) -> (0.1 - 0.15, 0.2 - 0.04)
    np.testing.assert_allclose(out.values[2], [-0.05, 0.16])


def test_kernel_prior_is_relative_to_the_anchor_class():
    frames = features([[1, 0, 0, 0]] * 2, probs=[[0, 0, 1], [0, 1, 0]], classes=CLASSES)
    out = labeler(kernel=KernelConfig(prior_weight=(0.5, 0.2))).label(frames, {0: (0.1, 0.2)}, method="kernel")
    # sad anchor -> happy query: change (0.8 + 0.6, 0.5 + 0.4) = (1.4, 0.9) -> (0.1 + 0.7, 0.2 + 0.18)
    np.testing.assert_allclose(out.values[1], [0.8, 0.38])


def test_kernel_without_expression_classes_copies_the_anchor():
    frames = features([[1, 0, 0, 0]] * 2, probs=[[0, 0, 1], [0, 1, 0]], classes=())
    out = labeler(kernel=KernelConfig(prior_weight=(0.5, 0.2))).label(frames, {0: (0.1, 0.2)}, method="kernel")
    np.testing.assert_allclose(out.values[1], [0.1, 0.2])


def test_kernel_predictions_are_clipped():
    frames = features([[1, 0, 0, 0]] * 4, probs=[[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]], classes=CLASSES)
    lab = labeler(kernel=KernelConfig(prior_weight=(1.0, 1.0)))
    up = lab.label(frames, {0: (0.9, 0.9)}, method="kernel")
    # 0.9 + 0.8 = 1.7 and 0.9 + 0.5 = 1.4 -> 1; row 3: 0.9 - 0.6 = 0.3, 0.9 - 0.4 = 0.5
    np.testing.assert_allclose(up.values[1], [1.0, 1.0])
    np.testing.assert_allclose(up.values[3], [0.3, 0.5])
    down = lab.label(frames, {2: (-0.9, -0.9)}, method="kernel")
    # -0.9 - 0.6 = -1.5 and -0.9 - 0.4 = -1.3 -> -1
    np.testing.assert_allclose(down.values[3], [-1.0, -1.0])
    finite = np.isfinite(down.values)
    assert (np.abs(down.values[finite]) <= 1).all() and (np.abs(up.values[finite]) <= 1).all()


# -- MT-CLAR heads ----------------------------------------------------------------------------------


def linear_heads(valence_weight, arousal_weight) -> PairHeads:
    """No hidden layer: delta = 2 tanh(w . concat(query, anchor)) (dropout is off in eval)."""
    heads = PairHeads(HeadConfig(embed_dim=4, hidden=()))
    with torch.no_grad():
        for head, weight in ((heads.valence, valence_weight), (heads.arousal, arousal_weight)):
            head[-1].weight.copy_(torch.tensor([weight], dtype=torch.float32))
            head[-1].bias.zero_()
    return heads


def test_mtclar_adds_the_predicted_delta_to_the_anchor():
    # delta_v = 2 tanh(0.5 (q0 - a0)), delta_a = 2 tanh(-0.25 (q0 - a0)): raw embeddings, query first
    heads = linear_heads([0.5, 0, 0, 0, -0.5, 0, 0, 0], [-0.25, 0, 0, 0, 0.25, 0, 0, 0])
    frames = features([[0.5, 1, 0, 0], [1.5, 1, 0, 0]])
    lab = labeler(heads=heads, heads_trained=True)
    assert lab.method == "mtclar"
    out = lab.label(frames, {0: (0.0, 0.3)})
    # q0 - a0 = 1: (0 + 2 tanh(0.5), 0.3 + 2 tanh(-0.25)) = (0.9242, -0.1898); swapped order would flip signs
    np.testing.assert_allclose(out.values[1], [2 * math.tanh(0.5), 0.3 + 2 * math.tanh(-0.25)], rtol=1e-6)
    assert out.predictor[1] == "mtclar" and out.source[1] == "predicted"
    clipped = lab.label(frames, {0: (0.9, -0.9)})
    # 0.9 + 0.924 -> 1; -0.9 - 0.49 -> -1
    np.testing.assert_allclose(clipped.values[1], [1.0, -1.0])


def test_mtclar_combines_per_anchor_deltas_with_the_strategy(monkeypatch):
    lab = labeler("mean", heads=PairHeads(HeadConfig(embed_dim=4, hidden=(8,))), heads_trained=True)
    seen = {}

    def deltas(query, anchors):
        seen["shapes"] = query.shape, anchors.shape
        out = np.zeros((len(query), len(anchors), 2))
        out[..., 0] = [0.1, -0.1]  # valence: A's estimate + 0.1, B's - 0.1
        out[..., 1] = 0.2  # arousal: both + 0.2
        return out

    monkeypatch.setattr(lab, "_deltas", deltas)
    out = lab.label(TWO, TWO_ANCHORS)
    assert seen["shapes"] == ((4, 4), (2, 4))
    # mean of (0.2 + 0.1, -0.4 + 0.2) and (0.6 - 0.1, 0.0 + 0.2) = (0.4, 0.0)
    np.testing.assert_allclose(out.values[QUERIES], np.tile([0.4, 0.0], (4, 1)), atol=1e-12)
    # estimates (0.3, -0.2) and (0.5, 0.2) differ by (0.2, 0.4): spread at row 3 = (0.2 + 0.4) / 2 sqrt(w(1-w))
    w = sigmoid(-1)
    expected = 0.3 * math.sqrt(w * (1 - w)) + (1 - ROOT_HALF) + 0.1 * (1 - 1 / E)
    assert out.uncertainty[3] == pytest.approx(expected)


def test_deltas_batches_and_shapes():
    heads = PairHeads(HeadConfig(embed_dim=4, hidden=(8,)))
    with torch.no_grad():
        heads.valence[-1].weight.zero_()
        heads.valence[-1].bias.fill_(math.atanh(0.1))  # 2 tanh(atanh 0.1) = 0.2 whatever the input
        heads.arousal[-1].weight.zero_()
        heads.arousal[-1].bias.fill_(math.atanh(-0.05))  # -0.1
    lab = labeler(heads=heads, heads_trained=True)
    rng = np.random.default_rng(0)
    out = lab._deltas(rng.normal(size=(5, 4)), rng.normal(size=(3, 4)), batch=4)  # 15 pairs in 4 batches
    assert out.shape == (5, 3, 2)
    np.testing.assert_allclose(out[..., 0], 0.2, rtol=1e-6)
    np.testing.assert_allclose(out[..., 1], -0.1, rtol=1e-5)


def test_unknown_method_raises_even_when_only_time_is_known():
    no_face_anchor = features([[1, 0, 0, 0]] * 2, has_face=[False, True])
    for frames, anchors in ((TWO, TWO_ANCHORS), (no_face_anchor, {0: (0.1, 0.1)})):
        with pytest.raises(ValueError, match="unknown method 'magic'"):
            labeler().label(frames, anchors, method="magic")
    # "auto" is the config's default, also when asked for by name
    np.testing.assert_array_equal(labeler().label(TWO, TWO_ANCHORS, method="auto").values,
                                  labeler().label(TWO, TWO_ANCHORS, method="kernel").values)


def test_mtclar_without_heads_raises():
    with pytest.raises(CheckpointError, match="needs MT-CLAR heads trained"):
        labeler().label(TWO, TWO_ANCHORS, method="mtclar")
    untrained = labeler(heads=PairHeads(HeadConfig(embed_dim=4, hidden=(8,))), heads_trained=False)
    with pytest.raises(CheckpointError, match="needs MT-CLAR heads trained"):
        untrained.label(TWO, TWO_ANCHORS, method="mtclar")


def test_auto_method_follows_trained_heads():
    heads = PairHeads(HeadConfig(embed_dim=4, hidden=(8,)))
    assert labeler().method == "kernel"
    assert labeler(heads=heads, heads_trained=False).method == "kernel"
    assert labeler(heads=heads, heads_trained=True).method == "mtclar"
    assert labeler(method="hold-last", heads=heads, heads_trained=True).method == "hold-last"
    assert labeler(heads=None, heads_trained=True).method == "kernel"


# -- MT-CLAR + SL -----------------------------------------------------------------------------------


def constant_sl_head(valence: float, arousal: float) -> SupervisedHead:
    head = SupervisedHead(SLConfig(embed_dim=4, hidden=(), n_classes=0, regress_va=True))
    with torch.no_grad():
        head.va[-1].weight.zero_()
        head.va[-1].bias.copy_(torch.tensor([math.atanh(valence), math.atanh(arousal)]))
    return head


def test_no_anchors_uses_the_sl_head():
    frames = features([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], has_face=[True, False, True])
    out = labeler(sl_head=constant_sl_head(0.3, -0.2)).label(frames, {})
    np.testing.assert_allclose(out.values[[0, 2]], [[0.3, -0.2], [0.3, -0.2]], rtol=1e-6)
    assert list(out.predictor) == ["sl", "no_face", "sl"]
    # no anchors to compare with: uncertainty 1 -> score exp(-1 / 0.2)
    np.testing.assert_array_equal(out.uncertainty[[0, 2]], [1.0, 1.0])
    assert out.score[0] == pytest.approx(math.exp(-5))


def test_sl_method_with_anchors_keeps_the_anchors():
    frames = features([[1, 0, 0, 0], [0, 1, 0, 0]])
    out = labeler(sl_head=constant_sl_head(0.3, -0.2)).label(frames, {0: (0.9, 0.9)}, method="sl")
    np.testing.assert_allclose(out.values, [[0.9, 0.9], [0.3, -0.2]], rtol=1e-6)
    assert list(out.source) == ["anchor", "predicted"]
    assert list(out.predictor) == ["anchor", "sl"]


def test_sl_method_needs_a_va_head():
    classes_only = SupervisedHead(SLConfig(embed_dim=4, hidden=(), n_classes=3, regress_va=False))
    with pytest.raises(CheckpointError, match="trained on V/A"):
        labeler(sl_head=classes_only).label(features([[1, 0, 0, 0]]), {}, method="sl")


def test_no_anchors_without_sl_head_raises():
    with pytest.raises(AnchorError, match="no anchors"):
        labeler().label(TWO, {})


def test_no_anchors_and_no_face_is_not_an_error():
    out = labeler().label(features([[1, 0, 0, 0]] * 3, has_face=[False] * 3), {})
    assert list(out.source) == ["no_face"] * 3 and np.isnan(out.values).all()


# -- faces, baselines -------------------------------------------------------------------------------


def test_no_face_frames_get_nan_and_say_so():
    frames = features([[1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0]], has_face=[True, False, True, False])
    out = labeler().label(frames, {0: (0.5, 0.5)})
    for row in (1, 3):
        assert out.source[row] == "no_face" and out.predictor[row] == "no_face"
        assert np.isnan([out.valence[row], out.arousal[row], out.uncertainty[row], out.score[row]]).all()
    assert out.source[2] == "predicted" and np.isfinite(out.values[2]).all()


def test_anchors_only_on_no_face_frames_fall_back_to_interpolation():
    frames = features([[1, 0, 0, 0]] * 4, has_face=[False, True, True, False])
    out = labeler().label(frames, {0: (0.0, 0.0), 3: (0.3, 0.6)})
    # linear in time between frames 0 and 3: 1/3 and 2/3 of the way
    np.testing.assert_allclose(out.values[[1, 2]], [[0.1, 0.2], [0.2, 0.4]])
    assert list(out.predictor) == ["anchor", "interpolation", "interpolation", "anchor"]
    assert list(out.source) == ["anchor", "predicted", "predicted", "anchor"]
    # only time is known: 0.1 * (1 - exp(-1 s / 1 s))
    np.testing.assert_allclose(out.uncertainty[[1, 2]], 0.1 * (1 - 1 / E))


def test_face_anchors_are_preferred_over_no_face_anchors():
    frames = features([[1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]], has_face=[False, True, True])
    out = labeler().label(frames, {0: (-0.9, -0.9), 1: (0.5, 0.5)}, method="kernel")
    # the no-face anchor has no embedding: only anchor 1 is used
    np.testing.assert_allclose(out.values[2], [0.5, 0.5])


@pytest.mark.parametrize(("method", "baseline"), [("interpolation", linear_interpolation),
                                                  ("hold-last", hold_last_anchor)])
def test_baseline_methods(method, baseline):
    out = labeler().label(TWO, TWO_ANCHORS, method=method)
    expected = baseline(np.array(QUERIES), np.array([1, 4]), np.stack([A, B]))
    np.testing.assert_allclose(out.values[QUERIES], expected)
    assert list(out.predictor[QUERIES]) == [method] * 4
    # uncertainty from the time to the nearest anchor only: 1 s for rows 0, 2, 3, 5
    np.testing.assert_allclose(out.uncertainty[QUERIES], 0.1 * (1 - 1 / E))


def test_interpolation_by_hand():
    out = labeler().label(TWO, TWO_ANCHORS, method="interpolation")
    # row 2 is 1/3 of the way from row 1 to row 4: A + (B - A) / 3; before A: A; after B: B
    np.testing.assert_allclose(out.values[2], A + (B - A) / 3)
    np.testing.assert_allclose(out.values[0], A)
    np.testing.assert_allclose(out.values[5], B)


def test_frame_features_from_video_embeddings():
    video = SimpleNamespace(embeddings=np.zeros((2, 4)), has_face=np.ones(2, bool), time_s=np.arange(2.0),
                            expression_probs=np.zeros((2, 0)))
    assert FrameFeatures.of(video).expression_probs is None
    video.expression_probs = np.full((2, 3), 1 / 3)
    f = FrameFeatures.of(video, CLASSES)
    assert f.n == 2 and f.expression_probs.shape == (2, 3) and f.expression_classes == CLASSES


# -- anchors and config -----------------------------------------------------------------------------


def test_check_anchors_sorts():
    frames, values = check_anchors({4: (0.1, 0.2), 1: (-1, 1)}, 5)
    assert frames.tolist() == [1, 4]
    np.testing.assert_array_equal(values, [[-1, 1], [0.1, 0.2]])
    frames, values = check_anchors({}, 5)
    assert frames.shape == (0,) and values.shape == (0, 2)


@pytest.mark.parametrize(("anchors", "message"), [
    ({6: (0.0, 0.0)}, "anchor frame 6 is outside the video (0..5)"),
    ({-1: (0.0, 0.0)}, "anchor frame -1 is outside the video"),
    ({2: (float("nan"), 0.0)}, "anchor frame 2 has a non-finite value"),
    ({3: (0.0, float("inf"))}, "anchor frame 3 has a non-finite value"),
    ({4: (1.5, 0.0)}, "anchor frame 4 has a value outside [-1, 1]"),
    ({5: (0.0, -1.01)}, "anchor frame 5 has a value outside [-1, 1]"),
])
def test_bad_anchors_name_the_frame(anchors, message):
    with pytest.raises(AnchorError) as error:
        check_anchors(anchors, 6, where="clip.mp4: ")
    assert str(error.value).startswith(f"clip.mp4: {message}")
    with pytest.raises(AnchorError, match="anchor frame"):
        labeler().label(TWO, anchors)


def test_labeler_config_validates_and_round_trips():
    with pytest.raises(ValueError, match="unknown method 'magic'"):
        LabelerConfig(method="magic")
    with pytest.raises(ValueError, match="unknown strategy 'vote'"):
        LabelerConfig(strategy="vote")
    config = LabelerConfig(method="kernel", strategy="time", kernel=KernelConfig(prior_weight=(0.8, 0.3)))
    data = config.to_dict()
    assert data["kernel"]["prior_weight"] == (0.8, 0.3)
    data["kernel"]["prior_weight"] = [0.8, 0.3]  # as read back from JSON
    assert LabelerConfig.from_dict(data) == config
    with pytest.raises(ValueError, match="labeler.kernel: unknown key"):
        LabelerConfig.from_dict({"kernel": {"temperature": 1}})
