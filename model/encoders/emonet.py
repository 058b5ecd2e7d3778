"""EmoNet ("EmoFAN", Toisoul et al. 2021): a 2-stack face-alignment hourglass network + emotion branch.

Our own implementation, written from the ``state_dict`` layout of the released 8-class model
(``EmoNet(num_modules=2, n_expression=8, n_reg=2, n_blocks=4, attention=True)``) so that its
``emonet_8.pth`` loads with ``strict=True``. The alignment part follows the FAN of the BSD-licensed
``face-alignment`` package; every normalisation layer is a BatchNorm2d carrying running stats.
The encoder's embedding is the 256-d average-pooled output of the emotion branch.

The weights are CC BY-NC-ND and are not shipped: users pass the path to their own copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WeightsError
from ..files import sha256_file
from .base import EncoderConfig, FaceEncoder
from .registry import register_encoder

EXPRESSIONS = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
NUM_LANDMARKS = 68
NUM_STACKS = 2
HOURGLASS_DEPTH = 4
WIDTH = 256

CONFIG = EncoderConfig(
    name="emonet",
    input_size=256,
    embed_dim=WIDTH,
    mean=(0.0, 0.0, 0.0),
    std=(255.0, 255.0, 255.0),
    expression_classes=EXPRESSIONS,
    weights_file="emonet_8.pth",
)

WEIGHTS_HELP = (
    "EmoNet's weights are licensed CC BY-NC-ND, so this project cannot ship them. Download "
    "pretrained/emonet_8.pth from the face-analysis/emonet repository "
    "(https://github.com/face-analysis/emonet) and pass its path: `--encoder-weights /path/to/emonet_8.pth` "
    "on the CLI, or MTCLAR_ENCODER_WEIGHTS for the server."
)

# submodules that make up the emotion branch; everything else is the face-alignment network (FAN)
EMOTION_BRANCH = ("conv1x1_input_emo_2", "emo_net_2", "emo_fc_2")


class ConvBlock(nn.Module):
    """FAN residual block: three pre-activated 3x3 convs (widths out/2, out/4, out/4), concatenated.

    ``(N, in_ch, H, W) -> (N, out_ch, H, W)``; BN-ReLU-1x1 conv shortcut when the width changes.
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        half, quarter = out_ch // 2, out_ch // 4
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, half, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv2 = nn.Conv2d(half, quarter, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(quarter)
        self.conv3 = nn.Conv2d(quarter, quarter, 3, padding=1, bias=False)
        self.downsample: nn.Module | None = None
        if in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.BatchNorm2d(in_ch), nn.ReLU(inplace=True), nn.Conv2d(in_ch, out_ch, 1, bias=False)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv1(F.relu(self.bn1(x)))
        b = self.conv2(F.relu(self.bn2(a)))
        c = self.conv3(F.relu(self.bn3(b)))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.cat((a, b, c), dim=1) + shortcut


class Hourglass(nn.Module):
    """Recursive hourglass of ``depth`` levels; the input size must be divisible by ``2**depth``.

    Level ``k`` holds ``b1_k`` (skip branch at this resolution), ``b2_k`` (after 2x average pooling)
    and ``b3_k`` (before 2x nearest upsampling); the innermost level adds ``b2_plus_1``.
    """

    def __init__(self, depth: int = HOURGLASS_DEPTH, width: int = WIDTH) -> None:
        super().__init__()
        self.depth = depth
        self._add_level(depth, width)

    def _add_level(self, level: int, width: int) -> None:
        self.add_module(f"b1_{level}", ConvBlock(width, width))
        self.add_module(f"b2_{level}", ConvBlock(width, width))
        if level > 1:
            self._add_level(level - 1, width)
        else:
            self.add_module(f"b2_plus_{level}", ConvBlock(width, width))
        self.add_module(f"b3_{level}", ConvBlock(width, width))

    def _level(self, level: int, x: torch.Tensor) -> torch.Tensor:
        skip = self.get_submodule(f"b1_{level}")(x)
        low = self.get_submodule(f"b2_{level}")(F.avg_pool2d(x, 2))
        low = self._level(level - 1, low) if level > 1 else self.get_submodule(f"b2_plus_{level}")(low)
        low = self.get_submodule(f"b3_{level}")(low)
        return skip + F.interpolate(low, scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._level(self.depth, x)


class EmoNetEncoder(FaceEncoder):
    """EmoNet-8 as a face encoder. Input ``(N, 3, 256, 256)`` RGB in [0, 1] (see ``preprocess``).

    Submodule names mirror the released checkpoint (``m0``, ``top_m_0``, ``l1``, ``emo_net_2`` ...),
    so ``state_dict()`` has exactly its 682 keys.
    """

    def __init__(self) -> None:
        super().__init__()
        self.config = CONFIG
        self.alignment_frozen = False
        # FAN stem: 256 -> 128 (stride-2 conv) -> 64 (average pooling after conv2)
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = ConvBlock(64, 128)
        self.conv3 = ConvBlock(128, 128)
        self.conv4 = ConvBlock(128, WIDTH)
        # stacked hourglasses, each predicting 68 landmark heatmaps; all but the last feed the next stack
        for i in range(NUM_STACKS):
            self.add_module(f"m{i}", Hourglass())
            self.add_module(f"top_m_{i}", ConvBlock(WIDTH, WIDTH))
            self.add_module(f"conv_last{i}", nn.Conv2d(WIDTH, WIDTH, 1))
            self.add_module(f"bn_end{i}", nn.BatchNorm2d(WIDTH))
            self.add_module(f"l{i}", nn.Conv2d(WIDTH, NUM_LANDMARKS, 1))
            if i < NUM_STACKS - 1:
                self.add_module(f"bl{i}", nn.Conv2d(WIDTH, WIDTH, 1))
                self.add_module(f"al{i}", nn.Conv2d(NUM_LANDMARKS, WIDTH, 1))
        # emotion branch: stem + per-stack features -> 256 ch -> 4 x (block, 2x max pool) -> 4x4
        self.conv1x1_input_emo_2 = nn.Conv2d(WIDTH * (NUM_STACKS + 1), WIDTH, 1)
        layers: list[nn.Module] = []
        for _ in range(4):
            layers += [ConvBlock(WIDTH, WIDTH), nn.MaxPool2d(2, 2)]
        self.emo_net_2 = nn.Sequential(*layers)
        n_out = len(EXPRESSIONS) + 2  # 8 expression logits, then valence, arousal
        self.emo_fc_2 = nn.Sequential(
            nn.Linear(WIDTH, 128), nn.BatchNorm1d(128), nn.ReLU(inplace=True), nn.Linear(128, n_out)
        )

    def alignment_modules(self) -> list[nn.Module]:
        """The face-alignment network (everything but the emotion branch)."""
        return [module for name, module in self.named_children() if name not in EMOTION_BRANCH]

    def freeze_alignment(self, frozen: bool = True) -> EmoNetEncoder:
        """Freeze the FAN as in the paper: no gradients, and its BatchNorm stats stay fixed in ``train()``."""
        self.alignment_frozen = frozen
        for module in self.alignment_modules():
            module.requires_grad_(not frozen)
        return self.train(self.training)

    def train(self, mode: bool = True) -> EmoNetEncoder:
        super().train(mode)
        if self.alignment_frozen:
            for module in self.alignment_modules():
                module.eval()
        return self

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(N, 3, 256, 256)`` -> embedding ``(N, 256)``, expression_logits ``(N, 8)``, valence ``(N,)``,
        arousal ``(N,)``, heatmap ``(N, 68, 64, 64)`` (landmark heatmaps of the last stack)."""
        stem = F.relu(self.bn1(self.conv1(x)))
        stem = self.conv4(self.conv3(F.avg_pool2d(self.conv2(stem), 2)))
        previous, stack_features = stem, []
        for i in range(NUM_STACKS):
            feat = self.get_submodule(f"top_m_{i}")(self.get_submodule(f"m{i}")(previous))
            feat = F.relu(self.get_submodule(f"bn_end{i}")(self.get_submodule(f"conv_last{i}")(feat)))
            heatmap = self.get_submodule(f"l{i}")(feat)
            if i < NUM_STACKS - 1:
                feat = self.get_submodule(f"bl{i}")(feat)
                previous = previous + feat + self.get_submodule(f"al{i}")(heatmap)
            stack_features.append(feat)
        # attention: hourglass features weighted by the summed landmark heatmaps of the last stack
        attention = heatmap.sum(dim=1, keepdim=True)
        emo = torch.cat([stem, torch.cat(stack_features, dim=1) * attention], dim=1)
        emo = self.emo_net_2(self.conv1x1_input_emo_2(emo))
        embedding = emo.mean(dim=(2, 3))  # the 4x4 map average-pooled to (N, 256)
        head = self.emo_fc_2(embedding)
        n_expr = len(EXPRESSIONS)
        return {
            "embedding": embedding,
            "expression_logits": head[:, :n_expr],
            "valence": head[:, n_expr],
            "arousal": head[:, n_expr + 1],
            "heatmap": heatmap,
        }


@lru_cache(maxsize=1)
def expected_layout() -> dict[str, tuple[int, ...]]:
    """Key -> shape of the EmoNet-8 ``state_dict`` (built on the meta device: no memory, no init cost)."""
    with torch.device("meta"):
        model = EmoNetEncoder()
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def _layout_problems(state: Mapping[str, torch.Tensor], limit: int = 5) -> list[str]:
    expected = expected_layout()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: {tuple(state[k].shape)} (expected {expected[k]})"
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
        if items:
            more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:limit])}{more}")
    return problems


def load_emonet_state_dict(source: str | Path | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Read ``emonet_8.pth`` (or take a state dict), unwrap ``{"state_dict": ...}``, strip ``module.``,
    and check the layout. Raises WeightsError naming the file and the offending keys."""
    if isinstance(source, Mapping):
        where, raw = "the given state dict", source
    else:
        path = Path(source).expanduser()
        where = str(path)
        if not path.is_file():
            raise WeightsError(
                f"EmoNet weights not found: {path} does not exist or is not a file. {WEIGHTS_HELP}"
            )
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # corrupt, truncated or not a torch file: torch raises many types
            raise WeightsError(
                f"{path}: cannot be read as a PyTorch checkpoint ({exc}). {WEIGHTS_HELP}"
            ) from exc
    if isinstance(raw, Mapping) and isinstance(raw.get("state_dict"), Mapping):
        raw = raw["state_dict"]
    if not isinstance(raw, Mapping) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise WeightsError(f"{where}: expected a state dict (name -> tensor), got {type(raw).__name__}")
    state = {str(k).removeprefix("module."): v for k, v in raw.items()}
    problems = _layout_problems(state)
    if problems:
        raise WeightsError(
            f"{where} does not have the EmoNet-8 layout (emonet_8.pth: 682 tensors, 8 expressions + "
            f"valence/arousal; emonet_5.pth is not supported): " + "; ".join(problems)
        )
    return state





@register_encoder("emonet")
def build_emonet(weights: str | Path | None = None, device: str | torch.device = "cpu") -> EmoNetEncoder:
    """EmoNet-8 with the user's ``emonet_8.pth`` loaded strictly, FAN frozen, in eval mode."""
    if weights is None:
        raise WeightsError(f"the 'emonet' encoder needs its weights file (emonet_8.pth). {WEIGHTS_HELP}")
    path = Path(weights).expanduser()
    state = load_emonet_state_dict(path)
    model = EmoNetEncoder()
    model.load_state_dict(state, strict=True)
    model.weights_id = sha256_file(path)[:16]
    model.freeze_alignment()
    return model.to(device).eval()
