import math

import pytest
import torch
from torch import nn

from mtclar.model.encoders import create_encoder
from mtclar.model.siamese import MTCLAR, HeadConfig, PairHeads, SLConfig, SupervisedHead, fuse, projector


def layer_summary(sequential: nn.Sequential) -> list[tuple]:
    out = []
    for layer in sequential:
        if isinstance(layer, nn.Linear):
            out.append(("Linear", layer.in_features, layer.out_features))
        elif isinstance(layer, nn.BatchNorm1d):
            out.append(("BN", layer.num_features))
        elif isinstance(layer, nn.Dropout):
            out.append(("Dropout", layer.p))
        else:
            out.append((type(layer).__name__,))
    return out


def paper_projector(out: int) -> list[tuple]:
    """Dropout -> Linear(512,2048) -> BN -> ReLU -> Dropout -> Linear(2048,1024) -> BN -> ReLU -> Dropout ->
    Linear(1024,512) -> BN -> ReLU -> Dropout -> Linear(512,128) -> BN -> ReLU -> Dropout -> Linear(128,out)."""
    layers: list[tuple] = [("Dropout", 0.5)]
    for a, b in ((512, 2048), (2048, 1024), (1024, 512), (512, 128)):
        layers += [("Linear", a, b), ("BN", b), ("ReLU",), ("Dropout", 0.5)]
    return [*layers, ("Linear", 128, out)]


def test_projectors_are_the_papers_for_concat_fusion():
    heads = PairHeads(HeadConfig())
    assert layer_summary(heads.similarity) == paper_projector(2)
    assert layer_summary(heads.valence) == paper_projector(1)
    assert layer_summary(heads.arousal) == paper_projector(1)


def test_pair_heads_outputs():
    heads = PairHeads().eval()
    e1, e2 = torch.randn(5, 256), torch.randn(5, 256)
    out = heads(e1, e2)
    assert set(out) == {"similarity_logits", "delta_valence", "delta_arousal"}
    assert out["similarity_logits"].shape == (5, 2)
    assert out["delta_valence"].shape == (5,) and out["delta_arousal"].shape == (5,)
    for name in ("delta_valence", "delta_arousal"):
        assert (out[name].abs() < 2).all()


def test_deltas_are_two_tanh():
    heads = PairHeads(HeadConfig(embed_dim=4, hidden=())).eval()
    with torch.no_grad():
        heads.valence[-1].weight.zero_()
        heads.valence[-1].bias.fill_(0.5)
        heads.arousal[-1].weight.fill_(10.0)
    out = heads(torch.ones(3, 4), torch.ones(3, 4))
    torch.testing.assert_close(out["delta_valence"], torch.full((3,), 2 * math.tanh(0.5)))
    # a huge pre-activation saturates towards 2 but never beyond
    assert (out["delta_arousal"] <= 2).all() and (out["delta_arousal"] > 1.99).all()


@pytest.mark.parametrize(("fusion", "in_dim"), [("concat", 512), ("absdiff", 256), ("product", 256)])
def test_fusion_input_dims(fusion, in_dim):
    config = HeadConfig(fusion=fusion)
    assert config.pair_dim == in_dim
    heads = PairHeads(config).eval()
    for head in (heads.similarity, heads.valence, heads.arousal):
        assert head[1].in_features == in_dim
    assert heads(torch.randn(2, 256), torch.randn(2, 256))["similarity_logits"].shape == (2, 2)


def test_fuse_by_hand():
    a, b = torch.tensor([[1.0, -2.0]]), torch.tensor([[3.0, 4.0]])
    torch.testing.assert_close(fuse(a, b, "concat"), torch.tensor([[1.0, -2.0, 3.0, 4.0]]))
    torch.testing.assert_close(fuse(a, b, "absdiff"), torch.tensor([[2.0, 6.0]]))
    torch.testing.assert_close(fuse(a, b, "product"), torch.tensor([[3.0, -8.0]]))
    with pytest.raises(ValueError, match="unknown fusion 'sum'"):
        fuse(a, b, "sum")


def test_head_config_rejects_an_unknown_fusion():
    with pytest.raises(ValueError, match="unknown fusion 'sum'; choose one of concat, absdiff, product"):
        HeadConfig(fusion="sum")


