"""Convert face-api's FaceExpressionNet weights (TF.js uint8-quantised) to a PyTorch safetensors file.

    python scripts/convert_faceapi_weights.py [--source DIR] [--out FILE]

Source: ``face_expression_model-weights_manifest.json`` + ``face_expression_model.bin`` from the npm
package @vladmandic/face-api 1.7.15 (``package/model/``, MIT). Dequantisation is tfjs's own
(``decodeWeights``: ``value = q * scale + min`` in float64, stored as float32); layouts go
HWIO -> OIHW (conv, pointwise), [3, 3, C, 1] -> [C, 1, 3, 3] (depthwise), [256, 7] -> [7, 256] (fc).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
from pathlib import Path

import numpy as np
from safetensors.numpy import save

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT / ".." / "shared" / "data" / "weights" / "faceapi"
DEFAULT_OUT = ROOT / "model" / "weights" / "faceapi_expression.safetensors"
MODEL = "face_expression_model"
SOURCE_SHA256 = "9a9840f2cf1f4c7eab95f197512569345c00d2426754d4608b92af30e0300f3d"
PACKAGE, VERSION = "@vladmandic/face-api", "1.7.15"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def decode_tfjs(manifest: list[dict], data: bytes) -> dict[str, np.ndarray]:
    """The tensors of a TF.js weights manifest, decoded like tfjs-core's ``io.decodeWeights``."""
    out: dict[str, np.ndarray] = {}
    offset = 0
    for spec in (w for group in manifest for w in group["weights"]):
        if spec["dtype"] != "float32":
            raise ValueError(f"{spec['name']}: unsupported dtype {spec['dtype']}")
        size = int(np.prod(spec["shape"]))
        quant = spec.get("quantization")
        if quant is None:
            values = np.frombuffer(data, dtype="<f4", count=size, offset=offset)
            offset += 4 * size
        elif quant["dtype"] == "uint8":
            q = np.frombuffer(data, dtype=np.uint8, count=size, offset=offset)
            values = (q.astype(np.float64) * quant["scale"] + quant["min"]).astype(np.float32)
            offset += size
        else:
            raise ValueError(f"{spec['name']}: unsupported quantisation {quant['dtype']}")
        out[spec["name"]] = values.reshape(spec["shape"])
    if offset != len(data):
        raise ValueError(f"manifest describes {offset} bytes, weights file has {len(data)}")
    return out


def canonical(blob: bytes) -> bytes:
    """safetensors writes ``__metadata__`` in hash-map order; sort it so the file is byte-reproducible."""
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header to 8 bytes with spaces
    return struct.pack("<Q", len(text)) + text + blob[8 + n :]


def to_torch_layout(tf_weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, w in tf_weights.items():
        *prefix, leaf = name.split("/")
        key = ".".join(prefix)
        if leaf == "filters":  # regular conv, HWIO
            out[f"{key}.weight"] = w.transpose(3, 2, 0, 1)
        elif leaf == "depthwise_filter":  # [kh, kw, C, 1]
            out[f"{key}.depthwise.weight"] = w.transpose(2, 3, 0, 1)
        elif leaf == "pointwise_filter":  # [1, 1, Cin, Cout]
            out[f"{key}.pointwise.weight"] = w.transpose(3, 2, 0, 1)
        elif leaf == "bias":  # a separable conv adds its bias after the pointwise conv
            separable = f"{'/'.join(prefix)}/pointwise_filter" in tf_weights
            out[f"{key}.pointwise.bias" if separable else f"{key}.bias"] = w
        elif name == "fc/weights":  # x @ W, W: [in, out]
            out["fc.weight"] = w.T
        else:
            raise ValueError(f"unexpected tensor {name}")
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sorted(out.items())}


def convert(source: Path, out: Path) -> dict[str, np.ndarray]:
    manifest_path, bin_path = source / f"{MODEL}-weights_manifest.json", source / f"{MODEL}.bin"
    for path in (manifest_path, bin_path):
        if not path.is_file():
            raise SystemExit(f"missing {path}")
    digest = sha256(bin_path)
    if digest != SOURCE_SHA256:
        raise SystemExit(f"{bin_path}: sha256 {digest}, expected {SOURCE_SHA256}")
    manifest = json.loads(manifest_path.read_text())
    tensors = to_torch_layout(decode_tfjs(manifest, bin_path.read_bytes()))
    metadata = {
        "source": f"npm:{PACKAGE}@{VERSION} model/{MODEL}",
        "source_sha256": digest,
        "source_manifest_sha256": sha256(manifest_path),
        "license": "MIT (Copyright (c) Vladimir Mandic; face-api.js Copyright (c) 2018 Vincent Mühler)",
        "converter": "scripts/convert_faceapi_weights.py",
        "dequantisation": "tfjs decodeWeights: float32(q * scale + min)",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(canonical(save(tensors, metadata=metadata)))
    return tensors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="TF.js model folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="safetensors file to write")
    args = parser.parse_args()
    tensors = convert(args.source, args.out)
    n_params = sum(t.size for t in tensors.values())
    print(f"wrote {args.out} ({len(tensors)} tensors, {n_params} parameters, sha256 {sha256(args.out)[:16]})")


if __name__ == "__main__":
    main()
