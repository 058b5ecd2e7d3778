"""The device, precision and execution-provider choices (CPU), and the CUDA paths themselves (marked gpu:
they skip where ``torch.cuda.is_available()`` is false, as in CI)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from mtclar.model import device as device_module
from mtclar.model.device import autocast, onnx_providers, resolve_precision
from mtclar.model.embeddings import EmbeddingCache, VideoEmbedder, encode_crops
from mtclar.model.errors import ConfigError
from mtclar.model.face import FacePipeline
from mtclar.model.face.detector import RetinaFaceDetector
from mtclar.model.video import content_id, iter_frames
from mtclar.settings import Settings

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="torch.cuda.is_available() is false: no CUDA device here")
needs_ort_cuda = pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers(),
                                    reason="this onnxruntime has no CUDAExecutionProvider (onnxruntime-gpu)")


@pytest.fixture
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(device_module, "_warned", set())


def test_providers_follow_the_device_and_the_installed_wheel(monkeypatch, fresh_warnings, caplog):
    gpu_wheel = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: gpu_wheel)
    assert onnx_providers("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert onnx_providers(torch.device("cuda", 1)) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert onnx_providers("cpu") == ["CPUExecutionProvider"]  # a CPU run stays on CPU even with the GPU wheel
    assert not caplog.records

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["AzureExecutionProvider", "CPUExecutionProvider"])
    with caplog.at_level(logging.WARNING, logger="mtclar.model.device"):
        assert onnx_providers("cuda") == ["CPUExecutionProvider"]
        assert onnx_providers("cuda:0") == ["CPUExecutionProvider"]
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1, "the CPU fallback is said once per process"
    assert "detector runs on CPU while the encoder runs on cuda" in said[0] and "onnxruntime-gpu" in said[0]


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="the GPU wheel is installed")
def test_a_cuda_detector_without_the_gpu_wheel_runs_on_cpu_and_says_so(fresh_warnings):
    detector = RetinaFaceDetector(device="cuda")
    assert detector.providers == ["CPUExecutionProvider"] and detector.provider == "CPUExecutionProvider"
    assert RetinaFaceDetector().providers == ["CPUExecutionProvider"]


def test_a_cuda_provider_that_does_not_start_is_recorded_as_cpu(monkeypatch, caplog):
    """ONNX Runtime falls back to CPU when the CUDA provider cannot start (here: a CPU-only wheel; in an image:
    missing CUDA/cuDNN libraries): ``providers`` says what really serves, and the log says why."""
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("the GPU wheel is installed")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with caplog.at_level(logging.WARNING, logger="mtclar.model.face.detector"), \
            pytest.warns(UserWarning, match="'CUDAExecutionProvider' is not in available provider names"):
        detector = RetinaFaceDetector(device="cuda:0")
    assert detector.providers == ["CPUExecutionProvider"]
    assert "could not start its CUDA provider" in caplog.text
    frame = np.zeros((1, 64, 64, 3), dtype=np.uint8)
    assert detector.detect(frame) == [[]]


def test_the_detector_model_takes_a_batch(videos):
    detector = RetinaFaceDetector()
    batch_dim = detector.session.get_inputs()[0].shape[0]
    assert isinstance(batch_dim, str), f"the ONNX input's batch dimension is fixed at {batch_dim}"
    frames = np.concatenate([b.frames for b in iter_frames(videos / "single_face.mp4", 8)])[:5]
    one_by_one = [detector.detect(frame)[0] for frame in frames]
    for alone, batched in zip(one_by_one, detector.detect(frames), strict=True):
        assert len(alone) == len(batched) == 1
        np.testing.assert_allclose(alone[0].box, batched[0].box, atol=0.01)


def test_precision_resolves_per_device(fresh_warnings, caplog):
    assert resolve_precision("auto", "cuda") == "fp16"
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("fp32", "cuda:1") == "fp32"
    with caplog.at_level(logging.WARNING, logger="mtclar.model.device"):
        assert resolve_precision("fp16", "cpu") == "fp32"
    assert "CUDA only" in caplog.text
    with pytest.raises(ConfigError, match="'bf16'"):
        resolve_precision("bf16", "cuda")
    assert autocast("cpu", "fp16").__class__.__name__ == "nullcontext"
    assert autocast("cuda", "fp32").__class__.__name__ == "nullcontext"


@pytest.mark.parametrize(("variable", "raw", "expected"), [
    ("MTCLAR_PRECISION", "fp8", "MTCLAR_PRECISION='fp8' is not one of auto, fp32, fp16"),
    ("MTCLAR_PRECISION", "FP16", "MTCLAR_PRECISION='FP16'"),
    ("MTCLAR_BATCH_SIZE", "0", "MTCLAR_BATCH_SIZE=0 must be > 0"),
    ("MTCLAR_BATCH_SIZE", "many", "MTCLAR_BATCH_SIZE='many' is not a whole number"),
])
def test_bad_precision_and_batch_size_name_the_variable(variable, raw, expected):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({variable: raw})
    assert expected in str(error.value)


def test_reading_the_settings_imports_no_torch():
    done = subprocess.run([sys.executable, "-c", "import sys, mtclar.settings; "
                           "print(sorted({'torch', 'onnxruntime'} & set(sys.modules)))"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_serve_takes_the_precision_over_the_environment():
    import argparse

    from mtclar.commands import serve

    settings = Settings.from_env({"MTCLAR_PRECISION": "fp16"})
    parser = argparse.ArgumentParser()
    serve.add_parser(parser.add_subparsers(), settings)
    assert serve.config_from(parser.parse_args(["serve"]), settings).precision == "fp16"
    assert serve.config_from(parser.parse_args(["serve", "--precision", "fp32"]), settings).precision == "fp32"
    assert serve.config_from(parser.parse_args(["serve"]), settings).environment()["MTCLAR_PRECISION"] == "fp16"


def test_precision_and_batch_size_settings_reach_the_cli_options():
    import argparse

    from mtclar.commands.common import add_model_options

    settings = Settings.from_env({"MTCLAR_PRECISION": "fp32", "MTCLAR_BATCH_SIZE": "48", "MTCLAR_DEVICE": "cuda"})
    parser = argparse.ArgumentParser()
    add_model_options(parser, settings)
    args = parser.parse_args([])
    assert (args.precision, args.batch_size, args.device) == ("fp32", 48, "cuda")
    assert parser.parse_args(["--precision", "fp16"]).precision == "fp16"
    for bad in (["--precision", "half"], ["--batch-size", "0"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
    assert "MTCLAR_PRECISION" in settings.environment()


def test_fp16_asked_on_cpu_encodes_exactly_as_fp32_and_caches_apart(encoder, face_pipeline, videos, tmp_path,
                                                                     fresh_warnings):
    crops = _crops(face_pipeline, encoder, videos, 6)
    fp32 = encode_crops(encoder, crops, 4, "fp32")
    fp16 = encode_crops(encoder, crops, 4, "fp16")  # CPU: fp16 applies to CUDA only
    np.testing.assert_array_equal(fp16[0], fp32[0])
    assert fp32[0].dtype == np.float32 and fp32[0].shape == (len(crops), encoder.embed_dim)
    cache = EmbeddingCache(tmp_path)
    video = content_id(videos / "single_face.mp4")
    assert cache.path_for(video, encoder, face_pipeline, "fp16") != cache.path_for(video, encoder, face_pipeline)
    assert VideoEmbedder(face_pipeline, encoder, cache, precision="auto").precision == "fp32"


@pytest.mark.skipif(CUDA, reason="CUDA is here: the benchmark would run")
def test_the_throughput_benchmark_asked_for_cuda_without_it_says_so_in_one_line():
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "throughput.py"
    done = subprocess.run([sys.executable, str(script), "--device", "cuda"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "torch sees no CUDA device" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def _crops(pipeline: FacePipeline, encoder, videos, n: int) -> np.ndarray:
    crops = np.concatenate([b.crops for b in pipeline.track_video(videos / "single_face.mp4", encoder.input_size, 8)])
    assert len(crops) >= n
    return crops[np.linspace(0, len(crops) - 1, n).astype(int)]


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = np.maximum(a[:2], b[:2])
    x2, y2 = np.minimum(a[2:], b[2:])
    inter = max(x2 - x1, 0) * max(y2 - y1, 0)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / area)


@pytest.mark.gpu
@needs_cuda
def test_encoder_under_fp16_autocast_matches_fp32(face_pipeline, videos):
    from mtclar.model.encoders import create_encoder

    gpu = create_encoder("faceapi-expression", device="cuda").eval()
    crops = _crops(face_pipeline, gpu, videos, 32)
    emb32, probs32 = encode_crops(gpu, crops, 16, "fp32")
    emb16, probs16 = encode_crops(gpu, crops, 16, "fp16")
    assert emb16.dtype == np.float32 and np.isfinite(emb16).all()
    assert _cosine(emb16, emb32).min() > 0.99
    np.testing.assert_allclose(probs16, probs32, atol=0.02)
    cpu = create_encoder("faceapi-expression", device="cpu").eval()
    assert _cosine(encode_crops(cpu, crops, 16)[0], emb32).min() > 0.999


@pytest.mark.gpu
@needs_cuda
@needs_ort_cuda
def test_detector_on_the_cuda_provider_finds_the_cpu_boxes(videos):
    frames = np.concatenate([b.frames for b in iter_frames(videos / "single_face.mp4", 8)])[:16]
    gpu, cpu = RetinaFaceDetector(device="cuda"), RetinaFaceDetector(device="cpu")
    assert gpu.provider == "CUDAExecutionProvider"
    found_gpu, found_cpu = gpu.detect(frames), cpu.detect(frames)  # one batch of 16
    assert sum(map(len, found_cpu)) >= 16
    for on_gpu, on_cpu in zip(found_gpu, found_cpu, strict=True):
        assert len(on_gpu) == len(on_cpu)
        for a, b in zip(on_gpu, on_cpu, strict=True):
            assert _iou(a.box, b.box) > 0.9
            assert abs(a.score - b.score) < 0.01


@pytest.mark.gpu
@needs_cuda
def test_a_clip_embedded_on_cuda_matches_cpu(videos, tmp_path):
    from mtclar.model.encoders import create_encoder

    def embed(device: str):
        encoder = create_encoder("faceapi-expression", device=device)
        embedder = VideoEmbedder(FacePipeline(device=device), encoder, EmbeddingCache(tmp_path / device), 16)
        return embedder.embed_video(videos / "single_face.mp4"), embedder

    on_cpu, _ = embed("cpu")
    on_cuda, embedder = embed("cuda")
    assert embedder.precision == "fp16"
    assert on_cuda.n_frames == on_cpu.n_frames
    face = on_cpu.has_face & on_cuda.has_face
    assert face.sum() >= 0.98 * on_cpu.has_face.sum()
    assert _cosine(on_cuda.embeddings[face], on_cpu.embeddings[face]).min() > 0.99
    assert np.nanmax(np.abs(on_cuda.boxes[face] - on_cpu.boxes[face])) < 4.0