def test_head_config_round_trip():
    config = HeadConfig(embed_dim=4, fusion="product", hidden=(8, 4), dropout=0.1)
    assert config.to_dict()["hidden"] == [8, 4]
    assert HeadConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="heads: unknown key"):
        HeadConfig.from_dict({"width": 3})


def test_xavier_uniform_init_and_zero_biases():
    torch.manual_seed(0)
    seq = projector(512, (2048, 1024), 1, 0.5)
    linears = [m for m in seq if isinstance(m, nn.Linear)]
    assert len(linears) == 3
    for layer in linears:
        assert torch.count_nonzero(layer.bias) == 0
        bound = math.sqrt(6 / (layer.in_features + layer.out_features))
        assert layer.weight.abs().max() <= bound
        if layer.weight.numel() > 1000:  # uniform(-b, b) has sd b / sqrt(3)
            assert layer.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)


def test_mtclar_with_the_faceapi_encoder_trains_end_to_end():
    torch.manual_seed(0)
    encoder = create_encoder("faceapi-expression")  # a fresh one: the session fixture must not change
    model = MTCLAR(encoder, PairHeads(HeadConfig(hidden=(64, 32)))).train()
    x1, x2 = torch.randn(2, 3, 112, 112), torch.randn(2, 3, 112, 112)
    out = model(x1, x2)
    assert set(out) == {"similarity_logits", "delta_valence", "delta_arousal", "embedding1", "embedding2"}
    assert out["embedding1"].shape == (2, 256) and out["embedding2"].shape == (2, 256)
    assert out["similarity_logits"].shape == (2, 2) and out["delta_valence"].shape == (2,)
    assert all(torch.isfinite(v).all() for v in out.values())
    loss = (nn.functional.cross_entropy(out["similarity_logits"], torch.tensor([0, 1]))
            + out["delta_valence"].pow(2).mean() + out["delta_arousal"].pow(2).mean()
            + (1 - nn.functional.cosine_similarity(out["embedding1"], out["embedding2"])).mean())
    loss.backward()
    for name, module in (("similarity", model.heads.similarity), ("valence", model.heads.valence),
                         ("arousal", model.heads.arousal)):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads), name
    # every encoder weight up to the embedding (its expression classifier fc is not on the path)
    no_grad = [n for n, p in model.encoder.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == ["fc.weight", "fc.bias"]
    # the first image of the pair goes through the same encoder as the second
    with torch.no_grad():
        model.eval()
        same = model(x1, x1)
        torch.testing.assert_close(same["embedding1"], same["embedding2"])
        torch.testing.assert_close(same["embedding1"], encoder(x1))


def test_mtclar_refuses_heads_of_another_width(encoder):
    with pytest.raises(ValueError, match="heads expect 128-d embeddings, faceapi-expression gives 256"):
        MTCLAR(encoder, PairHeads(HeadConfig(embed_dim=128, hidden=(8,))))


def test_supervised_head_outputs():
    head = SupervisedHead(SLConfig(embed_dim=256, n_classes=8, regress_va=True)).eval()
    assert layer_summary(head.va)[1::4] == [("Linear", 256, 1024), ("Linear", 1024, 512), ("Linear", 512, 256),
                                            ("Linear", 256, 128), ("Linear", 128, 2)]
    out = head(torch.randn(4, 256) * 10)
    assert set(out) == {"class_logits", "valence", "arousal"}
    assert out["class_logits"].shape == (4, 8)
    assert out["valence"].shape == (4,) and out["arousal"].shape == (4,)
    assert (out["valence"].abs() <= 1).all() and (out["arousal"].abs() <= 1).all()
    assert set(SupervisedHead(SLConfig(n_classes=8, regress_va=False)).eval()(torch.randn(2, 256))) == {
        "class_logits"}
    assert set(SupervisedHead(SLConfig(n_classes=0)).eval()(torch.randn(2, 256))) == {"valence", "arousal"}
    with pytest.raises(ValueError, match="needs classes, V/A or both"):
        SupervisedHead(SLConfig(n_classes=0, regress_va=False))
    assert SLConfig.from_dict(SLConfig(hidden=(8,)).to_dict()) == SLConfig(hidden=(8,))
