"""Frame backbones in plain torch: torchvision's ResNets and OpenAI CLIP's ViT image tower.

torchvision and open_clip are not dependencies, so the networks are written here with
exactly the module names of the official weight files: a torchvision ResNet ``.pth`` and
an OpenAI CLIP ``.pt`` load without renaming a single key. Weights always come from a
local file the user names (``--weights PATH``); nothing is downloaded.

Every backbone maps ``(N, 3, S, S)`` normalised images to ``(N, output_dim)`` features and
carries the :class:`ImageTransform` that turns decoded ``(N, H, W, 3)`` uint8 RGB frames
into such images.
"""

from __future__ import annotations

import math
import re
import warnings
import zipfile
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file as load_safetensors
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

RESNET_BLOCKS = {  # bottleneck blocks per stage (layer1..layer4), as in torchvision
    "resnet50": (3, 4, 6, 3),
    "resnet101": (3, 4, 23, 3),
    "resnet152": (3, 8, 36, 3),
}
# "clip-vit" reads its whole architecture from the weights file (any OpenAI-format ViT)
GENERIC_CLIP_VIT = "clip-vit"


@dataclass(frozen=True)
class ClipVitSpec:
    """Architecture of a CLIP ViT image tower, as OpenAI's ``build_model`` infers it."""

    width: int
    layers: int
    patch_size: int
    resolution: int
    output_dim: int

    @property
    def heads(self) -> int:
        return self.width // 64

    def describe(self) -> str:
        return (
            f"width {self.width}, {self.layers} layers, patch {self.patch_size}, "
            f"{self.resolution} px, output {self.output_dim}"
        )


CLIP_VIT_SPECS = {
    "clip-vit-b-32": ClipVitSpec(
        width=768, layers=12, patch_size=32, resolution=224, output_dim=512
    ),
    "clip-vit-b-16": ClipVitSpec(
        width=768, layers=12, patch_size=16, resolution=224, output_dim=512
    ),
    "clip-vit-l-14": ClipVitSpec(
        width=1024, layers=24, patch_size=14, resolution=224, output_dim=768
    ),
}

BACKBONES: tuple[str, ...] = (*RESNET_BLOCKS, *CLIP_VIT_SPECS, GENERIC_CLIP_VIT)

_TORCHVISION_URL = "https://download.pytorch.org/models/"
_OPENAI_CLIP_URL = "https://openaipublic.azureedge.net/clip/models/"
WEIGHT_SOURCES = {
    "resnet50": (
        "torchvision's resnet50-11ad3fa6.pth (IMAGENET1K_V2) or resnet50-0676ba61.pth "
        f"(IMAGENET1K_V1) from {_TORCHVISION_URL}"
    ),
    "resnet101": (
        "torchvision's resnet101-cd907fc2.pth (IMAGENET1K_V2) or resnet101-63fe2227.pth "
        f"(IMAGENET1K_V1) from {_TORCHVISION_URL}"
    ),
    "resnet152": (
        "torchvision's resnet152-f82ba261.pth (IMAGENET1K_V2) or resnet152-394f9c45.pth "
        f"(IMAGENET1K_V1, the usual MSR-VTT features) from {_TORCHVISION_URL}"
    ),
    "clip-vit-b-32": (
        "OpenAI's ViT-B-32.pt from "
        f"{_OPENAI_CLIP_URL}40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/"
        "ViT-B-32.pt"
    ),
    "clip-vit-b-16": (
        "OpenAI's ViT-B-16.pt from "
        f"{_OPENAI_CLIP_URL}5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/"
        "ViT-B-16.pt"
    ),
    "clip-vit-l-14": (
        "OpenAI's ViT-L-14.pt from "
        f"{_OPENAI_CLIP_URL}b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/"
        "ViT-L-14.pt"
    ),
    GENERIC_CLIP_VIT: (
        "a CLIP ViT checkpoint with OpenAI's visual.* keys (an OpenAI .pt such as "
        f"ViT-L-14-336px.pt from {_OPENAI_CLIP_URL}, or an open_clip checkpoint)"
    ),
}
_FILE_FORMATS = (
    "a state dict saved with torch.save (.pth/.pt/.bin), a .safetensors file, "
    "or an OpenAI CLIP TorchScript archive"
)


