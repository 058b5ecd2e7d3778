"""The PyTorch FaceExpressionNet against the original face-api (JS) run, and its converted weights.

tests/data/faceapi_reference/ holds 112x112 face crops cut from ../shared/data/stills
(scripts/make_faceapi_reference_crops.py) and reference.json, face-api 1.7.15 / tfjs 4.22.0 outputs
for them (scripts/faceapi_reference/make_reference.mjs, original TF.js weights, tfjs 'cpu' backend).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mtclar.model.encoders import create_encoder
from mtclar.model.encoders.faceapi_expression import (
    DEFAULT_WEIGHTS,
    FaceExpressionEncoder,
    build_faceapi_expression,
)
from mtclar.model.errors import WeightsError

REPO = Path(__file__).resolve().parents[2]
REFERENCE_DIR = REPO / "tests" / "data" / "faceapi_reference"
TOLERANCE = 1e-4


def shared_dir() -> Path:
    return (REPO / ".." / "shared").resolve()


@pytest.fixture(scope="module")
def encoder() -> FaceExpressionEncoder:
    return build_faceapi_expression()


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads((REFERENCE_DIR / "reference.json").read_text())


@pytest.fixture(scope="module")
def crops(reference: dict) -> np.ndarray:
    images = []
    for crop in reference["crops"]:
        bgr = cv2.imread(str(REFERENCE_DIR / crop["file"]), cv2.IMREAD_COLOR)
        assert bgr is not None, f"cannot read {crop['file']}"
        images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return np.stack(images)


@pytest.fixture(scope="module")
def outputs(encoder: FaceExpressionEncoder, crops: np.ndarray) -> dict[str, np.ndarray]:
    with torch.no_grad():
        out = encoder.forward_features(encoder.preprocess(crops))
    logits = out["expression_logits"]
    return {
        "logits": logits.numpy(),
        "probabilities": logits.softmax(dim=1).numpy(),
        "embedding": out["embedding"].numpy(),
    }


def test_reference_covers_the_stills(reference: dict) -> None:
    assert reference["face_api_version"] == "1.7.15"
    assert reference["tfjs_version"] == "4.22.0"
    assert reference["labels"] == list(FaceExpressionEncoder.config.expression_classes)
    files = {crop["file"] for crop in reference["crops"]}
    assert {"su.png", "hao.png", "anc.png", "di.png", "single_face.png"} <= files
    assert any(f.startswith("multi_face") for f in files)
    assert len(files) >= 6


@pytest.mark.parametrize("key", ["logits", "embedding", "probabilities"])
def test_parity_with_faceapi_js(
    key: str, reference: dict, outputs: dict[str, np.ndarray], record_property
) -> None:
    expected = np.array([crop[key] for crop in reference["crops"]], dtype=np.float64)
    diff = np.abs(outputs[key].astype(np.float64) - expected)
    worst = reference["crops"][int(diff.max(axis=1).argmax())]["file"]
    print(f"{key}: max abs diff {diff.max():.3g} over {len(expected)} crops (worst {worst})")
    record_property(f"max_abs_diff_{key}", float(diff.max()))
    assert diff.max() <= TOLERANCE, f"{key} differs from face-api by {diff.max():.3g} on {worst}"


def test_top_expressions_agree_and_are_plausible(reference: dict, outputs: dict[str, np.ndarray]) -> None:
    labels = reference["labels"]
    top = outputs["logits"].argmax(axis=1)
    ours = {crop["file"]: labels[i] for crop, i in zip(reference["crops"], top, strict=True)}
    for crop in reference["crops"]:
        assert ours[crop["file"]] == crop["top"], crop["file"]
    # the posed stills whose expression face-api gets right must stay right
    for file, expression in {"hao.png": "happy", "su.png": "surprised"}.items():
        if next(c["top"] for c in reference["crops"] if c["file"] == file) == expression:
            assert ours[file] == expression


def test_bgr_input_fails_parity(encoder: FaceExpressionEncoder, crops: np.ndarray, reference: dict) -> None:
    """The parity check has teeth: a channel-order mistake is caught by orders of magnitude."""
    expected = np.array([crop["logits"] for crop in reference["crops"]])
    with torch.no_grad():
        logits = encoder.forward_features(encoder.preprocess(crops[..., ::-1].copy()))["expression_logits"]
    assert np.abs(logits.numpy() - expected).max() > 100 * TOLERANCE


def test_committed_weights_match_a_fresh_conversion(tmp_path: Path) -> None:
    source = shared_dir() / "data" / "weights" / "faceapi"
    if not source.is_dir():
        pytest.skip(f"no shared weights at {source}")
    out = tmp_path / "fresh.safetensors"
    script = REPO / "scripts" / "convert_faceapi_weights.py"
    cmd = [sys.executable, str(script), "--source", str(source), "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    assert out.read_bytes() == DEFAULT_WEIGHTS.read_bytes(), (
        f"{DEFAULT_WEIGHTS} is stale: rerun scripts/convert_faceapi_weights.py"
    )


def test_registered_encoder(encoder: FaceExpressionEncoder, crops: np.ndarray) -> None:
    model = create_encoder("faceapi-expression")
    assert isinstance(model, FaceExpressionEncoder)
    assert not model.training
    expected_id = hashlib.sha256(DEFAULT_WEIGHTS.read_bytes()).hexdigest()[:16]
    assert model.weights_id == expected_id
    assert (model.name, model.input_size, model.embed_dim) == ("faceapi-expression", 112, 256)

    x = model.preprocess(crops[:3]).requires_grad_(True)
    assert x.shape == (3, 3, 112, 112) and x.dtype == torch.float32
    out = model.forward_features(x)
    assert out["embedding"].shape == (3, 256)
    assert out["expression_logits"].shape == (3, 7)
    assert torch.isfinite(out["embedding"]).all() and torch.isfinite(out["expression_logits"]).all()
    assert torch.equal(model(x), out["embedding"])

    (out["embedding"].sum() + out["expression_logits"].sum()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name

    single = model.preprocess(crops[0])  # one (S, S, 3) crop
    assert single.shape == (1, 3, 112, 112)
    with pytest.raises(ValueError, match="112x112"):
        model.preprocess(np.zeros((1, 64, 64, 3), dtype=np.uint8))


def test_batch_independence(encoder: FaceExpressionEncoder, crops: np.ndarray) -> None:
    with torch.no_grad():
        batch = encoder(encoder.preprocess(crops))
        one = encoder(encoder.preprocess(crops[4:5]))
    torch.testing.assert_close(batch[4:5], one, atol=1e-5, rtol=1e-5)


def test_missing_weights_raise_a_helpful_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(WeightsError, match="convert_faceapi_weights.py") as err:
        build_faceapi_expression(missing)
    assert str(missing) in str(err.value)


def test_corrupt_weights_raise_weights_error(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="convert_faceapi_weights.py") as err:
        build_faceapi_expression(corrupt)
    assert str(corrupt) in str(err.value)


def test_weights_of_another_architecture_raise_weights_error(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    wrong = tmp_path / "wrong.safetensors"
    save_file({"fc.weight": torch.zeros(8, 256), "fc.bias": torch.zeros(8)}, str(wrong))
    with pytest.raises(WeightsError, match="architecture"):
        build_faceapi_expression(wrong)
