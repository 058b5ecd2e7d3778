import pytest

from mtclar.model.encoders.emonet import EmoNetEncoder
from mtclar.model.encoders.faceapi_expression import FaceExpressionEncoder
from mtclar.training.config import ConfigError
from mtclar.training.encoder_modes import configure_encoder


def _trainable(module) -> set[str]:
    return {name.split(".")[0] for name, p in module.named_parameters() if p.requires_grad}


def test_faceapi_modes():
    encoder = FaceExpressionEncoder()
    assert configure_encoder(encoder, "frozen") == [] and _trainable(encoder) == set()
    assert configure_encoder(encoder, "partial", blocks=2) == ["dense2", "dense3"]
    assert _trainable(encoder) == {"dense2", "dense3"}
    configure_encoder(encoder, "finetune")
    assert _trainable(encoder) == {"dense0", "dense1", "dense2", "dense3"}  # never fc, the classifier
    with pytest.raises(ConfigError, match="partial_blocks"):
        configure_encoder(encoder, "partial", blocks=5)
    with pytest.raises(ConfigError, match="unknown encoder mode"):
        configure_encoder(encoder, "half")


def test_emonet_modes_follow_the_paper():
    encoder = EmoNetEncoder()
    configure_encoder(encoder, "partial")  # the paper: alignment network frozen, emotion branch trained
    assert _trainable(encoder) == {"conv1x1_input_emo_2", "emo_net_2"}
    encoder.train()
    assert not encoder.conv1.training and not encoder.bn1.training  # frozen BatchNorm stays in eval
    assert encoder.emo_net_2.training
    configure_encoder(encoder, "finetune")
    assert "m0" in _trainable(encoder) and "emo_fc_2" not in _trainable(encoder)
    configure_encoder(encoder, "frozen")
    assert _trainable(encoder) == set()