# --------------------------------------------------------------------------- transform


@dataclass(frozen=True)
class ImageTransform:
    """Resize the shorter side, centre crop a square, scale to [0, 1] and normalise.

    Follows torchvision's ``Resize(resize)`` + ``CenterCrop(size)`` + ``Normalize`` on
    tensors (antialiased), the evaluation preprocessing of both ResNet and CLIP.
    """

    size: int  # side of the square centre crop fed to the network
    resize: int  # shorter image side after resizing, before the crop
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str  # "bilinear" or "bicubic"

    def __post_init__(self) -> None:
        if self.interpolation not in ("bilinear", "bicubic"):
            raise ValueError(
                f"interpolation must be 'bilinear' or 'bicubic', not {self.interpolation!r}"
            )
        if not 0 < self.size <= self.resize:
            raise ValueError(
                f"crop size {self.size} must be positive and at most the resize {self.resize}"
            )

    def resized_shape(self, height: int, width: int) -> tuple[int, int]:
        """Image shape after the shorter side is resized to ``resize`` (torchvision's rule)."""
        if height <= width:
            return self.resize, int(self.resize * width / height)
        return int(self.resize * height / width), self.resize

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        # frames (N, H, W, 3) uint8 RGB -> (N, 3, size, size) float32 normalised
        if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(
                "frames must be a (N, H, W, 3) uint8 RGB tensor, got "
                f"{tuple(frames.shape)} {frames.dtype}"
            )
        count, height, width, _ = frames.shape
        if height == 0 or width == 0:
            raise ValueError(f"frames have an empty side: {height}x{width} pixels")
        resized_height, resized_width = self.resized_shape(height, width)
        top = int(round((resized_height - self.size) / 2.0))
        left = int(round((resized_width - self.size) / 2.0))
        if (height, width) == (resized_height, resized_width):
            # already at the resize size (the decoder scaled it): crop only, no resampling
            crops = frames[:, top : top + self.size, left : left + self.size]  # (N, S, S, 3)
            images = crops.permute(0, 3, 1, 2).float()  # (N, 3, S, S)
            return self._normalised(images)
        images = torch.empty(
            (count, 3, self.size, self.size), dtype=torch.float32, device=frames.device
        )
        # one frame at a time: a batch of full-HD frames in float32 would need gigabytes
        for index in range(count):
            image = frames[index].permute(2, 0, 1).unsqueeze(0).float()  # (1, 3, H, W)
            resized = F.interpolate(
                image,
                size=(resized_height, resized_width),
                mode=self.interpolation,
                align_corners=False,
                antialias=True,
            )  # (1, 3, resized_height, resized_width)
            images[index] = resized[0, :, top : top + self.size, left : left + self.size]
        return self._normalised(images)

    def _normalised(self, images: torch.Tensor) -> torch.Tensor:
        # images (N, 3, S, S) float32 in [0, 255] (in place) -> (N, 3, S, S) normalised
        mean = torch.tensor(self.mean, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, 3, 1, 1)
        return images.clamp_(0.0, 255.0).div_(255.0).sub_(mean).div_(std)


RESNET_TRANSFORM = ImageTransform(
    size=224, resize=256, mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bilinear"
)


def clip_transform(resolution: int) -> ImageTransform:
    """OpenAI CLIP's preprocessing: bicubic resize to ``resolution``, centre crop it."""
    return ImageTransform(
        size=resolution,
        resize=resolution,
        mean=CLIP_MEAN,
        std=CLIP_STD,
        interpolation="bicubic",
    )


# --------------------------------------------------------------------------- base class


