"""Labelled faces for training: sources on disk -> cached aligned crops -> items -> pairs of tensors.

Datasets never decode or detect themselves: ``load_items`` asks the crop cache (the face pipeline),
and the torch datasets only read cached crops and augment them.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from mtclar.model.errors import DataError

from .config import AugmentConfig
from .crops import CropCache, CropReader, CropRef
from .pairs import pair_targets
from .sources import AFFECTNET_CLASSES, LabelledImage, LabelledVideo, read_afewva, read_affectnet, read_manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaceItem:
    key: str  # "<video>#<frame>" or the image path
    group: str  # the unit of the train/validation split: the video, or the image
    crop: CropRef
    valence: float = math.nan
    arousal: float = math.nan
    expression: int = -1  # AffectNet class index (0..7), -1 unknown

    @property
    def has_va(self) -> bool:
        return math.isfinite(self.valence) and math.isfinite(self.arousal)


@dataclass
class ItemSet:
    items: list[FaceItem]
    source: str
    dropped_no_face: int = 0
    duplicates: int = 0

    def summary(self) -> dict:
        classes = Counter(AFFECTNET_CLASSES[i.expression] for i in self.items if i.expression >= 0)
        return {"source": self.source, "rows": len(self.items), "groups": len({i.group for i in self.items}),
                "with_va": sum(i.has_va for i in self.items), "classes": dict(sorted(classes.items())),
                "dropped_no_face": self.dropped_no_face, "duplicates": self.duplicates}


def read_source(path: str | Path, images_root: str | Path | None = None, search: tuple[str, ...] = ()
                ) -> tuple[list[LabelledVideo], list[LabelledImage]]:
    """AFEW-VA folder, AffectNet CSV (``subDirectory_filePath`` column) or CSV manifest."""
    path = Path(path)
    if path.is_dir():
        return read_afewva(path), []
    if path.suffix.lower() != ".csv":
        raise DataError(f"{path}: expected an AFEW-VA folder or a .csv (AffectNet or manifest)")
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    with open(path, encoding="utf-8-sig") as f:
        header = f.readline()
    if "subDirectory_filePath" in header:
        return [], read_affectnet(path, images_root)
    return read_manifest(path, [Path(s) for s in search])


def load_items(path: str | Path, cache: CropCache, images_root: str | Path | None = None,
               search: tuple[str, ...] = (), show_progress: bool = False) -> ItemSet:
    """Every labelled row of a source with a face crop; rows without a face are dropped and counted."""
    videos, images = read_source(path, images_root, search)
    items: list[FaceItem] = []
    dropped = 0
    for video in videos:
        frames = sorted(set(video.labels) | set(video.expressions))
        refs = cache.video(frames, video.video_file, video.frame_files, video.fps, show_progress)
        dropped += len(frames) - len(refs)
        for frame, ref in refs.items():
            v, a = video.labels.get(frame, (math.nan, math.nan))
            items.append(FaceItem(f"{video.name}#{frame}", video.name, ref, v, a, video.expressions.get(frame, -1)))
    refs = cache.images([image.path for image in images], show_progress)
    for image, ref in zip(images, refs, strict=True):
        if ref is None:
            dropped += 1
            continue
        items.append(FaceItem(str(image.path), str(image.path), ref, image.valence, image.arousal, image.expression))
    unique: dict[CropRef, FaceItem] = {}
    for item in items:
        unique.setdefault(item.crop, item)
    result = ItemSet(list(unique.values()), str(path), dropped, len(items) - len(unique))
    total = len(items) + dropped
    if dropped:
        log.warning("%s: dropped %d of %d labelled images/frames with no face found", path, dropped, total)
    if result.duplicates:
        log.warning("%s: %d rows repeat an image already listed (same content); kept once", path, result.duplicates)
    if not result.items:
        raise DataError(f"{path}: no labelled image or frame with a face ({total} rows, {dropped} without a face)")
    log.info("%s: %d items with a face", path, len(result.items))
    return result


def split_by_group(items: list[FaceItem], fraction: float, seed: int) -> tuple[list[FaceItem], list[FaceItem]]:
    """Hold out whole groups (videos, images) until about ``fraction`` of the items (at least 2) are held
    out: frames of one video never sit on both sides. At least one group always stays for training."""
    groups = sorted({i.group for i in items})
    if fraction <= 0 or len(groups) < 2:
        return items, []
    sizes = Counter(i.group for i in items)
    target = max(2, round(fraction * len(items)))
    held: set[str] = set()
    for group in np.random.default_rng([seed, 7]).permutation(groups)[:-1].tolist():
        if sum(sizes[g] for g in held) >= target:
            break
        held.add(group)
    return [i for i in items if i.group not in held], [i for i in items if i.group in held]


def label_arrays(items: list[FaceItem]) -> tuple[np.ndarray, np.ndarray]:
    """(N,) expression classes (-1 unknown) and (N, 2) V/A (NaN unknown)."""
    classes = np.array([i.expression for i in items], dtype=np.int64)
    va = np.array([(i.valence, i.arousal) for i in items], dtype=np.float64).reshape(-1, 2)
    return classes, va


def build_transform(input_size: int, augment: AugmentConfig, train: bool) -> v2.Compose:
    """uint8 (3, H, W) -> uint8 (3, input_size, input_size). Train: resize -> affine -> flip -> random crop;
    eval: resize -> centre crop."""
    canvas = int(round(input_size * augment.resize_ratio))
    steps: list[v2.Transform] = [v2.Resize((canvas, canvas), antialias=True)]
    if train:
        steps += [v2.RandomAffine(degrees=augment.degrees, translate=(augment.translate, augment.translate),
                                  scale=tuple(augment.scale), shear=augment.shear),
                  v2.RandomHorizontalFlip(augment.hflip), v2.RandomCrop(input_size)]
    else:
        steps.append(v2.CenterCrop(input_size))
    return v2.Compose(steps)


class FaceCrops(Dataset):
    """Items -> transformed uint8 tensors (3, S, S)."""

    def __init__(self, items: list[FaceItem], transform: v2.Compose | None = None):
        self.items = items
        self.transform = transform
        self.reader = CropReader()

    def __len__(self) -> int:
        return len(self.items)

    def image(self, index: int) -> torch.Tensor:
        crop = torch.from_numpy(self.reader(self.items[index].crop)).permute(2, 0, 1)
        return self.transform(crop) if self.transform is not None else crop

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.image(index)


class PairDataset(Dataset):
    """Pairs (P, 3) of ``FaceCrops`` indices -> ``{x1, x2, similar, delta (2,), known}``; each image is
    augmented on its own."""

    def __init__(self, crops: FaceCrops, pairs: np.ndarray, va: np.ndarray):
        self.crops = crops
        self.pairs = np.asarray(pairs, dtype=np.int64)
        self.delta, self.known = pair_targets(self.pairs, va)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        i, j, similar = self.pairs[index]
        return {"x1": self.crops.image(int(i)), "x2": self.crops.image(int(j)),
                "similar": torch.tensor(int(similar)), "delta": torch.tensor(self.delta[index], dtype=torch.float32),
                "known": torch.tensor(bool(self.known[index]))}