class FrameBackbone(nn.Module, ABC):
    """A frozen image network that embeds each video frame independently."""

    def __init__(self, name: str, output_dim: int, transform: ImageTransform) -> None:
        super().__init__()
        self.name = name
        self.output_dim = output_dim
        self.transform = transform

    @abstractmethod
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised images -> (N, output_dim) features."""

    def embed_frames(self, frames: torch.Tensor) -> torch.Tensor:
        # frames (N, H, W, 3) uint8 RGB -> (N, output_dim) float32 on the model's device
        device = next(self.parameters()).device
        with torch.inference_mode():
            images = self.transform(frames.to(device))  # (N, 3, S, S)
            return self(images)


# --------------------------------------------------------------------------- ResNet


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride sits in the 3x3 convolution."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x (N, in_channels, H, W) -> (N, 4 * width, H / stride, W / stride)
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNetBackbone(FrameBackbone):
    """torchvision's ResNet-50/101/152 returning pool5, the 2,048-d global average pool.

    The module tree, and so the state dict, is torchvision's own (``conv1``, ``bn1``,
    ``layer1.0.conv1`` ... ``layer4.2.downsample.1``, ``fc``). The ImageNet classifier
    ``fc`` is kept so a torchvision file loads key for key, but ``forward`` stops before it.
    """

    def __init__(self, name: str, blocks: tuple[int, int, int, int]) -> None:
        super().__init__(name, output_dim=2048, transform=RESNET_TRANSFORM)
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_channels = 64
        stages = []
        for stage, count in enumerate(blocks):
            width = 64 * 2**stage
            stride = 1 if stage == 0 else 2
            layer = [Bottleneck(in_channels, width, stride)]
            in_channels = width * Bottleneck.expansion
            layer += [Bottleneck(in_channels, width, 1) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layer))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(in_channels, 1000)
        self._init_like_torchvision()
        # channels-last convolutions run about 1.4x faster on CPU (oneDNN); loading a
        # state dict copies into these tensors and keeps their layout
        self.to(memory_format=torch.channels_last)

    def _init_like_torchvision(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # images (N, 3, S, S) -> (N, 2048)
        images = images.contiguous(memory_format=torch.channels_last)
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))  # (N, 64, S/4, S/4)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (N, 2048, S/32, S/32)
        return torch.flatten(self.avgpool(x), 1)


# --------------------------------------------------------------------------- CLIP ViT


class QuickGELU(nn.Module):
    """OpenAI CLIP's GELU approximation, ``x * sigmoid(1.702 x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """Pre-norm transformer block with OpenAI's names (``ln_1``, ``attn``, ``mlp.c_fc`` ...)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                c_fc=nn.Linear(width, width * 4),
                gelu=QuickGELU(),
                c_proj=nn.Linear(width * 4, width),
            )
        )
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x (N, tokens, width) -> (N, tokens, width)
        normed = self.ln_1(x)
        x = x + self.attn(normed, normed, normed, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.Sequential(
            *(ResidualAttentionBlock(width, heads) for _ in range(layers))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x (N, tokens, width) -> (N, tokens, width)
        return self.resblocks(x)


class VisionTransformer(nn.Module):
    """OpenAI CLIP's ``VisionTransformer`` (the ``visual`` tower of ``clip/model.py``)."""

    def __init__(self, spec: ClipVitSpec) -> None:
        super().__init__()
        width = spec.width
        grid = spec.resolution // spec.patch_size
        scale = width**-0.5
        self.conv1 = nn.Conv2d(
            3, width, kernel_size=spec.patch_size, stride=spec.patch_size, bias=False
        )
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, spec.layers, spec.heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, spec.output_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # images (N, 3, resolution, resolution) -> (N, output_dim)
        patches = self.conv1(images)  # (N, width, grid, grid)
        tokens = patches.flatten(2).transpose(1, 2)  # (N, grid * grid, width)
        cls = self.class_embedding.expand(tokens.shape[0], 1, -1)  # (N, 1, width)
        x = torch.cat([cls, tokens], dim=1) + self.positional_embedding  # (N, tokens, width)
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x[:, 0, :]) @ self.proj


class ClipViTBackbone(FrameBackbone):
    """CLIP ViT image tower; its state dict is the ``visual.*`` part of an OpenAI checkpoint.

    Output: the projected image embedding (not L2-normalised), e.g. 512-d for ViT-B/32.
    """

    def __init__(self, name: str, spec: ClipVitSpec) -> None:
        super().__init__(
            name, output_dim=spec.output_dim, transform=clip_transform(spec.resolution)
        )
        self.spec = spec
        self.visual = VisionTransformer(spec)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # images (N, 3, resolution, resolution) -> (N, output_dim)
        resolution = self.spec.resolution
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, resolution, resolution):
            raise ValueError(
                f"{self.name} takes (N, 3, {resolution}, {resolution}) images, "
                f"got {tuple(images.shape)}"
            )
        return self.visual(images)


_RESBLOCK_KEY = re.compile(r"visual\.transformer\.resblocks\.(\d+)\.attn\.in_proj_weight")


def infer_clip_vit_spec(state: Mapping[str, torch.Tensor], path: Path) -> ClipVitSpec:
    """Read a ViT's architecture off its ``visual.*`` weights, as OpenAI's build_model does."""
    required = ("visual.conv1.weight", "visual.positional_embedding", "visual.proj")
    absent = [key for key in required if key not in state]
    if absent:
        raise ValueError(
            f"{path} holds no CLIP ViT image tower: missing {', '.join(absent)} "
            f"(first keys: {', '.join(sorted(state)[:5]) or 'none'}). Expected OpenAI's "
            "visual.* names (CLIP ResNet towers such as RN50 are not supported)."
        )
    patch_weight = state["visual.conv1.weight"]  # (width, 3, patch, patch)
    positions = state["visual.positional_embedding"].shape[0]  # grid * grid + 1
    grid = math.isqrt(max(positions - 1, 0))
    width = patch_weight.shape[0]
    if grid * grid + 1 != positions or width % 64 != 0:
        raise ValueError(
            f"{path}: visual.positional_embedding has {positions} rows and the width is "
            f"{width}; a CLIP ViT needs grid*grid + 1 rows and a width divisible by 64"
        )
    layers = sum(1 for key in state if _RESBLOCK_KEY.fullmatch(key))
    return ClipVitSpec(
        width=width,
        layers=layers,
        patch_size=patch_weight.shape[-1],
        resolution=patch_weight.shape[-1] * grid,
        output_dim=state["visual.proj"].shape[1],
    )


# --------------------------------------------------------------------------- weight files


def _is_torchscript_archive(path: Path) -> bool:
    """A TorchScript zip has ``<name>/constants.pkl`` and ``<name>/code/``; torch.save's has not."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(
            name.split("/")[1:2] in (["constants.pkl"], ["code"]) for name in archive.namelist()
        )


def load_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """Read a flat ``{key: tensor}`` state dict from any supported weights file.

    Accepts ``.safetensors``, TorchScript archives (OpenAI's CLIP ``.pt``), plain state
    dicts saved with ``torch.save`` (read with ``weights_only=True``), and open_clip
    checkpoints (``{"state_dict": ...}`` with ``module.`` prefixes from DDP).
    """
    try:
        if path.suffix == ".safetensors":
            loaded: object = load_safetensors(str(path))
        elif _is_torchscript_archive(path):
            with warnings.catch_warnings():  # TorchScript is deprecated, but it is OpenAI's format
                warnings.simplefilter("ignore", DeprecationWarning)
                loaded = torch.jit.load(str(path), map_location="cpu").state_dict()
        else:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"cannot read weights file {path}: {error}. Expected {_FILE_FORMATS}."
        ) from error
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping):
        raise ValueError(
            f"weights file {path} holds a {type(loaded).__name__}, not a state dict; "
            f"expected {_FILE_FORMATS}."
        )
    return {
        key.removeprefix("module."): value
        for key, value in loaded.items()
        if isinstance(value, torch.Tensor)
    }


def _few(keys: set[str]) -> str:
    shown = sorted(keys)[:5]
    more = f" and {len(keys) - len(shown)} more" if len(keys) > len(shown) else ""
    return ", ".join(shown) + more


def _load_checked(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    path: Path,
    may_be_missing: Callable[[str], bool],
) -> None:
    """Load ``state`` into ``model`` after checking every key and shape; name the file."""
    expected = model.state_dict()
    missing = {key for key in expected if key not in state and not may_be_missing(key)}
    unexpected = set(state) - set(expected)
    mismatched = {
        f"{key} {tuple(state[key].shape)} vs {tuple(expected[key].shape)}"
        for key in set(state) & set(expected)
        if state[key].shape != expected[key].shape
    }
    problems = []
    if missing:
        problems.append(f"missing keys: {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_few(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches (file vs model): {_few(mismatched)}")
    if problems:
        name = getattr(model, "name", type(model).__name__)
        raise ValueError(
            f"weights file {path} does not fit {name}: {'; '.join(problems)}. "
            f"{name} needs {WEIGHT_SOURCES.get(name, 'matching weights')}."
        )
    converted = {
        key: value.float() if value.is_floating_point() else value for key, value in state.items()
    }
    model.load_state_dict(converted, strict=False)


def _resnet_key_may_be_missing(key: str) -> bool:
    # a BatchNorm counter used only in training, and the ImageNet classifier pool5 skips
    return key.endswith(".num_batches_tracked") or key.startswith("fc.")


def _weights_path(name: str, weights: str | Path | None) -> Path:
    how = (
        f"{name} needs {WEIGHT_SOURCES[name]}. Nothing is downloaded at run time: download "
        f"it yourself and pass it with --weights PATH ({_FILE_FORMATS})."
    )
    if weights is None:
        raise FileNotFoundError(f"no weights file given. {how}")
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist. {how}")
    return path


# --------------------------------------------------------------------------- factory


def build_backbone(
    name: str, weights: str | Path | None, *, random_init: bool = False
) -> FrameBackbone:
    """Build backbone ``name`` in eval mode with its weights loaded from the file ``weights``.

    ``random_init=True`` (tests, benchmarks) keeps the random initialisation, drawn from
    torch's global generator, and requires ``weights=None``.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    if random_init and weights is not None:
        raise ValueError(f"give {name} either a weights file or random_init=True, not both")
    if name in RESNET_BLOCKS:
        backbone: FrameBackbone = ResNetBackbone(name, RESNET_BLOCKS[name])
        if not random_init:
            path = _weights_path(name, weights)
            _load_checked(backbone, load_weights_file(path), path, _resnet_key_may_be_missing)
    elif random_init:
        if name == GENERIC_CLIP_VIT:
            raise ValueError(
                f"{GENERIC_CLIP_VIT} reads its architecture from the weights file; for random "
                f"weights pick one of {', '.join(CLIP_VIT_SPECS)}"
            )
        backbone = ClipViTBackbone(name, CLIP_VIT_SPECS[name])
    else:
        backbone = _load_clip_vit(name, _weights_path(name, weights))
    backbone.requires_grad_(False)
    return backbone.eval()


def _load_clip_vit(name: str, path: Path) -> ClipViTBackbone:
    """Build the ViT the file describes; text-tower and other non-``visual.`` keys are ignored."""
    state = load_weights_file(path)
    spec = infer_clip_vit_spec(state, path)
    named = CLIP_VIT_SPECS.get(name)
    if named is not None and spec != named:
        raise ValueError(
            f"weights file {path} holds a CLIP ViT with {spec.describe()}, but {name} is "
            f"{named.describe()}; use --backbone {GENERIC_CLIP_VIT} to take the architecture "
            "from the file"
        )
    backbone = ClipViTBackbone(name, spec)
    visual = {key: value for key, value in state.items() if key.startswith("visual.")}
    _load_checked(backbone, visual, path, lambda key: False)
    return backbone
